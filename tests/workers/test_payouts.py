"""Payouts (issue 21 item 3) as the scheduled jobs run them, against a real HTTP stand-in of the
payouts API: the daily batch gathers each analyst's shares into one payout, the hourly job
sends it with basic auth and an idempotency key, a share is never in two payouts, and a lost
answer or a rolled-back send never pays twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from kernel.config import load_settings
from kernel.db import connect
from kernel.errors import Unavailable
from realms.analyst import jobs, payouts
from realms.analyst.payouts import PayoutNotSent, PayoutsClient, payouts_config
from tests.workers.payouts_stub import (
    FUND_ACCOUNT,
    OTHER_FUND_ACCOUNT,
    PayoutsStub,
    make_share,
    paid_analyst,
    payouts_env,
    payouts_stub,
)

__all__ = ["payouts_stub"]  # the fixture, used by name

NOW = datetime(2025, 3, 3, 4, 0, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW

    async def sleep_until(self, when: datetime) -> None:
        raise AssertionError("jobs do not sleep")


@pytest.fixture
def env(
    payouts_stub: PayoutsStub, monkeypatch: pytest.MonkeyPatch, dsn: str, secret: str
) -> PayoutsStub:
    """The worker's environment (what jobs read through load_settings) aimed at the stub."""
    for name, value in {
        **payouts_env(payouts_stub),
        "DATABASE_URL": dsn,
        "SWITCHBOARD_SECRET": secret,
    }.items():
        monkeypatch.setenv(name, value)
    return payouts_stub


def client() -> PayoutsClient:
    return PayoutsClient(payouts_config(load_settings()))


async def invariant_holds(db: asyncpg.Connection) -> None:
    """payout_amount + platform_commission = amount on every row, and a payout's amount is the
    sum of the shares it carries while they are in it."""
    assert not await db.fetch(
        "SELECT id FROM analyst.payment_transactions"
        " WHERE payout_amount + platform_commission <> amount"
    )
    assert not await db.fetch(
        "SELECT o.id FROM analyst.payment_transactions o"
        " JOIN analyst.payment_transactions s ON s.payout_transaction_id = o.id"
        " WHERE o.transaction_type = 'payout' GROUP BY o.id, o.amount"
        " HAVING o.amount <> sum(s.payout_amount)"
    )


async def test_the_batch_pays_each_analysts_share_once_through_the_payouts_api(
    env: PayoutsStub, db: asyncpg.Connection
) -> None:
    rich, poor, unpaid = (
        await paid_analyst(db),
        await paid_analyst(db),
        await paid_analyst(db, None),
    )
    shares = [await make_share(db, rich, amount) for amount in (99900, 49900, 1999)]
    await make_share(db, poor, 100)  # 80 paise due: under the minimum payout, waits
    await make_share(db, unpaid)  # no payout account yet: waits
    await make_share(db, rich, status="pending")  # an order not paid: nothing earned
    clock = FixedClock()

    assert await jobs.queue_payouts(db, clock) == 1
    assert await jobs.queue_payouts(db, clock) == 0  # nothing left to gather
    payout = await db.fetchrow(
        "SELECT * FROM analyst.payment_transactions WHERE transaction_type = 'payout'"
    )
    expected = 79920 + 39920 + 1599
    assert (payout["analyst_id"], payout["amount"], payout["payout_amount"]) == (
        rich,
        expected,
        expected,
    )
    assert (payout["platform_commission"], payout["payout_status"], payout["status"]) == (
        0,
        "created",
        "pending",
    )
    assert env.requests == []  # queueing uses no network

    assert await jobs.send_payouts(db, clock) == 1
    assert len(env.requests) == 1
    sent = env.requests[0]
    assert sent["key"] == str(payout["id"])
    assert sent["body"]["reference_id"] == str(payout["id"])
    assert sent["body"]["amount"] == expected and sent["body"]["currency"] == "INR"
    assert sent["body"]["fund_account_id"] == FUND_ACCOUNT and sent["body"]["mode"] == "IMPS"
    made = env.made_for(payout["id"])
    assert len(made) == 1
    rows = await db.fetch(
        "SELECT id, payout_status, payout_transaction_id, razorpay_payout_id"
        " FROM analyst.payment_transactions WHERE id = ANY($1::uuid[])",
        shares,
    )
    assert {(r["payout_status"], r["payout_transaction_id"]) for r in rows} == {
        ("in_payout", payout["id"])
    }
    assert {r["razorpay_payout_id"] for r in rows} == {made[0]["id"]}
    recorded = await db.fetchrow(
        "SELECT payout_status, razorpay_payout_id FROM analyst.payment_transactions WHERE id = $1",
        payout["id"],
    )
    assert tuple(recorded) == ("processing", made[0]["id"])
    assert await jobs.send_payouts(db, clock) == 0  # sent payouts are not sent again
    assert len(env.requests) == 1
    await invariant_holds(db)


