"""What the browser pages of the api share: files served from a fixed list (never a path taken
from the request), their security headers, and the OpenAPI description of a non-JSON answer.

Pages and assets are routes like any other, declared with `endpoint` and listed in
/openapi.json (tag `web`), so the document still covers every route."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from kernel.errors import NotFound

API_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = API_DIR / "static"
ROOT = API_DIR.parent

CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain",
}

_ERROR = {"$ref": "#/components/schemas/Error"}
_REASONS = {400: "Bad request", 404: "Not found"}


def content_type(path: Path) -> str:
    return CONTENT_TYPES[path.suffix]


def file_responses(content_types: list[str], errors: tuple[int, ...] = (400,)) -> dict[str, Any]:
    """The OpenAPI `responses` of a route answering a file of one of `content_types`."""
    ok = {
        "description": "OK",
        "content": {kind: {"schema": {"type": "string"}} for kind in sorted(set(content_types))},
    }
    responses: dict[str, Any] = {"200": ok}
    for status in sorted({400, *errors}):
        responses[str(status)] = {
            "description": _REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": _ERROR}},
        }
    return responses


def name_parameter(names: Mapping[str, Path], description: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "name",
            "in": "path",
            "required": True,
            "description": description,
            "schema": {"type": "string", "enum": sorted(names)},
        }
    ]


async def file_response(
    path: Path, *, cache: str = "no-cache", headers: Mapping[str, str] | None = None
) -> web.Response:
    body = await asyncio.to_thread(path.read_bytes)
    response = web.Response(body=body, content_type=content_type(path))
    if content_type(path).startswith("text/"):
        response.charset = "utf-8"
    response.headers["Cache-Control"] = cache
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.update(headers or {})
    return response


async def named_file(
    request: web.Request, files: Mapping[str, Path], *, cache: str = "no-cache"
) -> web.Response:
    """The file of `files` that the route's `{name}` names; 404 for any other name."""
    path = files.get(request.match_info["name"])
    if path is None:
        raise NotFound(f"no file {request.match_info['name']!r} here")
    return await file_response(path, cache=cache)
