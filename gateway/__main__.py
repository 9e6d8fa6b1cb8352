"""`python -m gateway`: serve WebSockets on GATEWAY_HOST:GATEWAY_PORT with uvloop.

With GATEWAY_PROCESSES=N (N > 1, REDIS_URL required) it starts N processes sharing the
port through SO_REUSEPORT; SIGINT/SIGTERM drain and stop them all.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys

from gateway.runtime import Gateway
from gateway.server import GatewayServer
from kernel.config import ConfigError, load_settings
from kernel.logs import EventLog, setup_logging

log = EventLog("gateway")


async def _serve(reuse_port: bool) -> None:
    settings = load_settings()
    gateway = Gateway(settings)
    await gateway.start()
    server = GatewayServer(gateway)
    await server.start(reuse_port=reuse_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining")
    await server.stop()
    await gateway.close()
    log.info("stopped")


def _raise_open_file_limit() -> None:
    """Each socket is a file descriptor: allow as many as the hard limit permits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    _raise_open_file_limit()
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(settings.log_level, settings.log_format)
    children: list[subprocess.Popen[bytes]] = []
    reuse_port = settings.gateway_processes > 1 or os.environ.get("GATEWAY_REUSE_PORT") == "1"
    if settings.gateway_processes > 1:
        if not settings.redis_url:
            print("gateway: GATEWAY_PROCESSES > 1 needs REDIS_URL", file=sys.stderr)
            raise SystemExit(2)
        env = {**os.environ, "GATEWAY_PROCESSES": "1", "GATEWAY_REUSE_PORT": "1"}
        children = [
            subprocess.Popen([sys.executable, "-m", "gateway"], env=env)
            for _ in range(settings.gateway_processes - 1)
        ]
    try:
        import uvloop

        uvloop.run(_serve(reuse_port))
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(timeout=30)


if __name__ == "__main__":
    main()