async def test_a_send_whose_transaction_is_lost_is_sent_again_with_the_same_key(
    env: PayoutsStub, db: asyncpg.Connection
) -> None:
    """The API made the payout but our record of it rolled back: the next run sends the same
    idempotency key, gets the same payout back, and records it. One payout, not two."""
    analyst = await paid_analyst(db)
    await make_share(db, analyst)
    (payout_id,) = await payouts.queue_payouts(db)
    async with client() as api:
        tx = db.transaction()
        await tx.start()
        assert await payouts.send_payout(db, api, payout_id, NOW) == "sent"
        await tx.rollback()
        status = await db.fetchval(
            "SELECT payout_status FROM analyst.payment_transactions WHERE id = $1", payout_id
        )
        assert status == "created"
        assert await payouts.send_payout(db, api, payout_id, NOW) == "sent"
    assert [r["key"] for r in env.requests] == [str(payout_id), str(payout_id)]
    assert len(env.payouts) == 1 and len(env.made_for(payout_id)) == 1
    recorded = await db.fetchval(
        "SELECT razorpay_payout_id FROM analyst.payment_transactions WHERE id = $1", payout_id
    )
    assert recorded == next(iter(env.payouts))


async def test_concurrent_batches_never_put_one_share_in_two_payouts(
    env: PayoutsStub, dsn: str, db: asyncpg.Connection
) -> None:
    analysts = [await paid_analyst(db) for _ in range(4)]
    for analyst in analysts:
        for _ in range(15):
            await make_share(db, analyst, 10000)
    conns = [await connect(dsn) for _ in range(6)]

    async def batch(conn: asyncpg.Connection) -> list[uuid.UUID]:
        async with conn.transaction():
            return await payouts.queue_payouts(conn)

    try:
        results = await asyncio.gather(*(batch(c) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    made = [p for ids in results for p in ids]
    assert len(made) == len(set(made))
    shares = await db.fetch(
        "SELECT payout_status, payout_transaction_id FROM analyst.payment_transactions"
        " WHERE transaction_type = 'subscription_payment'"
    )
    assert all(s["payout_status"] == "in_payout" for s in shares)  # every share, once
    total = await db.fetchval(
        "SELECT sum(amount) FROM analyst.payment_transactions WHERE transaction_type = 'payout'"
    )
    assert total == 4 * 15 * 8000
    await invariant_holds(db)


async def test_a_share_in_a_live_payout_cannot_be_moved_to_another(
    env: PayoutsStub, db: asyncpg.Connection
) -> None:
    analyst = await paid_analyst(db)
    share = await make_share(db, analyst)
    (payout_id,) = await payouts.queue_payouts(db)
    await make_share(db, analyst)
    (second,) = await payouts.queue_payouts(db)
    with pytest.raises(asyncpg.CheckViolationError, match="has not failed"):
        await db.execute(
            "UPDATE analyst.payment_transactions SET payout_transaction_id = $2 WHERE id = $1",
            share,
            second,
        )
    assert payout_id != second


async def test_a_refused_payout_fails_releases_its_shares_and_tells_the_analyst(
    env: PayoutsStub, db: asyncpg.Connection
) -> None:
    analyst = await paid_analyst(db, OTHER_FUND_ACCOUNT)
    env.refused_fund_accounts[OTHER_FUND_ACCOUNT] = "Fund account is not active"
    share = await make_share(db, analyst)
    (payout_id,) = await payouts.queue_payouts(db)
    assert await jobs.send_payouts(db, FixedClock()) == 1
    payout = await db.fetchrow(
        "SELECT status, payout_status, failure_reason FROM analyst.payment_transactions"
        " WHERE id = $1",
        payout_id,
    )
    assert (payout["status"], payout["payout_status"]) == ("failed", "failed")
    assert "Fund account is not active" in payout["failure_reason"]
    released = await db.fetchrow(
        "SELECT payout_status, payout_transaction_id FROM analyst.payment_transactions"
        " WHERE id = $1",
        share,
    )
    assert tuple(released) == ("pending", None)
    note = await db.fetchrow(
        "SELECT notification_type, title FROM analyst.notifications WHERE user_id = $1", analyst
    )
    assert note["notification_type"] == "payout_failed" and "799.20" in note["title"]
    # Fixed account: the next batch pays the same share in a new payout.
    env.refused_fund_accounts.clear()
    assert await jobs.queue_payouts(db, FixedClock()) == 1
    assert await jobs.send_payouts(db, FixedClock()) == 1
    assert len(env.payouts) == 1
    await invariant_holds(db)


async def test_an_unreachable_api_leaves_payouts_created_and_fails_the_run(
    env: PayoutsStub, db: asyncpg.Connection
) -> None:
    analyst = await paid_analyst(db)
    await make_share(db, analyst)
    (payout_id,) = await payouts.queue_payouts(db)
    env.unavailable = 1
    with pytest.raises(PayoutNotSent):
        await jobs.send_payouts(db, FixedClock())
    assert (
        await db.fetchval(
            "SELECT payout_status FROM analyst.payment_transactions WHERE id = $1", payout_id
        )
        == "created"
    )
    assert await jobs.send_payouts(db, FixedClock()) == 1  # the retry goes through
    assert len(env.made_for(payout_id)) == 1


async def test_payouts_waiting_without_configuration_fail_the_run_loudly(
    db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch, dsn: str, secret: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("SWITCHBOARD_SECRET", secret)
    for name in ("RAZORPAY_KEY_ID", "RAZORPAY_KEY_SECRET", "RAZORPAY_PAYOUT_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    assert await jobs.send_payouts(db, FixedClock()) == 0  # nothing waits: nothing to say
    await make_share(db, await paid_analyst(db))
    await payouts.queue_payouts(db)
    with pytest.raises(Unavailable, match="RAZORPAY_KEY_ID"):
        await jobs.send_payouts(db, FixedClock())


async def test_the_batch_skips_suspended_analysts(env: PayoutsStub, db: asyncpg.Connection) -> None:
    analyst = await paid_analyst(db)
    await make_share(db, analyst)
    await db.execute("UPDATE analyst.users SET is_active = false WHERE id = $1", analyst)
    assert await payouts.queue_payouts(db) == []
    assert len(await payouts.queue_payouts(db, analyst_id=analyst, inactive=True)) == 1


def test_statuses_only_move_forward() -> None:
    assert payouts.moves_forward("created", "processing")
    assert payouts.moves_forward("processing", "processed")
    assert payouts.moves_forward("processed", "reversed")
    assert not payouts.moves_forward("processed", "processing")
    assert not payouts.moves_forward("processed", "failed")
    assert not payouts.moves_forward("failed", "processed")
    assert not payouts.moves_forward("processing", "processing")
    assert not payouts.moves_forward("processing", "nonsense")
