"""GET /metrics: the api process's Prometheus metrics (requests by route, method and status,
latency, requests in flight, and the process_*/python_* collectors). docs/operations.md."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kernel.metrics import CONTENT_TYPE, process_registry, render
from kernel.web.endpoints import endpoint

routes = web.RouteTableDef()

# Seconds; a request of the api is a few database round trips.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Requests that matched no route are counted under this route label (their paths are not
# labels: anyone could make up as many as they like).
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiMetrics:
    """The api's own registry and the request metrics the access middleware records."""

    def __init__(self) -> None:
        self.registry: CollectorRegistry = process_registry()
        r = self.registry
        self.requests = Counter(
            "switchboard_api_requests_total",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "switchboard_api_request_duration_seconds",
            "Time from receiving a request to its response, by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "switchboard_api_requests_in_flight", "Requests being handled", registry=r
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "OTHER"
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)


API_METRICS = web.AppKey("api_metrics", ApiMetrics)

# The document's responses, given whole: the body is text, not JSON.
_RESPONSES = {
    "200": {
        "description": "Prometheus text exposition format 0.0.4",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    "400": {
        "description": "Bad request",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    },
}


@endpoint(
    routes,
    "GET",
    "/metrics",
    summary="Prometheus metrics of this api process",
    tag="operations",
    auth=False,
    extra={"responses": _RESPONSES},
)
async def metrics(request: web.Request) -> web.Response:
    body = render(request.app[API_METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
