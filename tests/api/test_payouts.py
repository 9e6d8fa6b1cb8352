"""Payouts over HTTP (issue 21 item 3): the analyst's payout account, an admin's "pay out now"
(and paying out twice), the signed payouts webhook that settles a payout (paid, notified,
failed and released, replayed, stale), refunds before a payout, and earnings without payouts.
The payouts API is a real HTTP stand-in (tests/workers/payouts_stub.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from kernel.config import load_settings
from kernel.tokens import sign_access_token
from realms.analyst import payouts
from realms.analyst.otp import OTP_SENDERS, OtpSenders, SmtpOtpSender
from realms.analyst.razorpay import webhook_signature
from tests.api.conftest import SmsCapture, SmtpSink
from tests.factories import make_analyst, make_user
from tests.workers.payouts_stub import (
    FUND_ACCOUNT,
    WEBHOOK_SECRET,
    PayoutsStub,
    make_share,
    paid_analyst,
    payouts_env,
    payouts_stub,
)

__all__ = ["payouts_stub"]  # the fixture, used by name


@pytest.fixture
async def api(
    dsn: str,
    aiohttp_client: Any,
    secret: str,
    smtp_sink: SmtpSink,
    sms: SmsCapture,
    payouts_stub: PayoutsStub,
) -> AsyncIterator[TestClient]:
    settings = load_settings(
        {
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "BCRYPT_ROUNDS": "4",
            "SMTP_URL": smtp_sink.url,
            **payouts_env(payouts_stub),
        }
    )
    senders = OtpSenders(email=SmtpOtpSender(settings.smtp_url, settings.mail_from), sms=sms)
    client: TestClient = await aiohttp_client(
        create_app(settings, resources={OTP_SENDERS: senders})
    )
    yield client
    await client.close()


def h(secret: str, user_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user_id), 'analyst', 600)}"}


async def reply(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json() if status != 204 else None


def event(name: str, payout: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "entity": "event",
            "event": name,
            "contains": ["payout"],
            "payload": {"payout": {"entity": payout}},
            "created_at": 1_700_000_000,
        }
    ).encode()


async def deliver(
    api: TestClient, body: bytes, *, event_id: str | None = None, signature: str | None = None
) -> Any:
    headers = {
        "Content-Type": "application/json",
        "X-Razorpay-Signature": signature or webhook_signature(WEBHOOK_SECRET, body),
    }
    if event_id:
        headers["X-Razorpay-Event-Id"] = event_id
    return await api.post("/v1/payouts/webhook", data=body, headers=headers)


async def test_the_analyst_sets_a_payout_account_and_sees_what_is_due(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db, verification_status="approved")
    await make_share(db, analyst, 100000)
    account = await reply(await api.get("/v1/me/payout-account", headers=h(secret, analyst)), 200)
    assert account == {"fund_account_id": None, "due": 80000, "in_payout": 0, "paid": 0}
    body = {"fund_account_id": FUND_ACCOUNT}
    account = await reply(
        await api.put("/v1/me/payout-account", json=body, headers=h(secret, analyst)), 200
    )
    assert account["fund_account_id"] == FUND_ACCOUNT
    bad = await api.put(
        "/v1/me/payout-account", json={"fund_account_id": "acc_123"}, headers=h(secret, analyst)
    )
    assert bad.status == 400
    trader = await make_user(db)
    refused = await api.put("/v1/me/payout-account", json=body, headers=h(secret, trader))
    assert refused.status == 403


async def test_pay_out_now_pays_once_and_paying_out_twice_is_a_conflict(
    api: TestClient, db: asyncpg.Connection, secret: str, payouts_stub: PayoutsStub
) -> None:
    analyst, admin = await paid_analyst(db), await make_user(db, user_type="admin")
    await make_share(db, analyst, 99900)
    await make_share(db, analyst, 99900)
    path = f"/v1/admin/analysts/{analyst}/payouts"
    payout = await reply(await api.post(path, headers=h(secret, admin)), 201)
    assert payout["amount"] == 2 * 79920 and payout["shares"] == 2
    assert payout["payout_status"] == "processing" and payout["razorpay_payout_id"] in (
        payouts_stub.payouts
    )
    twice = await reply(await api.post(path, headers=h(secret, admin)), 409)
    assert "nothing to pay out" in twice["error"]["message"]
    assert twice["error"]["details"]["in_payout"] == [payout["id"]]
    assert len(payouts_stub.payouts) == 1
    # The analyst sees it; other analysts do not.
    mine = await reply(await api.get("/v1/me/payouts", headers=h(secret, analyst)), 200)
    assert [p["id"] for p in mine["items"]] == [payout["id"]]
    other = await make_analyst(db)
    assert (await api.get(f"/v1/payouts/{payout['id']}", headers=h(secret, other))).status == 404
    listed = await reply(
        await api.get("/v1/admin/payouts?payout_status=processing", headers=h(secret, admin)), 200
    )
    assert [p["id"] for p in listed["items"]] == [payout["id"]]


async def test_pay_out_now_refuses_what_cannot_be_paid(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    admin = await make_user(db, user_type="admin")
    trader = await make_user(db)
    no_account = await paid_analyst(db, None)
    await make_share(db, no_account)
    nothing_due = await paid_analyst(db)
    cases = [
        (uuid.uuid4(), 404, "no such user"),
        (trader, 400, "not an analyst"),
        (no_account, 409, "no payout account"),
        (nothing_due, 409, "nothing to pay out"),
    ]
    for target, status, words in cases:
        body = await reply(
            await api.post(f"/v1/admin/analysts/{target}/payouts", headers=h(secret, admin)),
            status,
        )
        assert words in body["error"]["message"]
    forbidden = await api.post(
        f"/v1/admin/analysts/{nothing_due}/payouts", headers=h(secret, nothing_due)
    )
    assert forbidden.status == 403


async def test_pay_out_now_is_unavailable_until_payouts_are_configured(
    db: asyncpg.Connection, secret: str, dsn: str, aiohttp_client: Any
) -> None:
    settings = load_settings({"DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret})
    client: TestClient = await aiohttp_client(create_app(settings))
    admin, analyst = await make_user(db, user_type="admin"), await paid_analyst(db)
    body = await reply(
        await client.post(f"/v1/admin/analysts/{analyst}/payouts", headers=h(secret, admin)), 503
    )
    assert "RAZORPAY_KEY_ID" in body["error"]["message"]
    await client.close()


async def test_the_processed_webhook_pays_the_shares_and_tells_the_analyst_once(
    api: TestClient, db: asyncpg.Connection, secret: str, payouts_stub: PayoutsStub
) -> None:
    analyst, admin = await paid_analyst(db), await make_user(db, user_type="admin")
    share = await make_share(db, analyst, 99900)
    payout = await reply(
        await api.post(f"/v1/admin/analysts/{analyst}/payouts", headers=h(secret, admin)), 201
    )
    entity = {**payouts_stub.payouts[payout["razorpay_payout_id"]], "status": "processed"}
    body = event("payout.processed", entity)
    assert (await reply(await deliver(api, body, event_id="evt_1"), 200)) == {"status": "processed"}
    assert (await reply(await deliver(api, body, event_id="evt_1"), 200)) == {"status": "duplicate"}
    settled = await db.fetchrow(
        "SELECT status, payout_status, paid_out_at FROM analyst.payment_transactions"
        " WHERE id = $1::uuid",
        payout["id"],
    )
    assert (settled["status"], settled["payout_status"]) == ("captured", "processed")
    assert settled["paid_out_at"] is not None
    source = await db.fetchrow(
        "SELECT payout_status, paid_out_at FROM analyst.payment_transactions WHERE id = $1", share
    )
    assert source["payout_status"] == "paid" and source["paid_out_at"] is not None
    notes = await db.fetch(
        "SELECT notification_type FROM analyst.notifications WHERE user_id = $1", analyst
    )
    assert [n["notification_type"] for n in notes] == ["payout_processed"]
    # A late 'processing' cannot move it back; a processed payout cannot fail.
    late = event("payout.updated", {**entity, "status": "processing"})
    assert (await reply(await deliver(api, late), 200)) == {"status": "ignored"}
    account = await reply(await api.get("/v1/me/payout-account", headers=h(secret, analyst)), 200)
    assert (account["due"], account["in_payout"], account["paid"]) == (0, 0, 79920)
    # Earnings list the payment, never the payout itself.
    earned = await reply(await api.get("/v1/earnings", headers=h(secret, analyst)), 200)
    assert [e["id"] for e in earned["items"]] == [str(share)]
    assert earned["items"][0]["paid_out_at"] is not None


async def test_a_failed_or_reversed_payout_releases_its_shares_for_the_next_one(
    api: TestClient, db: asyncpg.Connection, secret: str, payouts_stub: PayoutsStub
) -> None:
    analyst, admin = await paid_analyst(db), await make_user(db, user_type="admin")
    share = await make_share(db, analyst, 99900)
    path = f"/v1/admin/analysts/{analyst}/payouts"
    first = await reply(await api.post(path, headers=h(secret, admin)), 201)
    entity = payouts_stub.payouts[first["razorpay_payout_id"]]
    failed = {**entity, "status": "reversed", "failure_reason": "Beneficiary bank offline"}
    assert (await reply(await deliver(api, event("payout.reversed", failed)), 200)) == {
        "status": "processed"
    }
    released = await db.fetchrow(
        "SELECT payout_status, payout_transaction_id FROM analyst.payment_transactions"
        " WHERE id = $1",
        share,
    )
    assert tuple(released) == ("pending", None)
    note = await db.fetchrow(
        "SELECT notification_type, message FROM analyst.notifications WHERE user_id = $1",
        analyst,
    )
    assert note["notification_type"] == "payout_failed"
    assert "Beneficiary bank offline" in note["message"]
    second = await reply(await api.post(path, headers=h(secret, admin)), 201)
    assert second["id"] != first["id"] and second["amount"] == first["amount"]
    assert len(payouts_stub.payouts) == 2


async def test_the_webhook_checks_its_signature_and_ignores_what_it_does_not_know(
    api: TestClient, db: asyncpg.Connection
) -> None:
    body = event("payout.processed", {"id": "pout_unknown000001", "status": "processed"})
    assert (await deliver(api, body, signature="0" * 64)).status == 401
    unsigned = await api.post(
        "/v1/payouts/webhook", data=body, headers={"Content-Type": "application/json"}
    )
    assert unsigned.status == 401
    assert (await reply(await deliver(api, body), 200)) == {"status": "ignored"}
    other = json.dumps({"event": "payment.captured", "payload": {}}).encode()
    assert (await reply(await deliver(api, other), 200)) == {"status": "ignored"}


async def test_a_webhook_that_arrives_before_the_send_is_recorded_is_matched_by_reference(
    api: TestClient, db: asyncpg.Connection
) -> None:
    """The send's answer was lost; the gateway's webhook names our payout in reference_id. The
    payout is settled from it, and the next send skips it (it is no longer `created`)."""
    analyst = await paid_analyst(db)
    await make_share(db, analyst)
    (payout_id,) = await payouts.queue_payouts(db)
    entity = {
        "id": "pout_fromwebhook001",
        "status": "processed",
        "amount": 79920,
        "reference_id": str(payout_id),
    }
    assert (await reply(await deliver(api, event("payout.processed", entity)), 200)) == {
        "status": "processed"
    }
    row = await db.fetchrow(
        "SELECT payout_status, razorpay_payout_id FROM analyst.payment_transactions WHERE id = $1",
        payout_id,
    )
    assert tuple(row) == ("processed", "pout_fromwebhook001")
    wrong_amount = {**entity, "id": "pout_other00000001", "amount": 1}
    assert (await reply(await deliver(api, event("payout.failed", wrong_amount)), 200)) == {
        "status": "ignored"
    }


async def test_a_refund_before_the_payout_cancels_the_share_and_payouts_are_not_refundable(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, admin = await paid_analyst(db), await make_user(db, user_type="admin")
    share = await make_share(db, analyst, 99900)
    await reply(
        await api.post(
            f"/v1/payments/{share}/refund", json={"reason": "duplicate"}, headers=h(secret, admin)
        ),
        200,
    )
    assert (
        await db.fetchval(
            "SELECT payout_status FROM analyst.payment_transactions WHERE id = $1", share
        )
        == "cancelled"
    )
    assert await payouts.queue_payouts(db) == []
    await make_share(db, analyst, 99900)
    payout = await reply(
        await api.post(f"/v1/admin/analysts/{analyst}/payouts", headers=h(secret, admin)), 201
    )
    refund = await api.post(
        f"/v1/payments/{payout['id']}/refund", json={"reason": "x"}, headers=h(secret, admin)
    )
    assert refund.status == 409
