"""One error body for every failure: {"error": {"code", "message", "details"}}.

The middleware maps SwitchboardError subclasses (kernel/errors.py) to their HTTP status,
aiohttp's own HTTP errors (unknown route, wrong method) to the same shape, and anything
unexpected to 500 `internal` without leaking its text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from kernel.errors import SwitchboardError
from kernel.logs import EventLog

log = EventLog("api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    409: "conflict",
    413: "too_large",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> web.Response:
    headers = {}
    if details and "retry_after_ms" in details:
        headers["Retry-After"] = str(max(1, -(-int(details["retry_after_ms"]) // 1000)))
    return web.json_response(
        {"error": {"code": code, "message": message, "details": details or {}}},
        status=status,
        headers=headers,
    )


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SwitchboardError as exc:
        return error_response(exc.http_status, exc.code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _STATUS_CODES.get(exc.status, "bad_request"), exc.reason)
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        log.error("storage_unavailable", path=request.path, error=repr(exc))
        return error_response(503, "unavailable", "storage is unavailable; retry")
    except Exception:
        log.exception("request_failed", method=request.method, path=request.path)
        return error_response(500, "internal", "internal error")
