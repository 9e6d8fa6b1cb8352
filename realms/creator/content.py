"""Creator content as a reader sees it, and pay-per-view purchases. Gating: a reader without
access (`creator.content_accessible_to`: no active subscription for subscriber content, no
completed purchase for pay-per-view, no verified age for age-restricted content) gets the
item locked: title, type, price and the creator's preview only, never its body, media URLs or
metadata. A purchase is a `content_purchase` transaction written pending and committed before
the processor is asked (billing.settle), one live purchase per buyer and item."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec
from msgspec import Struct

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from realms.creator import billing
from realms.creator.wire import Preview

Monetization = Literal["free", "subscribers", "pay_per_view"]
LockReason = Literal["age_verification_required", "purchase_required", "subscription_required"]
PREVIEW_KEY = "preview"  # media_metadata's key for what a locked item shows


class ContentOut(Struct, kw_only=True):
    """One content item for one reader. `locked`: the reader has no access; then `body`,
    `media_url`, `thumbnail_url` and `media_metadata` are null and only `preview` shows."""

    id: uuid.UUID
    creator_id: uuid.UUID
    content_type: str
    title: str | None
    status: str
    moderation_status: str
    monetization: Monetization
    price: int | None
    currency: str
    scheduled_at: datetime | None
    published_at: datetime | None
    content_warning: str | None
    is_age_restricted: bool
    locked: bool
    lock_reason: LockReason | None
    preview: Preview | None
    body: str | None
    media_url: str | None
    thumbnail_url: str | None
    media_metadata: dict[str, Any] | None
    like_count: int
    comment_count: int
    liked: bool
    created_at: datetime
    updated_at: datetime


# Every content column a reader's rendering needs, with the reader ($2) dependent parts.
SELECT_FOR_READER = """
SELECT c.id, c.creator_id, c.content_type, c.title, c.body, c.media_url, c.thumbnail_url,
       c.media_metadata, c.status, c.moderation_status, c.is_subscriber_only, c.is_premium,
       c.price, c.scheduled_at, c.published_at, c.content_warning, c.is_age_restricted,
       c.is_shadow_banned, c.created_at, c.updated_at, c.deleted_at, u.currency,
       coalesce(creator.content_accessible_to(c.id, $2), false) AS accessible,
       (SELECT count(*) FROM creator.likes l WHERE l.content_id = c.id) AS like_count,
       (SELECT count(*) FROM creator.comments m WHERE m.content_id = c.id
           AND m.deleted_at IS NULL AND m.moderation_status <> 'removed') AS comment_count,
       EXISTS (SELECT 1 FROM creator.likes l WHERE l.content_id = c.id AND l.user_id = $2)
           AS liked,
       (SELECT r.age_verified FROM creator.users r WHERE r.id = $2) AS reader_verified
  FROM creator.content c JOIN creator.users u ON u.id = c.creator_id
