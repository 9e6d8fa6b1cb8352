"""Prometheus helpers shared by the three processes (docs/operations.md).

Each process keeps its own registry (tests run many apps and gateways in one interpreter, and
the default global registry would count them together), made by `process_registry()` with the
standard `process_*` and `python_*` collectors already registered. `serve_metrics()` is the
small HTTP endpoint of a process that has no web server of its own (the worker);
`observe_events()` counts structured log events of code that only logs what it did.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from kernel.logs import EventLog

log = EventLog("metrics")

# The text exposition format that generate_latest() writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def process_registry() -> CollectorRegistry:
    """A new registry with process_* (CPU, memory, file descriptors, start time) and python_*
    (version info, garbage collector) metrics of this process."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (CONTENT_TYPE)."""
    return generate_latest(registry)


# --- an endpoint for a process without a web server -----------------------------------------


class MetricsServer:
    """A running `serve_metrics` endpoint; `port` is the bound port, `close()` stops it."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port

    async def close(self) -> None:
        await self._runner.cleanup()


def _metrics_app(
    registry: CollectorRegistry, before_scrape: Callable[[], Awaitable[None]] | None
) -> web.Application:
    async def metrics(_request: web.Request) -> web.Response:
        if before_scrape is not None:
            await before_scrape()
        return web.Response(body=render(registry), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics, allow_head=False)
    app.router.add_get("/healthz", healthz, allow_head=False)
    return app


async def serve_metrics(
    host: str,
    port: int,
    registry: CollectorRegistry,
    *,
    before_scrape: Callable[[], Awaitable[None]] | None = None,
) -> MetricsServer | None:
    """Serve GET /metrics (and GET /healthz) on host:port until closed; `before_scrape` runs
    before each scrape (to refresh gauges read from elsewhere). Returns None, after logging
    an error, when the port cannot be bound: metrics are not worth stopping the process for."""
    runner = web.AppRunner(_metrics_app(registry, before_scrape), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        log.error("metrics_unavailable", host=host, port=port, error=str(exc))
        return None
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    log.info("metrics_listening", host=host, port=bound)
    return MetricsServer(runner, bound)


# --- counting what a process logs --------------------------------------------------------------


class _EventObserver(logging.Filter):
    """Sees every record of one logger: hands its event to `callback`, then lets through only
    the records at or above the level the process logs at."""

    def __init__(self, callback: Callable[[str, Mapping[str, Any]], None], shown: int) -> None:
        super().__init__()
        self.callback = callback
        self.shown = shown

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self.callback(str(record.msg), getattr(record, "fields", {}))
        except Exception:  # a metric must never break the code that logs
            logging.getLogger("metrics").debug("event_observer_failed", exc_info=True)
        return record.levelno >= self.shown


def observe_events(
    logger_name: str,
    callback: Callable[[str, Mapping[str, Any]], None],
    *,
    lowest: int = logging.INFO,
) -> None:
    """Call `callback(event, fields)` for each EventLog event logged on `logger_name` itself
    at `lowest` or above, whatever LOG_LEVEL says: the logger is opened down to `lowest` and
    the observer drops what LOG_LEVEL would not show, so the output is unchanged. Loggers
    below it (created before this call) keep the level they had."""
    logger = logging.getLogger(logger_name)
    shown = logger.getEffectiveLevel()
    if shown > lowest:
        prefix = logger_name + "."
        for name, child in list(logging.root.manager.loggerDict.items()):
            if (
                name.startswith(prefix)
                and isinstance(child, logging.Logger)
                and child.level == logging.NOTSET
            ):
                child.setLevel(shown)
        logger.setLevel(lowest)
    logger.addFilter(_EventObserver(callback, shown))
