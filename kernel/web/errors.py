"""One error body for every failure: {"error": {"code", "message", "details"}}.

The middleware maps SwitchboardError subclasses (kernel/errors.py) to their HTTP status,
aiohttp's own HTTP errors (unknown route, wrong method, with `Allow`) to the same shape,
database errors the request caused to 400/409, outages of what it depends on to 503 with
`Retry-After`, and anything unexpected to 500 `internal` without leaking its text.
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

# Failures of what a request depends on (Postgres, a mail server): 503, retry later.
_OUTAGES = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)
RETRY_AFTER_S = 1
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
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    headers = dict(headers or {})
    if details and "retry_after_ms" in details:
        headers["Retry-After"] = str(max(1, -(-int(details["retry_after_ms"]) // 1000)))
    elif status == 503:  # every 503 is worth a retry, and says when
        headers.setdefault("Retry-After", str(RETRY_AFTER_S))
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
        # 405 names the methods the resource has (RFC 9110 requires `Allow`)
        kept = {name: exc.headers[name] for name in ("Allow",) if name in exc.headers}
        return error_response(
            exc.status, _STATUS_CODES.get(exc.status, "bad_request"), exc.reason, headers=kept
        )
    except asyncpg.DataError as exc:
        # class 22: a value of the request the column cannot hold (out of range, too long)
        log.info("request_value_refused", path=request.path, sqlstate=exc.sqlstate)
        return error_response(
            400, "bad_request", "a value is out of range", {"sqlstate": exc.sqlstate}
        )
    except (asyncpg.CheckViolationError, asyncpg.NotNullViolationError) as exc:
        # a value of the request a table's rule refuses
        log.info("request_value_refused", path=request.path, sqlstate=exc.sqlstate)
        return error_response(
            400, "bad_request", "a value breaks a rule of the data", {"sqlstate": exc.sqlstate}
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        # the rest of class 23: the request collides with stored data (a duplicate, a
        # reference to nothing)
        log.info("request_conflicts", path=request.path, sqlstate=exc.sqlstate)
        return error_response(
            409, "conflict", "the request conflicts with stored data", {"sqlstate": exc.sqlstate}
        )
    except _OUTAGES as exc:
        log.error("dependency_unavailable", path=request.path, error=repr(exc))
        return error_response(
            503,
            "unavailable",
            "a service this request needs is unavailable; retry",
        )
    except Exception:
        log.exception("request_failed", method=request.method, path=request.path)
        return error_response(500, "internal", "internal error")
