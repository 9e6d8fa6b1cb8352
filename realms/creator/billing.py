"""Money of the creator realm: the platform fee (gross / fee / net), the payment processor
port and its offline stand-in, and the two payments the realm takes today: a premium
message's purchase (idempotent: one charge per fan and message, ever) and a tip. Each
payment is a creator.transactions row written `pending` and committed before the processor
is asked, then completed or failed; what it unlocks, and the live events, follow in the
completing transaction."""

from __future__ import annotations

import uuid
from typing import Any, Literal, Protocol

import asyncpg
import msgspec
from aiohttp import web

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from realms.creator import notices, relay

PLATFORM_FEE_BPS = 2000  # 20 % of every payment goes to the platform
PaymentMethod = Literal["card", "wallet", "bank_transfer", "paypal", "crypto"]


def split(gross: int) -> tuple[int, int]:
    """(platform_fee, net) of a gross amount in minor units; the fee rounds half up."""
    fee = (gross * PLATFORM_FEE_BPS + 5000) // 10_000
    return fee, gross - fee


class Charge(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    processor_id: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None


class PaymentProcessor(Protocol):
    name: str

    async def charge(
        self, *, amount: int, currency: str, method: str, token: str, idempotency_key: str
    ) -> Charge:
        """Charge once per idempotency_key (a retry with the same key returns the first
        outcome); never raises for a declined payment."""
        ...


class OfflineProcessor:
    """A stand-in that charges nothing real, clearly labelled: test payment tokens decide
    the outcome, as a processor's sandbox does. `tok_ok` (and any other token) succeeds;
    `tok_insufficient_funds` and `tok_declined` fail."""

    name = "offline"
    FAILURES = {
        "tok_insufficient_funds": ("insufficient_funds", "insufficient funds"),
        "tok_declined": ("card_declined", "the card was declined"),
    }

    def __init__(self) -> None:
        self._charged: dict[str, Charge] = {}

    async def charge(
        self, *, amount: int, currency: str, method: str, token: str, idempotency_key: str
    ) -> Charge:
        if idempotency_key in self._charged:
            return self._charged[idempotency_key]
        failure = self.FAILURES.get(token)
        outcome = (
            Charge(ok=False, failure_code=failure[0], failure_reason=failure[1])
            if failure
            else Charge(ok=True, processor_id=f"off_{uuid.uuid4().hex}")
        )
        self._charged[idempotency_key] = outcome
        return outcome


PROCESSOR = web.AppKey("creator_payment_processor", PaymentProcessor)


def install_processor(app: web.Application) -> None:
    """api_setup: the offline stand-in unless the application was given a processor."""
    if PROCESSOR not in app:
        app[PROCESSOR] = OfflineProcessor()


class Payment(msgspec.Struct, kw_only=True):
    """A transaction as its payer sees it."""

    id: uuid.UUID
    transaction_type: str
    status: str
    gross_amount: int
    platform_fee: int
    net_amount: int
    currency: str
    message_id: uuid.UUID | None = None
    failure_code: str | None = None
    failure_reason: str | None = None


_PAYMENT = (
    "id, transaction_type, status, gross_amount, platform_fee, net_amount, currency,"
    " message_id, failure_code, failure_reason"
)


async def _username(conn: asyncpg.Connection, user_id: uuid.UUID) -> str | None:
    name: str | None = await conn.fetchval(
        "SELECT username FROM creator.users WHERE id = $1", user_id
    )
    return name


def payment_failed(payment: Payment) -> BadRequest:
    return BadRequest(
        f"payment failed: {payment.failure_reason}",
        details={"failure_code": payment.failure_code, "transaction_id": str(payment.id)},
    )


async def _settle(
    pool: asyncpg.Pool,
    processor: PaymentProcessor,
    transaction_id: uuid.UUID,
    *,
    method: str,
    token: str,
    on_success: Any = None,
) -> Payment:
    """Ask the processor for a pending transaction's money, then complete or fail it;
    `on_success(conn, payment)` runs in the completing transaction."""
    row = await pool.fetchrow(
        "SELECT gross_amount, currency, idempotency_key FROM creator.transactions WHERE id = $1",
        transaction_id,
    )
    charge = await processor.charge(
        amount=row["gross_amount"],
        currency=row["currency"],
        method=method,
        token=token,
        idempotency_key=row["idempotency_key"],
    )
    async with pool.acquire() as conn, conn.transaction():
        if charge.ok:
            done = await conn.fetchrow(
                "UPDATE creator.transactions SET status = 'completed', completed_at = now(),"
                " payment_processor = $2, processor_transaction_id = $3"
                f" WHERE id = $1 AND status IN ('pending', 'processing') RETURNING {_PAYMENT}",
                transaction_id,
                processor.name,
                charge.processor_id,
            )
        else:
            done = await conn.fetchrow(
                "UPDATE creator.transactions SET status = 'failed', failure_code = $2,"
                f" failure_reason = $3 WHERE id = $1 AND status IN ('pending', 'processing')"
                f" RETURNING {_PAYMENT}",
                transaction_id,
                charge.failure_code,
                charge.failure_reason,
            )
        if done is None:  # settled meanwhile by a concurrent retry
            done = await conn.fetchrow(
                f"SELECT {_PAYMENT} FROM creator.transactions WHERE id = $1", transaction_id
            )
        payment = Payment(**dict(done))
        if payment.status == "completed" and charge.ok and on_success is not None:
            await on_success(conn, payment)
    return payment


# The realm's other payment flows (realms/creator/content.py, subscriptions.py) settle their
# pending transactions through this same step.
settle = _settle


async def purchase_message(
    pool: asyncpg.Pool,
    processor: PaymentProcessor,
    *,
    buyer: uuid.UUID,
    message_id: uuid.UUID,
    method: str,
    token: str,
) -> tuple[Payment, bool]:
    """Buy a premium message for its fan: (payment, charged now). A completed purchase is
    returned as it is (never charged twice); a failed one may be retried."""
    message = await pool.fetchrow(
        "SELECT m.price, m.sender_id, m.is_deleted, c.fan_id, c.creator_id, u.currency"
        "  FROM creator.messages m JOIN creator.conversations c ON c.id = m.conversation_id"
        "  JOIN creator.users u ON u.id = c.creator_id WHERE m.id = $1",
        message_id,
    )
    if message is None or buyer not in (message["fan_id"], message["creator_id"]):
        raise NotFound(f"no message {message_id}")
    if message["sender_id"] == buyer:
        raise BadRequest("you cannot buy your own message")
    if message["price"] is None:
        raise BadRequest("this message is not for sale")
    if message["sender_id"] != message["creator_id"]:
        raise BadRequest("only the creator's premium messages are for sale")
    fee, net = split(message["price"])
    async with pool.acquire() as conn, conn.transaction():
        existing = await conn.fetchrow(
            f"SELECT {_PAYMENT} FROM creator.transactions"
            " WHERE message_id = $1 AND user_id = $2 AND transaction_type = 'message_purchase'"
            "   AND status IN ('pending', 'processing', 'completed')",
            message_id,
            buyer,
        )
        if existing is not None:
            payment = Payment(**dict(existing))
            if payment.status == "completed":
                return payment, False
            raise Conflict("a purchase of this message is already in progress; retry shortly")
        if message["is_deleted"]:
            raise BadRequest("this message was deleted")
        transaction_id = await conn.fetchval(
            "INSERT INTO creator.transactions (user_id, creator_id, transaction_type,"
            " gross_amount, platform_fee, net_amount, currency, idempotency_key, message_id,"
            " payment_method) VALUES ($1, $2, 'message_purchase', $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT DO NOTHING RETURNING id",
            buyer,
            message["creator_id"],
            message["price"],
            fee,
            net,
            message["currency"],
            f"message_purchase:{message_id}:{buyer}:{uuid.uuid4()}",
            message_id,
            method,
        )
    if transaction_id is None:  # a concurrent purchase won the one live slot
        raise Conflict("a purchase of this message is already in progress; retry shortly")

    async def unlocked(conn: asyncpg.Connection, payment: Payment) -> None:
        await relay.announce(conn, "unlock", payment.id)
        await conn.execute(
            "INSERT INTO creator.notifications (user_id, notification_type, title, body,"
            " actor_id, related_entity_type, related_entity_id, data)"
            " VALUES ($1, 'premium_message_purchased', 'Your premium message was purchased',"
            " NULL, $2, 'message', $3, jsonb_build_object('net_amount', $4::bigint))",
            message["creator_id"],
            buyer,
            message_id,
            payment.net_amount,
        )
        await notices.premium_message_purchased(
            conn,
            creator_id=message["creator_id"],
            transaction_id=payment.id,
            message_id=message_id,
            buyer_name=await _username(conn, buyer),
            net_amount=payment.net_amount,
            currency=payment.currency,
        )

    payment = await _settle(
        pool, processor, transaction_id, method=method, token=token, on_success=unlocked
    )
    return payment, True


async def buy_stream_access(
    pool: asyncpg.Pool,
    processor: PaymentProcessor,
    *,
    buyer: uuid.UUID,
    stream_id: uuid.UUID,
    method: str,
    token: str,
) -> tuple[Payment, bool]:
    """Buy access to a premium stream (scheduled or live): (payment, charged now). As for a
    message: one pending/processing/completed `stream_access` payment per viewer and stream
    (the seed's partial unique index), a completed one returned as it is, a failed one
    retried; on completion the viewer's stream_access row becomes `paid`, naming it."""
    async with pool.acquire() as conn, conn.transaction():
        # FOR SHARE: the price holds (streams.update locks the row) until this is written.
        stream = await conn.fetchrow(
            "SELECT s.creator_id, s.status, s.is_premium, s.price, u.currency,"
            " u.account_status = 'active' AND u.deleted_at IS NULL AS active,"
            " (SELECT a.access_type FROM creator.stream_access a"
            "   WHERE a.live_stream_id = s.id AND a.user_id = $2) AS access_type"
            " FROM creator.live_streams s JOIN creator.users u ON u.id = s.creator_id"
            " WHERE s.id = $1 FOR SHARE OF s",
            stream_id,
            buyer,
        )
        if stream is None or not stream["active"]:
            raise NotFound(f"no stream {stream_id}")
        if stream["creator_id"] == buyer:
            raise BadRequest("you cannot buy access to your own stream")
        if not stream["is_premium"]:
            raise BadRequest("this stream is free: join it")
        existing = await conn.fetchrow(
            f"SELECT {_PAYMENT} FROM creator.transactions"
            " WHERE live_stream_id = $1 AND user_id = $2 AND transaction_type = 'stream_access'"
            "   AND status IN ('pending', 'processing', 'completed')",
            stream_id,
            buyer,
        )
        if existing is not None:
            payment = Payment(**dict(existing))
            if payment.status == "completed":
                return payment, False
            raise Conflict("a purchase of access to this stream is in progress; retry shortly")
        if stream["status"] not in ("scheduled", "live"):
            raise BadRequest(f"the stream is {stream['status']}: access is not sold any more")
        if stream["access_type"] == "complimentary":
            raise Conflict("you have complimentary access to this stream already")
        fee, net = split(stream["price"])
        transaction_id = await conn.fetchval(
            "INSERT INTO creator.transactions (user_id, creator_id, transaction_type,"
            " gross_amount, platform_fee, net_amount, currency, idempotency_key, live_stream_id,"
            " payment_method) VALUES ($1, $2, 'stream_access', $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT DO NOTHING RETURNING id",
            buyer,
            stream["creator_id"],
            stream["price"],
            fee,
            net,
            stream["currency"],
            f"stream_access:{stream_id}:{buyer}:{uuid.uuid4()}",
            stream_id,
            method,
        )
    if transaction_id is None:  # a concurrent purchase won the one live slot
        raise Conflict("a purchase of access to this stream is in progress; retry shortly")

    async def granted(conn: asyncpg.Connection, payment: Payment) -> None:
        await conn.execute(
            "INSERT INTO creator.stream_access (live_stream_id, user_id, access_type,"
            " transaction_id) VALUES ($1, $2, 'paid', $3)"
            " ON CONFLICT (live_stream_id, user_id) DO UPDATE"
            " SET access_type = 'paid', transaction_id = EXCLUDED.transaction_id",
            stream_id,
            buyer,
            payment.id,
        )

    payment = await _settle(
        pool, processor, transaction_id, method=method, token=token, on_success=granted
    )
    return payment, True


async def send_tip(
    pool: asyncpg.Pool,
    processor: PaymentProcessor,
    *,
    tipper: uuid.UUID,
    creator_id: uuid.UUID,
    amount: int,
    message: str | None,
    anonymous: bool,
    content_id: uuid.UUID | None,
    message_id: uuid.UUID | None,
    live_stream_id: uuid.UUID | None,
    method: str,
    token: str,
    idempotency_key: str | None,
) -> tuple[Payment, uuid.UUID | None]:
    """Tip a creator: (payment, tip id once completed). A retry with the same
    idempotency_key returns the first attempt's outcome and charges nothing more."""
    if tipper == creator_id:
        raise BadRequest("you cannot tip yourself")
    creator = await pool.fetchrow(
        "SELECT account_type, currency, account_status = 'active' AND deleted_at IS NULL AS active"
        " FROM creator.users WHERE id = $1",
        creator_id,
    )
    if creator is None or not creator["active"]:
        raise NotFound(f"no creator {creator_id}")
    if creator["account_type"] != "creator":
        raise BadRequest("tips go to creators")
    if await pool.fetchval("SELECT creator.has_feature_restriction($1, 'tipping')", tipper):
        raise Forbidden("tipping is restricted on your account")
    # Checked before any money moves (check_tip checks again at insert).
    context_ok = await pool.fetchval(
        "SELECT ($1::uuid IS NULL OR EXISTS (SELECT 1 FROM creator.content"
        "         WHERE id = $1 AND creator_id = $4 AND deleted_at IS NULL))"
        "   AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM creator.messages m"
        "         JOIN creator.conversations c ON c.id = m.conversation_id"
        "         WHERE m.id = $2 AND c.creator_id = $4 AND c.fan_id = $5))"
        "   AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM creator.live_streams"
        "         WHERE id = $3 AND creator_id = $4))",
        content_id,
        message_id,
        live_stream_id,
        creator_id,
        tipper,
    )
    if not context_ok:
        raise BadRequest("the tip's content, message or stream is not this creator's")
    key = f"tip:{tipper}:{idempotency_key}" if idempotency_key else f"tip:{uuid.uuid4()}"
    fee, net = split(amount)
    async with pool.acquire() as conn, conn.transaction():
        previous = await conn.fetchrow(
            f"SELECT {_PAYMENT}, (SELECT id FROM creator.tips WHERE transaction_id = t.id) AS tip"
            " FROM creator.transactions t WHERE idempotency_key = $1",
            key,
        )
        if previous is not None:
            tip = previous["tip"]
            return Payment(**{k: v for k, v in dict(previous).items() if k != "tip"}), tip
        transaction_id = await conn.fetchval(
            "INSERT INTO creator.transactions (user_id, creator_id, transaction_type,"
            " gross_amount, platform_fee, net_amount, currency, idempotency_key, payment_method,"
            " metadata) VALUES ($1, $2, 'tip', $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            tipper,
            creator_id,
            amount,
            fee,
            net,
            creator["currency"],
            key,
            method,
            {"is_anonymous": anonymous},
        )
    tip_ids: list[uuid.UUID] = []

    async def record(conn: asyncpg.Connection, payment: Payment) -> None:
        tip_id = await conn.fetchval(
            "INSERT INTO creator.tips (tipper_id, creator_id, transaction_id, amount,"
            " currency, message, is_anonymous, content_id, message_id, live_stream_id,"
            " payment_method) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            " RETURNING id",
            tipper,
            creator_id,
            payment.id,
            amount,
            payment.currency,
            message,
            anonymous,
            content_id,
            message_id,
            live_stream_id,
            method,
        )
        tip_ids.append(tip_id)
        await relay.announce(conn, "tip", tip_id)
        await conn.execute(
            "INSERT INTO creator.notifications (user_id, notification_type, title, body,"
            " actor_id, related_entity_type, related_entity_id, data)"
            " VALUES ($1, 'tip_received', 'You received a tip', $2, $3, 'tip', $4,"
            " jsonb_build_object('amount', $5::bigint, 'currency', $6::text))",
            creator_id,
            message,
            None if anonymous else tipper,
            tip_id,
            amount,
            payment.currency,
        )
        await notices.tip_received(
            conn,
            creator_id=creator_id,
            tip_id=tip_id,
            amount=amount,
            currency=payment.currency,
            tipper_name=None if anonymous else await _username(conn, tipper),
            note=message,
        )
        await conn.execute(
            "INSERT INTO creator.user_analytics (user_id, event_type, target_user_id)"
            " VALUES ($1, 'tip_sent', $2), ($2, 'tip_received', $3)",
            tipper,
            creator_id,
            None if anonymous else tipper,
        )

    payment = await _settle(
        pool, processor, transaction_id, method=method, token=token, on_success=record
    )
    return payment, tip_ids[0] if tip_ids else None
