"""Market money: GoGoMoney wallets (moved only through market.apply_wallet_transaction, whose
conditional UPDATE keeps every balance >= 0 under any concurrency), commission rates, and
what an order's status change does to money and stock: settlement on delivery, release and
refund on cancellation, reversal on refund. Plain async functions over a connection, run in
the caller's transaction."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeAlias

import asyncpg

from kernel.errors import Conflict, NotFound

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

CENT = Decimal("0.01")
# The platform's commission on an item when settings hold no rate for it (percent).
DEFAULT_COMMISSION_RATE = Decimal("10.00")
# settings keys: `commission.default_rate` (number, percent) and `commission.category_rates`
# (json object: category id -> percent) for categories that differ.
DEFAULT_RATE_KEY = "commission.default_rate"
CATEGORY_RATES_KEY = "commission.category_rates"


def cents(value: Decimal) -> Decimal:
    """Round half up to the cent, as every stored amount is."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


class CommissionRates:
    """The commission percent of a category: its own rate, else the default."""

    def __init__(self, default: Decimal, by_category: dict[int, Decimal]) -> None:
        self.default = default
        self.by_category = by_category

    def of(self, category_id: int) -> Decimal:
        return self.by_category.get(category_id, self.default)


async def commission_rates(conn: Conn) -> CommissionRates:
    rows = await conn.fetch(
        "SELECT key, value FROM market.settings WHERE key = ANY ($1::text[])",
        [DEFAULT_RATE_KEY, CATEGORY_RATES_KEY],
    )
    values = {r["key"]: r["value"] for r in rows}
    default = Decimal(values.get(DEFAULT_RATE_KEY, DEFAULT_COMMISSION_RATE))
    raw = json.loads(values.get(CATEGORY_RATES_KEY, "{}"))
    by_category = {int(k): Decimal(str(v)) for k, v in raw.items()} if isinstance(raw, dict) else {}
    return CommissionRates(default, by_category)


# -- wallets ---------------------------------------------------------------------------------------


async def wallet_of(conn: Conn, user_id: int) -> int:
    """The user's wallet id; the wallet is opened (balance 0) on first use."""
    wallet: int | None = await conn.fetchval(
        "WITH made AS (INSERT INTO market.wallets (user_id) VALUES ($1)"
        "  ON CONFLICT (user_id) DO NOTHING RETURNING id)"
        " SELECT id FROM made UNION ALL SELECT id FROM market.wallets WHERE user_id = $1"
        " LIMIT 1",
        user_id,
    )
    if wallet is None:  # a concurrent first use committed between the two reads
        wallet = await conn.fetchval("SELECT id FROM market.wallets WHERE user_id = $1", user_id)
    assert wallet is not None
    return wallet


async def move(
    conn: asyncpg.Connection,
    wallet_id: int,
    kind: str,
    amount: Decimal,
    reference: tuple[str, int] | None = None,
    description: str | None = None,
) -> asyncpg.Record:
    """Move the wallet's balance by `amount` (signed) and record it; the transaction row.
    Conflict ("insufficient funds ...") when it would go below zero or the wallet is
    inactive: nothing is written, and the caller's transaction should end."""
    try:
        row: asyncpg.Record = await conn.fetchrow(
            "SELECT * FROM market.apply_wallet_transaction($1, $2::market.transaction_type_enum,"
            " $3, $4, $5, $6)",
            wallet_id,
            kind,
            amount,
            reference[0] if reference else None,
            reference[1] if reference else None,
            description,
        )
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name == "wallets_balance_non_negative":
            raise Conflict(str(exc), details={"reason": "insufficient_funds"}) from None
        if exc.constraint_name == "wallets_is_active":
            raise Conflict(str(exc), details={"reason": "wallet_inactive"}) from None
        raise
    except asyncpg.NoDataFoundError:
        raise NotFound(f"wallet {wallet_id} does not exist") from None
    return row


# -- what status changes do to money and stock --------------------------------------------------

