"""Money (4007): market.apply_wallet_transaction() keeps wallets and their history in step and
never lets a balance go below zero, even under concurrent debits; wallet transactions are
append-only; commissions and payouts agree with their order and bank account."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from itertools import pairwise

import asyncpg

from kernel.db import connect
from tests.realms.market.world import D, World, rejected

APPLY = "SELECT * FROM market.apply_wallet_transaction($1, $2, $3, $4, $5, $6, $7)"


async def apply(
    db: asyncpg.Connection,
    wallet: int,
    kind: str,
    amount: Decimal,
    ref: tuple[str, int] | None = None,
) -> asyncpg.Record:
    row: asyncpg.Record = await db.fetchrow(
        APPLY, wallet, kind, amount, ref and ref[0], ref and ref[1], f"{kind} {amount}", None
    )
    return row


async def balance(w: World, wallet: int) -> Decimal:
    value: Decimal = await w.value("wallets", "balance", wallet)
    return value


async def transactions(w: World, wallet: int) -> list[asyncpg.Record]:
    return await w.db.fetch(
        "SELECT type::text, amount, balance_before, balance_after"
        " FROM market.wallet_transactions WHERE wallet_id = $1 ORDER BY id",
        wallet,
    )


async def test_a_credit_raises_the_balance_and_records_the_transaction(txworld: World) -> None:
    wallet = await txworld.wallet()
    txn = await apply(txworld.db, wallet, "deposit", D(100), ("payment", 7))
    assert await balance(txworld, wallet) == D(100)
    assert (txn["type"], txn["amount"], txn["balance_before"], txn["balance_after"]) == (
        "deposit",
        D(100),
        D(0),
        D(100),
    )
    assert (txn["reference_type"], txn["reference_id"]) == ("payment", 7)


async def test_a_debit_lowers_the_balance_down_to_exactly_zero(txworld: World) -> None:
    wallet = await txworld.wallet(balance=D(100))
    await apply(txworld.db, wallet, "purchase", D(-60))
    await apply(txworld.db, wallet, "payout", D(-40))
    assert await balance(txworld, wallet) == D(0)
    assert [tuple(r) for r in await transactions(txworld, wallet)] == [
        ("purchase", D(-60), D(100), D(40)),
        ("payout", D(-40), D(40), D(0)),
    ]


async def test_a_debit_beyond_the_balance_is_refused_and_writes_nothing(txworld: World) -> None:
    wallet = await txworld.wallet(balance=D(50))
    error = await rejected(
        txworld.db,
        apply(txworld.db, wallet, "purchase", D("-50.01")),
        asyncpg.CheckViolationError,
        "wallets_balance_non_negative",
    )
    assert "insufficient funds" in str(error)
    assert await balance(txworld, wallet) == D(50)
    assert await transactions(txworld, wallet) == []


async def test_an_inactive_wallet_is_refused(txworld: World) -> None:
    wallet = await txworld.wallet(balance=D(50), is_active=False)
    await rejected(
        txworld.db,
        apply(txworld.db, wallet, "deposit", D(1)),
        asyncpg.CheckViolationError,
        "wallets_is_active",
    )
    assert await balance(txworld, wallet) == D(50)


async def test_an_unknown_wallet_is_refused(txworld: World) -> None:
    await rejected(
        txworld.db, apply(txworld.db, 2_000_000_000, "deposit", D(1)), asyncpg.NoDataFoundError
    )


async def test_a_transaction_of_the_wrong_sign_is_refused_and_the_balance_kept(
    txworld: World,
) -> None:
    wallet = await txworld.wallet(balance=D(50))
    await rejected(
        txworld.db,
        apply(txworld.db, wallet, "deposit", D(-10)),
        asyncpg.CheckViolationError,
        "wallet_transactions_direction_matches_type",
    )
    await rejected(
        txworld.db,
        apply(txworld.db, wallet, "commission", D(0)),
        asyncpg.CheckViolationError,
        "wallet_transactions_amount_not_zero",
    )
    assert await balance(txworld, wallet) == D(50)


async def test_wallet_never_goes_negative_under_50_concurrent_debits(
    world: World, dsn: str
) -> None:
    wallet = await world.wallet(balance=D(100))

    async def debit() -> bool:
        conn = await connect(dsn)
        try:
            await apply(conn, wallet, "purchase", D(-3))
            return True
        except asyncpg.CheckViolationError as exc:
            assert exc.constraint_name == "wallets_balance_non_negative"
            return False
        finally:
            await conn.close()

    results = await asyncio.gather(*(debit() for _ in range(50)))
    assert sum(results) == 33  # 33 * 3 = 99 of 100
    assert await balance(world, wallet) == D(1)
    history = await transactions(world, wallet)
    assert len(history) == 33
    for earlier, later in pairwise(history):
        assert later["balance_before"] == earlier["balance_after"]
    assert history[-1]["balance_after"] == D(1)


async def test_wallet_transactions_are_append_only(txworld: World) -> None:
    txn = await txworld.wallet_txn()
    await rejected(
        txworld.db,
        txworld.db.execute(
            "UPDATE market.wallet_transactions SET amount = 1000, balance_after = 1000"
            " WHERE id = $1",
            txn,
        ),
        asyncpg.CheckViolationError,
        "wallet_transactions_append_only",
    )


async def test_commission_seller_is_the_orders_seller(txworld: World) -> None:
    order = await txworld.order()
    await rejected(
        txworld.db,
        txworld.commission(order_id=order, seller_id=await txworld.seller()),
        asyncpg.ForeignKeyViolationError,
        "commissions_seller_is_order_seller",
    )


async def test_payout_bank_account_is_the_sellers_own(txworld: World) -> None:
    seller = await txworld.seller()
    own = await txworld.bank_account(seller)
    await txworld.payout(seller_id=seller, bank_account_id=own)
    someone_elses = await txworld.bank_account()
    await rejected(
        txworld.db,
        txworld.payout(seller_id=seller, bank_account_id=someone_elses),
        asyncpg.ForeignKeyViolationError,
        "payouts_bank_account_is_sellers",
    )
