"""Creators' payouts (issue 16, item 6): the balance of net earnings available to withdraw, a
payout request (a `payout` transaction, never more than is available, one at a time per
creator so concurrent requests cannot overdraw), and the status moves staff make as the
transfer proceeds. Every write names its actor for the audit trail (sql/3008)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import asyncpg
import msgspec
from aiohttp import web

from kernel.errors import BadRequest, Conflict, NotFound
from realms.creator.moderation import audit_context

PayoutMethod = Literal["bank_transfer", "paypal", "wallet", "crypto", "card"]
PayoutStatus = Literal["processing", "completed", "failed", "cancelled"]
EARNINGS = ("subscription", "tip", "content_purchase", "message_purchase", "stream_access")
# transactions' status moves (sql/3005) as they apply to a payout.
MOVES: dict[str, frozenset[str]] = {
    "pending": frozenset({"processing", "completed", "failed", "cancelled"}),
    "processing": frozenset({"completed", "failed", "cancelled"}),
}


class Balance(msgspec.Struct, kw_only=True):
    """A creator's money in one currency, minor units. available = earned - refunded -
    paid_out - in_flight."""

    currency: str
    earned: int
    refunded: int
    paid_out: int
    in_flight: int
    available: int


class Payout(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    creator_id: uuid.UUID
    amount: int
    currency: str
    status: str
    payment_method: str | None
    processor_transaction_id: str | None
    failure_code: str | None
    failure_reason: str | None
    created_at: datetime
    completed_at: datetime | None


PAYOUT_COLUMNS = (
    "id, creator_id, net_amount AS amount, currency, status, payment_method,"
    " processor_transaction_id, failure_code, failure_reason, created_at, completed_at"
)

# Earnings are the net of completed payments to the creator; a partial refund (its original
# still completed) takes back its net; a fully refunded payment is no longer completed.
# Payouts count from their request on (pending, processing) unless they fail or are cancelled.
_BALANCES = """
SELECT t.currency,
       coalesce(sum(t.net_amount) FILTER (WHERE t.transaction_type = ANY ($2::text[])
                                           AND t.status = 'completed'), 0)::bigint AS earned,
       coalesce(sum(t.net_amount) FILTER (WHERE t.transaction_type = 'refund'
                                           AND t.status = 'completed'
                                           AND o.status = 'completed'), 0)::bigint AS refunded,
       coalesce(sum(t.net_amount) FILTER (WHERE t.transaction_type = 'payout'
                                           AND t.status = 'completed'), 0)::bigint AS paid_out,
       coalesce(sum(t.net_amount) FILTER (WHERE t.transaction_type = 'payout'
                                           AND t.status IN ('pending', 'processing')),
                0)::bigint AS in_flight
  FROM creator.transactions t
  LEFT JOIN creator.transactions o ON o.id = t.related_transaction_id
 WHERE t.creator_id = $1
 GROUP BY t.currency
"""


def _balance(row: asyncpg.Record) -> Balance:
    return Balance(
        currency=row["currency"],
        earned=row["earned"],
        refunded=row["refunded"],
        paid_out=row["paid_out"],
        in_flight=row["in_flight"],
        available=row["earned"] - row["refunded"] - row["paid_out"] - row["in_flight"],
    )


async def balances(conn: asyncpg.Connection | asyncpg.Pool, creator: uuid.UUID) -> list[Balance]:
    """Per currency; the creator's own currency is always listed (zeros when nothing moved)."""
    found = {r["currency"]: _balance(r) for r in await conn.fetch(_BALANCES, creator, EARNINGS)}
    own = await conn.fetchval("SELECT currency FROM creator.users WHERE id = $1", creator)
    if own is not None and own not in found:
        found[own] = Balance(
            currency=own, earned=0, refunded=0, paid_out=0, in_flight=0, available=0
        )
    return sorted(found.values(), key=lambda b: b.currency)


