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


def exactly_one_of(*names: str) -> dict[str, Any]:
    """A JSON Schema rule for a body Struct's `schema_rules`: exactly one of the optional
    fields `names` is given (present and not null).

    A Struct states rules its fields' types cannot (either/or, dependent fields) in a class
    variable, `schema_rules: ClassVar[tuple[dict[str, Any], ...]]`; its handler enforces them
    and the OpenAPI document lists them under the Struct's `allOf`.
    """
    return {
        "oneOf": [
            {"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names
        ]
    }


def all_or_none(*names: str) -> dict[str, Any]:
    """A JSON Schema rule for `schema_rules`: the optional fields `names` are given together
    (each present and not null) or not at all (each absent or null)."""
    return {
        "anyOf": [
            {
                "required": list(names),
                "properties": {name: {"not": {"type": "null"}} for name in names},
            },
            {"properties": {name: {"type": "null"} for name in names}},
        ]
    }


def body_required(body: type) -> bool:
    """Whether a request must carry a body. An empty body reads as {}: a Struct with neither
    required fields nor `schema_rules` takes that as all its defaults."""
    info = msgspec.inspect.type_info(body)
    if not isinstance(info, msgspec.inspect.StructType):
        return True
    return bool(getattr(body, "schema_rules", None)) or any(f.required for f in info.fields)


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


def _integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integers(item) for item in value]
    if isinstance(value, dict):
        return {key: _integers(item) for key, item in value.items()}
    return value


def _with_integral_floats(raw: bytes, body: Any, refused: msgspec.ValidationError) -> Any:
    """The body, when all it lacked was reading 2.0 as the integer 2 (JSON and JSON Schema
    do not tell them apart; msgspec does). Else BadRequest with the first refusal."""
    try:
        return msgspec.convert(_integers(msgspec.json.decode(raw or b"{}")), body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise BadRequest(f"invalid body: {refused}") from None


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
    max_body: int = MAX_BODY,
    verify: Callable[[web.Request], Awaitable[None]] | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Declare a route. The handler is called as handler(request, body=..., query=...) with
    the decoded Structs (only those declared) and returns a Struct, a list, None, or a Response.
    `extra` is merged into the operation's OpenAPI object (e.g. its `security`). A body
    over `max_body` bytes is refused with 413 (the application's client_max_size caps it).
    `verify` authenticates a request that carries no user token (a webhook's signature over
    the raw body): like the token check, it runs before the body is decoded, so an unsigned
    request is 401 whatever its body.
    """
    spec = Endpoint(
        method, path, summary, tag, body, query, response, status, auth, errors, extra or {}
    )
    body_decoder: msgspec.json.Decoder[Any] | None = msgspec.json.Decoder(body) if body else None
    needs_body = body is not None and body_required(body)

    def wrap(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.Response:
            if auth:  # who is calling is settled before the body is even read
                await caller(request)
            if verify is not None:
                await verify(request)
            kwargs: dict[str, Any] = {}
            if any("\x00" in v for v in (*request.match_info.values(), *request.query.values())):
                raise BadRequest(_NUL_REFUSED)
            if body_decoder is not None:
                if request.content_length and request.content_length > max_body:
                    raise TooLarge(f"body is over {max_body} bytes")
                raw = await request.read()
                if _JSON_NUL.search(raw):
                    raise BadRequest(_NUL_REFUSED)
                if needs_body and not raw.strip():
                    raise BadRequest("a JSON body is required")
                try:
                    kwargs["body"] = body_decoder.decode(raw or b"{}")
                except msgspec.ValidationError as exc:
                    kwargs["body"] = _with_integral_floats(raw, body_decoder.type, exc)
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
