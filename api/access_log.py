"""The api's outermost middleware: a request id for every request, one structured access-log
line per request, and the request metrics (docs/operations.md).

The id is the client's `X-Request-Id` when it is a valid one (1-128 of letters, digits and
`._:@+=/-`), else a new one; it is echoed in the response's `X-Request-Id`, and bound for the
handler (kernel/request_context.py) so that notification deliveries it queues record it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from api.routes.metrics import API_METRICS, UNMATCHED
from kernel.logs import EventLog
from kernel.request_context import (
    REQUEST_ID_HEADER,
    bound_request_id,
    new_request_id,
    valid_request_id,
)
from kernel.web.auth import CALLER

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = EventLog("api.access")

REQUEST_ID = web.RequestKey("request_id", str)
# Logged (and counted) for a request whose handling was cancelled before it was answered.
CLIENT_CLOSED = 499


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(REQUEST_ID_HEADER)
    request_id = given if given is not None and valid_request_id(given) else new_request_id()
    request[REQUEST_ID] = request_id
    metrics = request.app.get(API_METRICS)
    started = time.perf_counter()
    status = 500
    if metrics is not None:
        metrics.in_flight.inc()
    try:
        with bound_request_id(request_id):
            response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
    except web.HTTPException as exc:  # redirects raised by handlers (errors are answered)
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED
        raise
    finally:
        seconds = time.perf_counter() - started
        if metrics is not None:
            metrics.in_flight.dec()
            metrics.observe(_route(request), request.method, status, seconds)
        who = request.get(CALLER)
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round(seconds * 1000, 1),
            request_id=request_id,
            user=who.subject if who is not None else "",
            remote=request.remote or "",
        )
