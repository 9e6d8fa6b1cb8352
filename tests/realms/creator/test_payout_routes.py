"""/v1/creator/payouts over the real api app: the available balance (completed net earnings
less refunds and payouts), payout requests never beyond it (20 at once included), idempotent
retries, cancelling, staff status moves, and the audit rows of each money change."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from tests.realms.creator.conftest import Call, World, make_account
from tests.realms.creator.rows import completed, make_transaction


@pytest.fixture
async def admin(db: asyncpg.Connection) -> uuid.UUID:
    return await make_account(db, account_type="admin")


async def earn(db: asyncpg.Connection, world: World, *grosses: int) -> list[uuid.UUID]:
    """Completed tips from the fan to the creator (fee 20 %, so net = 80 % of each)."""
    return [
        await completed(
            db,
            await make_transaction(
                db, world.fan, world.creator, "tip", gross_amount=g, platform_fee=g // 5
            ),
        )
        for g in grosses
    ]


async def balance(call: Call, creator: uuid.UUID, currency: str = "USD") -> dict[str, Any]:
    status, balances = await call("GET", "/v1/creator/payouts/balance", creator)
    assert status == 200, balances
    return next(b for b in balances if b["currency"] == currency)


async def ask(call: Call, creator: uuid.UUID, amount: int, **body: Any) -> tuple[int, Any]:
    return await call("POST", "/v1/creator/payouts", creator, json={"amount": amount, **body})


async def test_a_creator_is_paid_out_no_more_than_their_available_earnings(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    assert (await balance(call, world.creator))["available"] == 0
    await earn(db, world, 1000, 1000)
    # a pending payment is not earned yet
    await make_transaction(db, world.fan, world.creator, "tip", gross_amount=5000, platform_fee=0)
    before = await balance(call, world.creator)
    assert (before["earned"], before["available"]) == (1600, 1600)

    status, body = await ask(call, world.creator, 1000)
    assert status == 201, body
    payout = body["payout"]
    assert body["created"] is True and payout["status"] == "pending"
    assert (payout["amount"], payout["currency"]) == (1000, "USD")
    assert payout["payment_method"] == "bank_transfer"
    after = await balance(call, world.creator)
    assert (after["in_flight"], after["available"]) == (1000, 600)

    status, refused = await ask(call, world.creator, 601)
    assert status == 409, refused
    assert refused["error"]["details"] == {"available": 600, "currency": "USD"}
    status, mine = await call("GET", "/v1/creator/payouts", world.creator)
    assert [p["id"] for p in mine["items"]] == [payout["id"]]
    row = await db.fetchrow(
        "SELECT transaction_type, user_id, creator_id, gross_amount, platform_fee, net_amount"
        " FROM creator.transactions WHERE id = $1",
        uuid.UUID(payout["id"]),
    )
    assert tuple(row) == ("payout", world.creator, world.creator, 1000, 0, 1000)


async def test_twenty_concurrent_requests_never_overdraw(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    await earn(db, world, 1000, 1000)  # 1,600 available
    results = await asyncio.gather(*(ask(call, world.creator, 100) for _ in range(20)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 16 + [409] * 4, results
    total = await db.fetchval(
        "SELECT sum(net_amount) FROM creator.transactions WHERE transaction_type = 'payout'"
        " AND creator_id = $1",
        world.creator,
    )
    assert total == 1600
    assert (await balance(call, world.creator))["available"] == 0


async def test_a_retry_with_the_same_key_answers_the_first_payout(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    await earn(db, world, 1000)
    results = await asyncio.gather(
        *(ask(call, world.creator, 300, idempotency_key="weekly-1") for _ in range(5))
    )
    assert {status for status, _ in results} == {201}
    assert len({body["payout"]["id"] for _, body in results}) == 1
    assert sum(body["created"] for _, body in results) == 1
    assert (await balance(call, world.creator))["available"] == 500


async def test_refunds_reduce_and_failed_payouts_restore_the_balance(
    call: Call, world: World, db: asyncpg.Connection, admin: uuid.UUID
) -> None:
    [tip] = await earn(db, world, 1000)
    refund = await make_transaction(
        db,
        world.fan,
        world.creator,
        "refund",
        gross_amount=500,
        platform_fee=100,
        related_transaction_id=tip,
    )
    await completed(db, refund)
    assert (await balance(call, world.creator))["available"] == 400
    status, body = await ask(call, world.creator, 400)
    assert status == 201
    payout = body["payout"]["id"]
    status, failed = await call(
        "POST",
        f"/v1/creator/staff/payouts/{payout}/status",
        admin,
        json={
            "status": "failed",
            "failure_code": "account_closed",
            "failure_reason": "the bank account is closed",
        },
    )
    assert status == 200, failed
    assert failed["status"] == "failed" and failed["failure_code"] == "account_closed"
    assert (await balance(call, world.creator))["available"] == 400


async def test_staff_move_a_payout_on_and_every_move_is_audited(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    await earn(db, world, 1000)
    status, body = await ask(call, world.creator, 800)
    payout = body["payout"]["id"]
    path = f"/v1/creator/staff/payouts/{payout}/status"
    status, answer = await call("POST", path, world.creator, json={"status": "completed"})
    assert status == 403, answer  # the creator cannot pay themselves
    status, answer = await call("POST", path, world.moderator, json={"status": "failed"})
    assert status == 400, answer  # a failure needs its reason
    status, moved = await call(
        "POST",
        path,
        world.moderator,
        json={"status": "processing", "processor_transaction_id": "wire-1"},
    )
    assert status == 200 and moved["status"] == "processing", moved
    status, listed = await call(
        "GET",
        f"/v1/creator/staff/payouts?status=processing&creator_id={world.creator}",
        world.moderator,
    )
    assert [p["id"] for p in listed["items"]] == [payout]
    status, moved = await call("POST", path, world.moderator, json={"status": "completed"})
    assert status == 200 and moved["status"] == "completed" and moved["completed_at"]
    assert moved["processor_transaction_id"] == "wire-1"
    status, answer = await call("POST", path, world.moderator, json={"status": "cancelled"})
    assert status == 409, answer
    after = await balance(call, world.creator)
    assert (after["paid_out"], after["in_flight"], after["available"]) == (800, 0, 0)

    audited = await db.fetch(
        "SELECT action, user_id, admin_id, new_values ->> 'status' AS status"
        " FROM creator.audit_logs WHERE entity_id = $1 ORDER BY created_at",
        uuid.UUID(payout),
    )
    assert [(r["action"], r["status"], r["admin_id"]) for r in audited] == [
        ("transactions.insert", "pending", None),
        ("transactions.update", "processing", world.moderator),
        ("transactions.update", "completed", world.moderator),
    ]
    assert {r["user_id"] for r in audited} == {world.creator}


async def test_a_creator_cancels_only_their_own_pending_payout(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    await earn(db, world, 1000)
    other = await make_account(db, account_type="creator", subscription_price=500)
    status, body = await ask(call, world.creator, 300)
    payout = body["payout"]["id"]
    status, answer = await call("POST", f"/v1/creator/payouts/{payout}/cancel", other)
    assert status == 404, answer
    status, cancelled = await call("POST", f"/v1/creator/payouts/{payout}/cancel", world.creator)
    assert status == 200 and cancelled["status"] == "cancelled", cancelled
    assert (await balance(call, world.creator))["available"] == 800
    status, body = await ask(call, world.creator, 300)
    second = body["payout"]["id"]
    await call(
        "POST",
        f"/v1/creator/staff/payouts/{second}/status",
        world.moderator,
        json={"status": "processing"},
    )
    status, answer = await call("POST", f"/v1/creator/payouts/{second}/cancel", world.creator)
    assert status == 409, answer


async def test_only_verified_creators_request_payouts(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    unverified = await make_account(
        db, account_type="creator", subscription_price=500, verified=False
    )
    for user in (world.fan, world.moderator, unverified):
        status, answer = await ask(call, user, 100)
        assert status == 403, answer
        status, answer = await call("GET", "/v1/creator/payouts/balance", user)
        assert status == 403, answer
    status, answer = await call("GET", "/v1/creator/staff/payouts", world.fan)
    assert status == 403, answer


async def test_zero_negative_or_huge_amounts_are_bad_requests(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    await earn(db, world, 1000)
    for amount in (0, -5, 2**63, 1.5, "10"):
        status, answer = await call(
            "POST", "/v1/creator/payouts", world.creator, json={"amount": amount}
        )
        assert status == 400 and answer["error"]["code"] == "bad_request", (amount, answer)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM creator.transactions WHERE transaction_type = 'payout'"
        )
        == 0
    )
