"""Prometheus metrics of one gateway process, served at GET /metrics (with the process_* and
python_* collectors, docs/operations.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kernel.metrics import process_registry, render


class GatewayMetrics:
    """Counters the gateway updates; `render()` gives the text exposition format."""

    def __init__(self) -> None:
        self.registry: CollectorRegistry = process_registry()
        r = self.registry
        self.connections = Gauge(
            "switchboard_connections", "Open authenticated sockets", registry=r
        )
        self.joins = Counter("switchboard_joins_total", "Channel joins", ["namespace"], registry=r)
        self.frames_in = Counter(
            "switchboard_frames_in_total", "Client frames by op", ["op"], registry=r
        )
        self.frames_out = Counter(
            "switchboard_frames_out_total", "Frames written to sockets", registry=r
        )
        self.messages_in = Counter("switchboard_messages_in_total", "Sends committed", registry=r)
        self.deliveries = Counter(
            "switchboard_deliveries_total",
            "Messages and events written to member sockets",
            registry=r,
        )
        self.fanout_latency = Histogram(
            "switchboard_fanout_latency_seconds",
            "Publish to local write, per message",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.rate_limited = Counter(
            "switchboard_rate_limited_total", "Refused frames and sends", ["scope"], registry=r
        )
        self.slow_consumers = Counter(
            "switchboard_slow_consumer_closes_total",
            "Sockets closed for not keeping up",
            registry=r,
        )
        self.errors = Counter(
            "switchboard_errors_total", "Error frames by code", ["code"], registry=r
        )
        self.batch_size = Histogram(
            "switchboard_commit_batch_size",
            "Messages per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.origins_refused = Counter(
            "switchboard_origin_refused_total",
            "WebSocket upgrades refused with 403: Origin not in GATEWAY_ORIGINS",
            registry=r,
        )

    def delivered(self, recipients: int, sent_at: float, now: float) -> None:
        if recipients:
            self.deliveries.inc(recipients)
            self.fanout_latency.observe(max(0.0, now - sent_at))

    def render(self) -> bytes:
        return render(self.registry)
