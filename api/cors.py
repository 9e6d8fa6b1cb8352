"""CORS for browser apps on other origins, by an allow-list (CORS_ORIGINS), and OPTIONS.

- A preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) from a listed origin
  is answered 204 with the methods and headers the API takes and how long to cache that; from
  any other origin (every origin while CORS_ORIGINS is empty) it is refused with 403 in the
  error shape.
- Every other response to a listed origin carries `Access-Control-Allow-Origin` (that origin),
  `Access-Control-Allow-Credentials` and the response headers a page may read; with a list
  set, every response says `Vary: Origin`. Unlisted origins get no CORS headers: the browser
  then keeps the response from the page. With CORS_ORIGINS empty nothing is added.
- A plain OPTIONS (no preflight) of a served path is answered 204 with `Allow`.

The list holds exact origins only: `*` is refused at start-up (kernel/config.py), because
listed origins may send credentials, which the CORS standard never allows for a wildcard.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from kernel.web.errors import error_response
from kernel.web.keys import SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-Api-Key, X-Request-Id"
# Response headers beyond the CORS-safelisted ones that a page may read.
EXPOSE_HEADERS = "X-Request-Id, Retry-After, Allow"
# Seconds a browser may reuse a preflight's answer (Chromium caps it at 7200).
MAX_AGE = "600"


def _add_vary_origin(headers: CIMultiDict[str]) -> None:
    vary = headers.get("Vary")
    if vary is None:
        headers["Vary"] = "Origin"
    elif "origin" not in {part.strip().lower() for part in vary.split(",")}:
        headers["Vary"] = f"{vary}, Origin"


def _cors_headers(headers: CIMultiDict[str], origin: str | None, allowed: bool) -> None:
    _add_vary_origin(headers)
    if allowed and origin is not None:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
        headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS


def _plain_options(request: web.Request) -> web.Response | None:
    """204 with `Allow` for OPTIONS of a path served with other methods; None otherwise."""
    refusal = getattr(request.match_info, "http_exception", None)
    if not isinstance(refusal, web.HTTPMethodNotAllowed):
        return None
    methods = sorted({*refusal.allowed_methods, "OPTIONS"})
    return web.Response(status=204, headers={"Allow": ", ".join(methods)})


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origins = request.app[SETTINGS].cors_origins
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin.lower() in origins
    if (
        request.method == "OPTIONS"
        and origin is not None
        and "Access-Control-Request-Method" in request.headers
    ):
        if not allowed:
            refused = error_response(
                403,
                "forbidden",
                f"origin {origin[:200]!r} may not call this API from a browser (CORS_ORIGINS)",
            )
            if origins:
                _add_vary_origin(refused.headers)
            return refused
        preflight = web.Response(status=204)
        _cors_headers(preflight.headers, origin, True)
        preflight.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        preflight.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        preflight.headers["Access-Control-Max-Age"] = MAX_AGE
        return preflight
    try:
        answered = _plain_options(request) if request.method == "OPTIONS" else None
        # (not `or`: a response is a mapping, and an empty one is falsy)
        response = answered if answered is not None else await handler(request)
    except web.HTTPException as exc:  # redirects raised by handlers (errors are answered)
        if origins:
            _cors_headers(exc.headers, origin, allowed)
        raise
    if origins and not response.prepared:
        _cors_headers(response.headers, origin, allowed)
    return response
