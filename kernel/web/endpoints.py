"""Typed endpoints: a decorator that decodes the body and query with msgspec, encodes the
reply, and records everything the OpenAPI document needs. Every route of the API and of
every realm is declared through it, so the document cannot miss one (a test checks the
router too)."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from kernel.errors import BadRequest, TooLarge
from kernel.web.auth import caller

MAX_BODY = 256 * 1024
# Postgres text cannot hold NUL, so no string of the API may: refused up front as a bad request
# rather than failing in the database. In JSON a NUL is only ever the escape \u0000, counted
# as one when an even number of backslashes (escaped backslashes) stands before it.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_NUL_REFUSED = "text may not contain NUL (\\u0000) characters"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    tag: str
    body: type | None = None
    query: type | None = None
    response: type | None = None
    status: int = 200
    auth: bool = True
    errors: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


# Every declared endpoint by its handler (what a route table holds), for the api to mount
# and document the ones it serves.
ENDPOINTS: dict[Callable[..., Awaitable[Any]], Endpoint] = {}
_encoder = msgspec.json.Encoder()


def _reply(value: Any, status: int) -> web.Response:
    if value is None:
        return web.Response(status=204 if status == 200 else status)
    if isinstance(value, web.Response):
        return value
    return web.Response(body=_encoder.encode(value), status=status, content_type="application/json")


def endpoint(
    routes: web.RouteTableDef,
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    body: type | None = None,
    query: type | None = None,
    response: type | None = None,
    status: int = 200,
    auth: bool = True,
    errors: tuple[int, ...] = (),
    extra: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Declare a route. The handler is called as handler(request, body=..., query=...) with
    the decoded Structs (only those declared) and returns a Struct, a list, None, or a Response.
    `extra` is merged into the operation's OpenAPI object (e.g. its `security`).
    """
    spec = Endpoint(
        method, path, summary, tag, body, query, response, status, auth, errors, extra or {}
    )
    body_decoder: msgspec.json.Decoder[Any] | None = msgspec.json.Decoder(body) if body else None

    def wrap(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.Response:
            if auth:  # who is calling is settled before the body is even read
                await caller(request)
            kwargs: dict[str, Any] = {}
            if any("\x00" in v for v in (*request.match_info.values(), *request.query.values())):
                raise BadRequest(_NUL_REFUSED)
            if body_decoder is not None:
                if request.content_length and request.content_length > MAX_BODY:
                    raise TooLarge(f"body is over {MAX_BODY} bytes")
                raw = await request.read()
                if _JSON_NUL.search(raw):
                    raise BadRequest(_NUL_REFUSED)
                try:
                    kwargs["body"] = body_decoder.decode(raw or b"{}")
                except msgspec.DecodeError as exc:
                    raise BadRequest(f"invalid body: {exc}") from None
            if query is not None:
                try:
                    kwargs["query"] = msgspec.convert(dict(request.query), query, strict=False)
                except msgspec.ValidationError as exc:
                    raise BadRequest(f"invalid query: {exc}") from None
            return _reply(await handler(request, **kwargs), status)

        routes.route(method, path)(run)
        ENDPOINTS[run] = spec
        return run

    return wrap
