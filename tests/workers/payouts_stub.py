"""A local stand-in for the payouts API (Razorpay's `POST /v1/payouts` shape), served over real
HTTP on a loopback port: basic auth, the X-Payout-Idempotency key (the same key and body give
back the payout already made; the same key with another body is refused), validation errors
in Razorpay's error shape, and switches to refuse a fund account or to be unavailable."""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import free_port

KEY_ID = "rzp_test_stubkey00001"
KEY_SECRET = "stub-key-secret-0123456789"
WEBHOOK_SECRET = "stub-webhook-secret-0123456789"
ACCOUNT = "7878780080316316"
FUND_ACCOUNT = "fa_00000000000001"
OTHER_FUND_ACCOUNT = "fa_00000000000002"


def _error(status: int, code: str, description: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "description": description, "source": "business"}},
        status=status,
    )


@dataclass
class PayoutsStub:
    base_url: str = ""
    payouts: dict[str, dict[str, Any]] = field(default_factory=dict)  # by payout id
    requests: list[dict[str, Any]] = field(default_factory=list)  # every authorised request
    keys: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)  # key -> body, id
    refused_fund_accounts: dict[str, str] = field(default_factory=dict)  # id -> description
    unavailable: int = 0  # answer this many requests 503 first
    status: str = "processing"  # what a new payout starts as

    async def create(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()
        if header != f"Basic {expected}":
            return _error(401, "BAD_REQUEST_ERROR", "The api key provided is invalid")
        if self.unavailable > 0:
            self.unavailable -= 1
            return _error(503, "SERVER_ERROR", "Service unavailable")
        body: dict[str, Any] = await request.json()
        key = request.headers.get("X-Payout-Idempotency")
        self.requests.append({"key": key, "body": body})
        if key is not None and key in self.keys:
            earlier, payout_id = self.keys[key]
            if earlier != body:
                return _error(400, "BAD_REQUEST_ERROR", "idempotency key reused with another body")
            return web.json_response(self.payouts[payout_id])
        for name in ("account_number", "fund_account_id", "amount", "currency", "mode", "purpose"):
            if body.get(name) in (None, ""):
                return _error(400, "BAD_REQUEST_ERROR", f"The {name} field is required.")
        if body["account_number"] != ACCOUNT:
            return _error(400, "BAD_REQUEST_ERROR", "The account number is invalid.")
        if not isinstance(body["amount"], int) or body["amount"] < 100:
            return _error(400, "BAD_REQUEST_ERROR", "The amount must be at least 100.")
        refusal = self.refused_fund_accounts.get(body["fund_account_id"])
        if refusal is not None:
            return _error(400, "BAD_REQUEST_ERROR", refusal)
        payout_id = "pout_" + "".join(
            secrets.choice(string.ascii_letters + string.digits) for _ in range(14)
        )
        payout = {
            "id": payout_id,
            "entity": "payout",
            "fund_account_id": body["fund_account_id"],
            "amount": body["amount"],
            "currency": body["currency"],
            "notes": body.get("notes", {}),
            "fees": 0,
            "tax": 0,
            "status": self.status,
            "purpose": body["purpose"],
            "utr": None,
            "mode": body["mode"],
            "reference_id": body.get("reference_id"),
            "narration": body.get("narration"),
            "failure_reason": None,
            "created_at": 1_700_000_000,
        }
        self.payouts[payout_id] = payout
        if key is not None:
            self.keys[key] = (body, payout_id)
        return web.json_response(payout)

    def made_for(self, reference: object) -> list[dict[str, Any]]:
        """Payouts made with `reference` as their reference_id."""
        return [p for p in self.payouts.values() if p["reference_id"] == str(reference)]


@pytest.fixture
async def payouts_stub() -> AsyncIterator[PayoutsStub]:
    stub = PayoutsStub()
    app = web.Application()
    app.router.add_post("/v1/payouts", stub.create)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stub.base_url = f"http://127.0.0.1:{port}"
    yield stub
    await runner.cleanup()


def payouts_env(stub: PayoutsStub) -> dict[str, str]:
    """The settings that point the payouts client at the stand-in."""
    return {
        "RAZORPAY_KEY_ID": KEY_ID,
        "RAZORPAY_KEY_SECRET": KEY_SECRET,
        "RAZORPAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "RAZORPAY_PAYOUTS_BASE_URL": stub.base_url,
        "RAZORPAY_PAYOUT_ACCOUNT": ACCOUNT,
    }


# --- earnings to pay out ------------------------------------------------------------------------


async def make_share(
    db: Any,
    analyst_id: Any,
    amount: int = 99900,
    *,
    payer: Any = None,
    status: str = "captured",
    transaction_type: str = "subscription_payment",
) -> Any:
    """A captured payment to `analyst_id` split as capture splits it (20 % commission), its
    share waiting to be paid out; returns its id."""
    from realms.analyst.routes.payments import DEFAULT_COMMISSION, payout_split
    from tests.factories import insert_row, make_user

    commission, payout = payout_split(amount, DEFAULT_COMMISSION)
    return await insert_row(
        db,
        "payment_transactions",
        {
            "user_id": payer or await make_user(db),
            "analyst_id": analyst_id,
            "razorpay_order_id": "order_" + secrets.token_hex(7),
            "razorpay_payment_id": "pay_" + secrets.token_hex(7),
            "transaction_type": transaction_type,
            "amount": amount,
            "status": status,
            "platform_commission": commission,
            "payout_amount": payout,
            "payout_status": "pending",
        },
    )


async def paid_analyst(db: Any, fund_account: str | None = FUND_ACCOUNT) -> Any:
    """An approved analyst with a payout account; returns the user id."""
    from tests.factories import make_analyst

    return await make_analyst(
        db, verification_status="approved", razorpay_fund_account_id=fund_account
    )