# Stock given back by cancelled orders, per table: the rows are locked in id order first (as
# checkout takes them), so a release never deadlocks with a checkout.
_RELEASE = {
    table: f"""
WITH back AS (
    SELECT {column} AS id, sum(quantity) AS q FROM market.order_items
     WHERE order_id = ANY ($1::bigint[]) AND {column} IS NOT NULL GROUP BY {column}
), locked AS MATERIALIZED (
    SELECT x.id, back.q FROM market.{table} x JOIN back ON back.id = x.id
     ORDER BY x.id FOR NO KEY UPDATE OF x
)
UPDATE market.{table} x SET {counter} FROM locked WHERE x.id = locked.id
"""
    for table, column, counter in (
        ("products", "product_id", "stock_quantity = x.stock_quantity + locked.q"),
        ("product_variants", "variant_id", "stock_quantity = x.stock_quantity + locked.q"),
        (
            "flash_sale_products",
            "flash_sale_product_id",
            "sold_count = greatest(x.sold_count - locked.q, 0)",
        ),
    )
}

# GoGoMoney payments of cancelled orders go back to their buyers' wallets.
_REFUND_PAID = """
WITH due AS (
    SELECT o.id, o.total_amount, o.order_number, w.id AS wallet_id
      FROM market.orders o JOIN market.wallets w ON w.user_id = o.buyer_id
     WHERE o.id = ANY ($1::bigint[]) AND o.payment_method = 'gogomoney'
       AND o.payment_status = 'paid' AND o.total_amount > 0
     ORDER BY w.id, o.id
), moved AS (
    SELECT d.id, market.apply_wallet_transaction(d.wallet_id, 'refund', d.total_amount, 'order',
               d.id, 'refund of cancelled order ' || d.order_number) AS txn
      FROM due d
)
UPDATE market.orders o SET payment_status = 'refunded'
 WHERE o.id = ANY ($1::bigint[]) AND o.payment_status = 'paid'
   AND (o.payment_method <> 'gogomoney' OR o.total_amount = 0
        OR o.id IN (SELECT id FROM moved WHERE (txn).id IS NOT NULL))
"""


async def release_cancelled(conn: asyncpg.Connection, order_ids: list[int]) -> None:
    """What cancelling `order_ids` (already cancelled in this transaction) undoes: their stock
    and flash-sale stock come back, GoGoMoney payments are refunded to the buyers' wallets
    (other paid methods are marked refunded: the provider returns them), and their pending
    commissions are cancelled. Promo code usage stays counted (usage is usage)."""
    if not order_ids:
        return
    for sql in _RELEASE.values():
        await conn.execute(sql, order_ids)
    await conn.execute(_REFUND_PAID, order_ids)
    await conn.execute(
        "UPDATE market.commissions SET status = 'cancelled'"
        " WHERE order_id = ANY ($1::bigint[]) AND status = 'pending'",
        order_ids,
    )


async def _seller_net(conn: asyncpg.Connection, order_id: int) -> Decimal:
    """What the seller earns on an order: its items after their discounts, less commission."""
    net: Decimal = await conn.fetchval(
        "SELECT coalesce(sum(i.subtotal - i.discount_amount), 0) - o.commission_amount"
        "  FROM market.orders o LEFT JOIN market.order_items i ON i.order_id = o.id"
        " WHERE o.id = $1 GROUP BY o.id, o.commission_amount",
        order_id,
    )
    return net


async def settle_delivered(conn: asyncpg.Connection, order_id: int) -> None:
    """A delivered order: cash is collected (paid), and a paid order's seller is credited
    with the items' value less commission (a `deposit` referencing the order); its
    commissions are paid. Card and bank-transfer orders still pending payment settle when
    their payment arrives (mark_paid)."""
    order = await conn.fetchrow(
        "UPDATE market.orders SET payment_status = CASE WHEN payment_method = 'cash'"
        "   AND payment_status = 'pending' THEN 'paid' ELSE payment_status END"
        " WHERE id = $1 RETURNING seller_id, order_number, payment_status::text AS paid",
        order_id,
    )
    if order["paid"] != "paid":
        return
    await _settle_seller(conn, order_id, order["seller_id"], order["order_number"])


