"""Market chat messages on the wire: what each message type must carry (`prepare`), the `msg`
frame with the seed's media_url and metadata (and a product card for product messages), and
how a stored row becomes that frame. Shared by the socket namespace and the REST history."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from msgspec import Struct

from kernel.conversation import Draft
from kernel.errors import BadRequest, NotFound
from kernel.messages import Message

MEDIA_TYPES = ("image", "video", "audio", "file")
MAX_BIGINT = 2**63 - 1


class ProductCard(Struct, kw_only=True, omit_defaults=True):
    """What a product message is delivered with: the product as a list shows it."""

    id: int
    name: str
    slug: str
    price: str
    currency: str
    status: str
    seller_id: str
    sale_price: str | None = None
    image_url: str | None = None


class MarketMessage(Message, tag="msg", kw_only=True):
    """A `msg` of a market chat: the core's fields, and the seed's media_url and metadata;
    a product message also carries its product's card."""

    media_url: str | None = None
    metadata: dict[str, Any] | None = None
    product: ProductCard | None = None


@dataclass(frozen=True)
class Prepared:
    """A draft checked against its type, in the columns of market.messages."""

    type: str
    content: str | None
    media_url: str | None
    metadata: dict[str, Any] | None
    product_id: int | None
    reply_to: int | None = None


def _coordinate(metadata: dict[str, Any], key: str, bound: int) -> float:
    value = metadata.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"invalid coordinates: `metadata.{key}` must be a number")
    if not -bound <= value <= bound:
        raise BadRequest(f"invalid coordinates: `metadata.{key}` must be in -{bound}..{bound}")
    return float(value)


def location_of(metadata: dict[str, Any] | None) -> tuple[float, float]:
    """(lat, lon) of a location's metadata; BadRequest ("invalid coordinates: ...") otherwise."""
    if metadata is None:
        raise BadRequest("invalid coordinates: a location needs `metadata` {lat, lon}")
    return _coordinate(metadata, "lat", 90), _coordinate(metadata, "lon", 180)


def prepare(draft: Draft) -> Prepared:
    """Check what the draft's type needs (the seed's message_type_enum); BadRequest names
    what is missing or wrong. The product's existence is checked by `product_cards`."""
    metadata = dict(draft.metadata) if draft.metadata is not None else None
    media_url = draft.attachment_url or (draft.attachment.url if draft.attachment else None)
    if draft.attachment is not None:
        metadata = {**(metadata or {}), "attachment": msgspec.to_builtins(draft.attachment)}
    if draft.mentions:
        raise BadRequest("market chats take no `mentions`")
    if isinstance(draft.reply_to, uuid.UUID):  # the session lets only integers through
        raise BadRequest("message ids in market.chat are integers, not UUIDs")
    product_id = None
    match draft.type:
        case "text":
            if media_url is not None:
                raise BadRequest("a text message has no attachment; send it as image/file")
        case "image" | "video" | "audio" | "file":
            if media_url is None:
                raise BadRequest(f"a {draft.type} message needs `attachment` or `attachment_url`")
        case "location":
            lat, lon = location_of(metadata)
            metadata = {**(metadata or {}), "lat": lat, "lon": lon}
        case "product":
            raw = (metadata or {}).get("product_id")
            if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw <= MAX_BIGINT:
                raise BadRequest("a product message needs `metadata.product_id`, a product id")
            product_id = raw
        case _:
            raise BadRequest(f"market chats keep no {draft.type} messages")
    return Prepared(draft.type, draft.text, media_url, metadata, product_id, draft.reply_to)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


async def product_cards(
    conn: asyncpg.Pool | asyncpg.Connection, ids: list[int]
) -> dict[int, ProductCard]:
    """The cards of the live products among `ids` (one query)."""
    if not ids:
        return {}
    rows = await conn.fetch(
        "SELECT p.id, p.name, p.slug, p.base_price, p.sale_price, p.currency,"
        "       p.status::text AS status, p.seller_id,"
        "       (SELECT i.url FROM market.product_images i WHERE i.product_id = p.id"
        "         ORDER BY i.is_primary DESC, i.sort_order, i.id LIMIT 1) AS image_url"
        "  FROM market.products p WHERE p.id = ANY ($1::bigint[]) AND p.deleted_at IS NULL",
        ids,
    )
    return {
        r["id"]: ProductCard(
            id=r["id"],
            name=r["name"],
            slug=r["slug"],
            price=str(r["base_price"]),
            sale_price=_money(r["sale_price"]),
            currency=r["currency"],
            status=r["status"],
            seller_id=str(r["seller_id"]),
            image_url=r["image_url"],
        )
        for r in rows
    }


async def require_products(
    conn: asyncpg.Pool | asyncpg.Connection, ids: list[int]
) -> dict[int, ProductCard]:
    """The cards of `ids`; NotFound naming the first product that does not exist."""
    cards = await product_cards(conn, ids)
    for product_id in ids:
        if product_id not in cards:
            raise NotFound(f"unknown product {product_id} in a product message")
    return cards


def product_id_of(metadata: dict[str, Any] | None) -> int | None:
    raw = (metadata or {}).get("product_id")
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


# The columns `from_row` reads.
COLUMNS = (
    "m.id, m.seq, m.sender_id, m.type::text AS type, m.content, m.media_url, m.metadata,"
    " m.client_id, m.reply_to_id, m.is_edited, m.is_deleted, m.created_at, m.updated_at"
)


def from_row(channel: str, row: asyncpg.Record, cards: dict[int, ProductCard]) -> MarketMessage:
    deleted = row["is_deleted"]
    metadata = None if deleted else row["metadata"]
    product_id = product_id_of(metadata) if row["type"] == "product" else None
    return MarketMessage(
        channel=channel,
        seq=row["seq"],
        id=str(row["id"]),
        user_id=str(row["sender_id"]),
        text="" if deleted else row["content"] or "",
        type=row["type"],
        created_at=row["created_at"].isoformat(),
        reply_to=str(row["reply_to_id"]) if row["reply_to_id"] else None,
        client_id=row["client_id"],
        deleted=deleted,
        edited_at=row["updated_at"].isoformat() if row["is_edited"] else None,
        media_url=None if deleted else row["media_url"],
        metadata=metadata,
        product=cards.get(product_id) if product_id is not None else None,
    )
