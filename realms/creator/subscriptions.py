"""Fan subscriptions to creators: plans and their prices, subscribing through the payment
flow, cancelling at period end.

Prices (reading): the seed has one price column, `users.subscription_price`, "set by creators
for monthly subscriptions" (0: free). The yearly ("with discount") and lifetime ("one-time
payment") prices live in the creator's `user_profiles.preferences.subscription_prices`
({"yearly": cents, "lifetime": cents}); a plan without a price is not offered.

Subscribing writes the subscription `pending` and its first `subscription` transaction
`pending`, commits both, then asks the processor (billing.settle). A completed payment makes
the subscription `active` (period: now + 1 month / 1 year; lifetime: no end) and notifies the
creator (`new_subscriber`) in the same transaction; a failed one makes it `failed`, which gives
no access. A free plan (price 0) is active at once, without a payment.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import asyncpg
from msgspec import Struct

from kernel.errors import BadRequest, Conflict, NotFound
from realms.creator import billing, notices
from realms.creator.content import payment_of

Plan = Literal["monthly", "yearly", "lifetime"]
PRICES_KEY = "subscription_prices"


class Prices(Struct, kw_only=True):
    """A creator's subscription prices in minor units of `currency`; null: not offered."""

    monthly: int | None
    yearly: int | None
    lifetime: int | None
    currency: str


class SubscriptionOut(Struct, kw_only=True):
    id: uuid.UUID
    subscriber_id: uuid.UUID
    creator_id: uuid.UUID
    subscription_type: Plan
    status: str
    price: int
    currency: str
    auto_renew: bool
    started_at: datetime | None
    current_period_start: datetime | None
    expires_at: datetime | None
    cancelled_at: datetime | None
    cancellation_reason: str | None
    created_at: datetime


COLUMNS = (
    "s.id, s.subscriber_id, s.creator_id, s.subscription_type, s.status, s.price, s.currency,"
    " s.auto_renew, s.started_at, s.current_period_start, s.expires_at, s.cancelled_at,"
    " s.cancellation_reason, s.created_at"
)


def subscription(row: asyncpg.Record) -> SubscriptionOut:
    return SubscriptionOut(**{name: row[name] for name in SubscriptionOut.__struct_fields__})


def _price(raw: object) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 else None


def prices_of(row: asyncpg.Record) -> Prices:
    """From a row with subscription_price, currency and preferences (user_profiles)."""
    extra = (row["preferences"] or {}).get(PRICES_KEY) or {}
    extra = extra if isinstance(extra, dict) else {}
    return Prices(
        monthly=row["subscription_price"],
        yearly=_price(extra.get("yearly")),
        lifetime=_price(extra.get("lifetime")),
        currency=row["currency"],
    )


_CREATOR = """
SELECT u.account_type, u.subscription_price, u.currency, p.preferences,
       u.account_status = 'active' AND u.deleted_at IS NULL AS active
  FROM creator.users u LEFT JOIN creator.user_profiles p ON p.user_id = u.id
 WHERE u.id = $1
"""


async def _start(
    conn: asyncpg.Connection, subscription_id: uuid.UUID, subscriber: uuid.UUID
) -> None:
    """Make a pending subscription active from now, and tell its creator."""
    row = await conn.fetchrow(
        "UPDATE creator.subscriptions SET status = 'active', started_at = now(),"
        " current_period_start = now(),"
        " expires_at = CASE subscription_type WHEN 'monthly' THEN now() + interval '1 month'"
        "                                     WHEN 'yearly' THEN now() + interval '1 year' END"
        " WHERE id = $1 AND status = 'pending' RETURNING creator_id, subscription_type",
        subscription_id,
    )
    if row is None:
        return
    name = await conn.fetchval("SELECT username FROM creator.users WHERE id = $1", subscriber)
    await conn.execute(
        "INSERT INTO creator.notifications (user_id, notification_type, title, actor_id,"
        " related_entity_type, related_entity_id, data)"
        " VALUES ($1, 'new_subscriber', 'You have a new subscriber', $2, 'subscription', $3,"
        " jsonb_build_object('plan', $4::text))",
        row["creator_id"],
        subscriber,
        subscription_id,
        row["subscription_type"],
    )
    await conn.execute(
        "INSERT INTO creator.user_analytics (user_id, event_type, target_user_id)"
        " VALUES ($1, 'subscription', $2)",
        subscriber,
        row["creator_id"],
    )
    await notices.new_subscriber(
        conn,
        creator_id=row["creator_id"],
        subscription_id=subscription_id,
        subscriber_name=name,
        plan=row["subscription_type"],
    )


