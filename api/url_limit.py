"""The request-line limits of the API: a URL longer than MAX_URL_BYTES is answered 414 with
the JSON error body of every other refusal, before any route runs.

aiohttp's HTTP parser refuses a request line past its `max_line_size` (8,190 bytes by
default) with a plain-text 400 before the application sees the request. The parser's limit
is raised to MAX_REQUEST_LINE_BYTES so that URLs between MAX_URL_BYTES and that size reach
this middleware and get the documented answer; only a request line past
MAX_REQUEST_LINE_BYTES still gets the parser's plain-text 400 (docs/errors.md)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from kernel.web.errors import error_response

MAX_URL_BYTES = 8 * 1024
MAX_REQUEST_LINE_BYTES = 64 * 1024
HANDLER_ARGS = {"max_line_size": MAX_REQUEST_LINE_BYTES}


@web.middleware
async def url_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    size = len(request.raw_path.encode())
    if size > MAX_URL_BYTES:
        return error_response(
            414,
            "too_large",
            f"the URL is {size} bytes; at most {MAX_URL_BYTES} are accepted",
            {"limit": MAX_URL_BYTES},
        )
    return await handler(request)
