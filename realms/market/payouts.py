"""Market payouts: a seller's request takes the amount out of their GoGoMoney wallet at once
(a `payout` transaction, refused with Conflict when the balance cannot cover it, however many
requests race), accounting moves it on (pending -> processing -> completed, or failed /
cancelled, which put the amount back as a `refund`), and the seller may cancel it while it
is pending. The seller is notified of every move (category payment)."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from realms.market import events, money

# Accounting's moves; cancelled is also the seller's while pending.
TRANSITIONS = {
    "pending": frozenset({"processing", "completed", "failed", "cancelled"}),
    "processing": frozenset({"completed", "failed"}),
}
GIVES_BACK = frozenset({"failed", "cancelled"})


async def request_payout(
    conn: asyncpg.Connection,
    seller: int,
    amount: Decimal,
    method: str,
    bank_account_id: int | None,
    notes: str | None,
) -> int:
    """A seller's payout request; its id. The wallet is debited in the same transaction."""
    async with conn.transaction():
        if bank_account_id is not None:
            owner = await conn.fetchval(
                "SELECT user_id FROM market.bank_accounts WHERE id = $1 AND deleted_at IS NULL",
                bank_account_id,
            )
            if owner != seller:
                raise NotFound(f"you have no bank account {bank_account_id}")
        elif method == "bank_transfer":
            raise BadRequest("a bank transfer needs `bank_account_id`")
        wallet = await money.wallet_of(conn, seller)
        currency = await conn.fetchval("SELECT currency FROM market.wallets WHERE id = $1", wallet)
        payout: int = await conn.fetchval(
            "INSERT INTO market.payouts (seller_id, amount, currency, method, bank_account_id,"
            " notes) VALUES ($1, $2, $3, $4::market.payout_method_enum, $5, $6) RETURNING id",
            seller,
            amount,
            currency,
            method,
            bank_account_id,
            notes,
        )
        await money.move(conn, wallet, "payout", -amount, ("payout", payout), "payout request")
    return payout


async def move_payout(
    conn: asyncpg.Connection,
    payout_id: int,
    actor: int,
    accounting: bool,
    status: str,
    transaction_id: str | None,
    notes: str | None,
) -> tuple[str, int]:
    """Move a payout on; (previous status, seller). Forbidden for the seller's moves other
    than cancelling a pending payout, Conflict for a move from a final state."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT seller_id, amount, status::text AS status FROM market.payouts"
            " WHERE id = $1 FOR UPDATE",
            payout_id,
        )
        if row is None or (not accounting and row["seller_id"] != actor):
            raise NotFound(f"payout {payout_id} does not exist")
        if not accounting and status != "cancelled":
            raise Forbidden("accounting moves payouts; a seller may only cancel a pending one")
        if status not in TRANSITIONS.get(row["status"], frozenset()):
            raise Conflict(f"illegal payout status transition: {row['status']} -> {status}")
        await conn.execute(
            "UPDATE market.payouts SET status = $2::market.payout_status_enum,"
            " transaction_id = coalesce($3, transaction_id), notes = coalesce($4, notes),"
            " processed_at = CASE WHEN $2 IN ('completed', 'failed', 'cancelled') THEN now()"
            "   ELSE processed_at END"
            " WHERE id = $1",
            payout_id,
            status,
            transaction_id,
            notes,
        )
        if status in GIVES_BACK:
            wallet = await money.wallet_of(conn, row["seller_id"])
            await money.move(
                conn, wallet, "refund", row["amount"], ("payout", payout_id), f"payout {status}"
            )
        await events.payout_status(conn, payout_id, row["seller_id"], status)
    return row["status"], row["seller_id"]