"""
# What anyone but the creator may see exist (locked or not): published, not deleted,
# approved or under review, not shadow-banned, by an active account.
PUBLIC = (
    "c.deleted_at IS NULL AND c.status = 'published'"
    " AND c.moderation_status IN ('approved', 'flagged') AND NOT c.is_shadow_banned"
    " AND u.deleted_at IS NULL AND u.account_status = 'active'"
)


def monetization_of(is_premium: bool, is_subscriber_only: bool) -> Monetization:
    if is_premium:
        return "pay_per_view"
    return "subscribers" if is_subscriber_only else "free"


def flags_of(monetization: Monetization) -> tuple[bool, bool]:
    """(is_premium, is_subscriber_only) of a monetization."""
    return monetization == "pay_per_view", monetization == "subscribers"


def _preview(metadata: dict[str, Any] | None) -> Preview | None:
    raw = (metadata or {}).get(PREVIEW_KEY)
    if raw is None:
        return None
    try:
        return msgspec.convert(raw, Preview)
    except msgspec.ValidationError:
        return None  # written by something other than this API: shown to nobody locked


def _lock_reason(row: asyncpg.Record) -> LockReason | None:
    if row["accessible"]:
        return None
    if row["is_age_restricted"] and not row["reader_verified"]:
        return "age_verification_required"
    return "purchase_required" if row["is_premium"] else "subscription_required"


def render(row: asyncpg.Record) -> ContentOut:
    """A SELECT_FOR_READER row as its reader may see it."""
    reason = _lock_reason(row)
    locked = reason is not None
    metadata = row["media_metadata"]
    return ContentOut(
        id=row["id"],
        creator_id=row["creator_id"],
        content_type=row["content_type"],
        title=row["title"],
        status=row["status"],
        moderation_status=row["moderation_status"],
        monetization=monetization_of(row["is_premium"], row["is_subscriber_only"]),
        price=row["price"],
        currency=row["currency"],
        scheduled_at=row["scheduled_at"],
        published_at=row["published_at"],
        content_warning=row["content_warning"],
        is_age_restricted=row["is_age_restricted"],
        locked=locked,
        lock_reason=reason,
        preview=_preview(metadata),
        body=None if locked else row["body"],
        media_url=None if locked else row["media_url"],
        thumbnail_url=None if locked else row["thumbnail_url"],
        media_metadata=None
        if locked
        else {k: v for k, v in (metadata or {}).items() if k != PREVIEW_KEY},
        like_count=row["like_count"],
        comment_count=row["comment_count"],
        liked=row["liked"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def read_for(
    conn: asyncpg.Connection | asyncpg.Pool, content_id: uuid.UUID, reader: uuid.UUID
) -> asyncpg.Record:
    """The content row as `reader` may know it: their own (not deleted), or public. NotFound
    otherwise (an item the reader may not see does not exist for them)."""
    row = await conn.fetchrow(
        f"{SELECT_FOR_READER} WHERE c.id = $1 AND (c.creator_id = $2 AND c.deleted_at IS NULL"
        f" OR ({PUBLIC}))",
        content_id,
        reader,
    )
    if row is None:
        raise NotFound(f"no content {content_id}")
    return row


async def require_access(
    conn: asyncpg.Connection | asyncpg.Pool, content_id: uuid.UUID, reader: uuid.UUID
) -> asyncpg.Record:
    """The content row, which `reader` must be able to open (likes and comments need it)."""
    row = await read_for(conn, content_id, reader)
    reason = _lock_reason(row)
    if reason is not None:
        raise Forbidden(f"this content is locked for you ({reason.replace('_', ' ')})")
    return row


async def purchase(
    pool: asyncpg.Pool,
    processor: billing.PaymentProcessor,
    *,
    buyer: uuid.UUID,
    content_id: uuid.UUID,
    method: str,
    token: str,
) -> tuple[billing.Payment, bool]:
    """Buy pay-per-view content: (payment, charged now). A completed purchase is returned as
    it is (never charged twice); one in flight answers Conflict; a failed one may be retried."""
    row = await read_for(pool, content_id, buyer)
    if row["creator_id"] == buyer:
        raise BadRequest("you cannot buy your own content")
    if not row["is_premium"]:
        raise BadRequest("this content is not pay-per-view")
    fee, net = billing.split(row["price"])
    async with pool.acquire() as conn, conn.transaction():
        existing = await conn.fetchrow(
            "SELECT id, status FROM creator.transactions"
            " WHERE content_id = $1 AND user_id = $2 AND transaction_type = 'content_purchase'"
            "   AND status IN ('pending', 'processing', 'completed')",
            content_id,
            buyer,
        )
        if existing is not None:
            if existing["status"] == "completed":
                return await payment_of(conn, existing["id"]), False
            raise Conflict("a purchase of this content is already in progress; retry shortly")
        transaction_id = await conn.fetchval(
            "INSERT INTO creator.transactions (user_id, creator_id, transaction_type,"
            " gross_amount, platform_fee, net_amount, currency, idempotency_key, content_id,"
            " payment_method) VALUES ($1, $2, 'content_purchase', $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT DO NOTHING RETURNING id",
            buyer,
            row["creator_id"],
            row["price"],
            fee,
            net,
            row["currency"],
            f"content_purchase:{content_id}:{buyer}:{uuid.uuid4()}",
            content_id,
            method,
        )
    if transaction_id is None:  # a concurrent purchase won the one live slot
        raise Conflict("a purchase of this content is already in progress; retry shortly")

    async def bought(conn: asyncpg.Connection, payment: billing.Payment) -> None:
        await conn.execute(
            "INSERT INTO creator.content_analytics (content_id, user_id, event_type, metadata)"
            " VALUES ($1, $2, 'purchase', jsonb_build_object('transaction_id', $3::text))",
            content_id,
            buyer,
            str(payment.id),
        )

    payment = await billing.settle(
        pool, processor, transaction_id, method=method, token=token, on_success=bought
    )
    return payment, True


async def payment_of(conn: asyncpg.Connection, transaction_id: uuid.UUID) -> billing.Payment:
    row = await conn.fetchrow(
        "SELECT id, transaction_type, status, gross_amount, platform_fee, net_amount, currency,"
        " message_id, failure_code, failure_reason FROM creator.transactions WHERE id = $1",
        transaction_id,
    )
    return billing.Payment(**dict(row))