async def _clear_way(conn: asyncpg.Connection, fan: uuid.UUID, creator_id: uuid.UUID) -> None:
    """Refuse a second current subscription to the same creator. A pending one whose payment
    failed (or never got one) becomes `failed`; one whose period ended becomes `expired`."""
    current = await conn.fetchrow(
        "SELECT s.id, s.status, s.expires_at IS NOT NULL AND s.expires_at <= now() AS ended,"
        "       (SELECT t.status FROM creator.transactions t WHERE t.subscription_id = s.id"
        "         ORDER BY t.created_at DESC LIMIT 1) AS paying"
        "  FROM creator.subscriptions s"
        " WHERE s.subscriber_id = $1 AND s.creator_id = $2"
        "   AND s.status IN ('pending', 'active', 'cancelled') FOR UPDATE OF s",
        fan,
        creator_id,
    )
    if current is None:
        return
    if current["status"] == "pending":
        if current["paying"] in ("pending", "processing"):
            raise Conflict("a subscription payment to this creator is in progress; retry shortly")
        await conn.execute(
            "UPDATE creator.subscriptions SET status = 'failed' WHERE id = $1", current["id"]
        )
    elif current["ended"]:
        await conn.execute(
            "UPDATE creator.subscriptions SET status = 'expired' WHERE id = $1", current["id"]
        )
    else:
        raise Conflict(
            "you are already subscribed to this creator",
            details={"subscription_id": str(current["id"])},
        )


async def subscribe(
    pool: asyncpg.Pool,
    processor: billing.PaymentProcessor,
    *,
    fan: uuid.UUID,
    creator_id: uuid.UUID,
    plan: Plan,
    auto_renew: bool,
    method: str,
    token: str,
    idempotency_key: str | None,
) -> tuple[uuid.UUID, billing.Payment | None, bool]:
    """Subscribe `fan` to a creator: (subscription id, its payment or None when free, charged
    now). A retry with the same idempotency_key answers the first attempt and charges nothing
    more; check the payment's status (failed: no access)."""
    if fan == creator_id:
        raise BadRequest("you cannot subscribe to yourself")
    creator = await pool.fetchrow(_CREATOR, creator_id)
    if creator is None or not creator["active"]:
        raise NotFound(f"no creator {creator_id}")
    if creator["account_type"] != "creator":
        raise BadRequest("only creators have subscribers")
    price: int | None = getattr(prices_of(creator), plan)
    if price is None:
        raise BadRequest(f"this creator does not offer a {plan} subscription")
    key = f"subscription:{fan}:{idempotency_key}" if idempotency_key else None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('creator.user_id', $1, true)", str(fan))
        if key is not None:
            previous = await conn.fetchrow(
                "SELECT id, subscription_id FROM creator.transactions WHERE idempotency_key = $1",
                key,
            )
            if previous is not None:
                return previous["subscription_id"], await payment_of(conn, previous["id"]), False
        await _clear_way(conn, fan, creator_id)
        try:
            subscription_id = await conn.fetchval(
                "INSERT INTO creator.subscriptions (subscriber_id, creator_id, subscription_type,"
                " price, currency, auto_renew) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                fan,
                creator_id,
                plan,
                price,
                creator["currency"],
                auto_renew and plan != "lifetime",
            )
        except asyncpg.UniqueViolationError:  # a concurrent request subscribed first
            raise Conflict("a subscription to this creator is already in progress") from None
        if price == 0:
            await _start(conn, subscription_id, fan)
            return subscription_id, None, False
        fee, net = billing.split(price)
        transaction_id = await conn.fetchval(
            "INSERT INTO creator.transactions (user_id, creator_id, transaction_type,"
            " subscription_id, gross_amount, platform_fee, net_amount, currency,"
            " idempotency_key, payment_method)"
            " VALUES ($1, $2, 'subscription', $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            fan,
            creator_id,
            subscription_id,
            price,
            fee,
            net,
            creator["currency"],
            key or f"subscription:{subscription_id}:first",
            method,
        )

    async def started(conn: asyncpg.Connection, payment: billing.Payment) -> None:
        await _start(conn, subscription_id, fan)

    payment = await billing.settle(
        pool, processor, transaction_id, method=method, token=token, on_success=started
    )
    if payment.status == "failed":
        await pool.execute(
            "UPDATE creator.subscriptions SET status = 'failed'"
            " WHERE id = $1 AND status = 'pending'",
            subscription_id,
        )
    return subscription_id, payment, True


async def cancel(
    pool: asyncpg.Pool, *, subscriber: uuid.UUID, subscription_id: uuid.UUID, reason: str | None
) -> None:
    """Cancel at period end: access stays until expires_at, nothing renews. Cancelling a
    cancelled subscription changes nothing."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('creator.user_id', $1, true)", str(subscriber))
        row = await conn.fetchrow(
            "SELECT status, subscription_type FROM creator.subscriptions"
            " WHERE id = $1 AND subscriber_id = $2 FOR UPDATE",
            subscription_id,
            subscriber,
        )
        if row is None:
            raise NotFound(f"no subscription {subscription_id} of yours")
        if row["status"] == "cancelled":
            return
        if row["status"] != "active":
            raise Conflict(f"a {row['status']} subscription cannot be cancelled")
        if row["subscription_type"] == "lifetime":
            raise BadRequest("a lifetime subscription has no period to cancel")
        await conn.execute(
            "UPDATE creator.subscriptions SET status = 'cancelled', cancelled_at = now(),"
            " auto_renew = false, cancellation_reason = $2 WHERE id = $1",
            subscription_id,
            reason,
        )
        await conn.execute(
            "INSERT INTO creator.user_analytics (user_id, event_type, target_user_id)"
            " SELECT subscriber_id, 'unsubscription', creator_id FROM creator.subscriptions"
            " WHERE id = $1",
            subscription_id,
        )