async def _settle_seller(
    conn: asyncpg.Connection, order_id: int, seller_id: int, order_number: str
) -> None:
    """Credit the seller of a paid, delivered order with its net (a `deposit`) and mark its
    commissions paid."""
    net = await _seller_net(conn, order_id)
    if net > 0:
        wallet = await wallet_of(conn, seller_id)
        await move(conn, wallet, "deposit", net, ("order", order_id), f"sale {order_number}")
    await conn.execute(
        "UPDATE market.commissions SET status = 'paid', paid_at = now()"
        " WHERE order_id = $1 AND status = 'pending'",
        order_id,
    )


async def mark_paid(conn: asyncpg.Connection, order_id: int) -> bool:
    """A card or bank-transfer payment of the order arrived (payments.py): a `pending` or
    `failed` payment becomes `paid`, and an order delivered meanwhile is settled to its
    seller at once (as settle_delivered would have). False, changing nothing, when the order
    is not awaiting payment: paid already, refunded, or cancelled / refunded as an order.
    Run in the caller's transaction; the UPDATE's row lock orders it with status changes."""
    order = await conn.fetchrow(
        "UPDATE market.orders SET payment_status = 'paid'"
        " WHERE id = $1 AND payment_status IN ('pending', 'failed')"
        "   AND status NOT IN ('cancelled', 'refunded')"
        " RETURNING status::text AS status, seller_id, order_number",
        order_id,
    )
    if order is None:
        return False
    if order["status"] == "delivered":
        await _settle_seller(conn, order_id, order["seller_id"], order["order_number"])
    return True


async def reverse_refunded(conn: asyncpg.Connection, order_id: int, previous: str) -> None:
    """A refund (accounting's): after delivery the buyer's GoGoMoney payment comes back and
    the seller's settlement is taken back (a `withdrawal`: Conflict when the seller's wallet
    cannot cover it, and then nothing is refunded); commissions are cancelled. A cancelled
    order was released when it was cancelled."""
    if previous != "delivered":
        return
    order = await conn.fetchrow(
        "SELECT buyer_id, seller_id, order_number, total_amount, payment_method::text AS method,"
        " payment_status::text AS paid FROM market.orders WHERE id = $1",
        order_id,
    )
    if order["paid"] != "paid":
        return
    settled: Decimal | None = await conn.fetchval(
        "SELECT sum(t.amount) FROM market.wallet_transactions t"
        "  JOIN market.wallets w ON w.id = t.wallet_id"
        " WHERE w.user_id = $1 AND t.reference_type = 'order' AND t.reference_id = $2"
        "   AND t.type = 'deposit'",
        order["seller_id"],
        order_id,
    )
    if settled:
        seller_wallet = await wallet_of(conn, order["seller_id"])
        await move(
            conn,
            seller_wallet,
            "withdrawal",
            -settled,
            ("order", order_id),
            f"refund of order {order['order_number']}",
        )
    if order["method"] == "gogomoney" and order["total_amount"] > 0:
        buyer_wallet = await wallet_of(conn, order["buyer_id"])
        await move(
            conn,
            buyer_wallet,
            "refund",
            order["total_amount"],
            ("order", order_id),
            f"refund of order {order['order_number']}",
        )
    await conn.execute(
        "UPDATE market.orders SET payment_status = 'refunded' WHERE id = $1", order_id
    )
    await conn.execute(
        "UPDATE market.commissions SET status = 'cancelled' WHERE order_id = $1", order_id
    )


async def after_status_change(
    conn: asyncpg.Connection, order_id: int, previous: str, status: str
) -> None:
    """Run in the status change's transaction, after the UPDATE."""
    if status == "cancelled":
        await release_cancelled(conn, [order_id])
    elif status == "delivered":
        await settle_delivered(conn, order_id)
    elif status == "refunded":
        await reverse_refunded(conn, order_id, previous)
