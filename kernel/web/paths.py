"""Path parameters: the UUID a route's path names, or one clear 400 for every route."""

from __future__ import annotations

import uuid

from aiohttp import web

from kernel.errors import BadRequest


def path_uuid(request: web.Request, name: str = "id") -> uuid.UUID:
    """The UUID in the path segment `{name}`; BadRequest naming the segment when it is not."""
    raw = request.match_info[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadRequest(f"`{name}` in the path is not a UUID: {raw[:60]!r}") from None