async def request_payout(
    conn: asyncpg.Connection,
    *,
    creator: uuid.UUID,
    amount: int,
    currency: str | None,
    method: PayoutMethod,
    idempotency_key: str | None,
    request: web.Request | None = None,
) -> tuple[Payout, bool]:
    """(payout, created). The creator's account row is locked while the balance is read and
    the payout written, so concurrent requests are served one after the other and together
    never exceed what is available. A retry with the same idempotency_key answers the first
    payout."""
    if amount <= 0:
        raise BadRequest("a payout's amount is above zero")
    key = f"payout:{creator}:{idempotency_key or uuid.uuid4()}"
    async with conn.transaction():
        await audit_context(conn, creator, request)
        own = await conn.fetchval(
            "SELECT currency FROM creator.users WHERE id = $1 FOR NO KEY UPDATE", creator
        )
        if own is None:
            raise NotFound("your account does not exist")
        again = await conn.fetchrow(
            f"SELECT {PAYOUT_COLUMNS} FROM creator.transactions WHERE idempotency_key = $1", key
        )
        if again is not None:
            return msgspec.convert(dict(again), Payout), False
        currency = currency or own
        balance = next((b for b in await balances(conn, creator) if b.currency == currency), None)
        available = balance.available if balance else 0
        if amount > available:  # the request is fine; the balance is what stands in its way
            raise Conflict(
                f"a payout of {amount} exceeds the {available} {currency} available",
                details={"available": available, "currency": currency},
            )
        row = await conn.fetchrow(
            "INSERT INTO creator.transactions (user_id, creator_id, transaction_type, status,"
            " gross_amount, platform_fee, net_amount, currency, idempotency_key, payment_method)"
            " VALUES ($1, $1, 'payout', 'pending', $2, 0, $2, $3, $4, $5)"
            f" RETURNING {PAYOUT_COLUMNS}",
            creator,
            amount,
            currency,
            key,
            method,
        )
        return msgspec.convert(dict(row), Payout), True


async def move(
    conn: asyncpg.Connection,
    *,
    actor: uuid.UUID,
    payout_id: uuid.UUID,
    status: PayoutStatus,
    owner: uuid.UUID | None = None,
    failure_code: str | None = None,
    failure_reason: str | None = None,
    processor_transaction_id: str | None = None,
    request: web.Request | None = None,
) -> Payout:
    """Move a payout on (staff), or cancel one's own pending payout (`owner` set: only that
    creator's payouts are found). 409 for a move its status does not allow."""
    if status == "failed" and not failure_reason:
        raise BadRequest("a failed payout needs failure_reason")
    async with conn.transaction():
        await audit_context(conn, actor, request)
        current = await conn.fetchval(
            "SELECT status FROM creator.transactions WHERE id = $1"
            " AND transaction_type = 'payout' AND ($2::uuid IS NULL OR creator_id = $2)"
            " FOR UPDATE",
            payout_id,
            owner,
        )
        if current is None:
            raise NotFound(f"no payout {payout_id}")
        if owner is not None and current != "pending":
            raise Conflict(f"a {current} payout can no longer be cancelled")
        if status not in MOVES.get(current, frozenset()):
            raise Conflict(f"a {current} payout cannot become {status}")
        row = await conn.fetchrow(
            "UPDATE creator.transactions SET status = $2::text,"
            " completed_at = CASE WHEN $2::text = 'completed' THEN now() END,"
            " failure_code = CASE WHEN $2::text = 'failed' THEN $3 END,"
            " failure_reason = CASE WHEN $2::text = 'failed' THEN $4 END,"
            " processor_transaction_id = coalesce($5, processor_transaction_id),"
            " payment_processor = CASE WHEN $5 IS NULL THEN payment_processor"
            " ELSE coalesce(payment_processor, 'manual') END"
            f" WHERE id = $1 RETURNING {PAYOUT_COLUMNS}",
            payout_id,
            status,
            failure_code,
            failure_reason,
            processor_transaction_id,
        )
        return msgspec.convert(dict(row), Payout)
