"""Cursor pagination for every list: `?limit=&cursor=`, answered with {items, next_cursor}.

A cursor is the opaque, URL-safe encoding of the last row's sort key (e.g. [created_at, id]);
queries use keyset conditions (`(created_at, id) < ($1, $2)`), never OFFSET, so pages stay
stable while rows are added.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from msgspec import Meta, Struct

from kernel.errors import BadRequest

T = TypeVar("T")


# What encode_cursor writes: unpadded base64url (its content is the API's business).
Cursor = Annotated[
    str,
    Meta(
        max_length=500,
        pattern=r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?\Z",
        description="`next_cursor` of the previous page",
    ),
]


class PageQuery(Struct, kw_only=True):
    """Base of every list endpoint's query Struct."""

    limit: Annotated[int, Meta(ge=1, le=100)] = 20
    cursor: Cursor | None = None


class Page(Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str | None, *types: type) -> tuple[Any, ...] | None:
    """The key a cursor carries, converted to `types` (e.g. datetime, uuid.UUID); None for
    the first page. Raises BadRequest for a cursor this API did not issue."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = msgspec.json.decode(raw)
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong shape")
        return tuple(msgspec.convert(v, t) for v, t in zip(values, types, strict=True))
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise BadRequest("cursor is not valid; start again without it") from None


def page_of(rows: Sequence[T], limit: int, key: Callable[[T], tuple[Any, ...]]) -> Page[T]:
    """A page from `rows` fetched with LIMIT limit + 1: the extra row only says more exist."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(*key(items[-1])) if more and items else None)
