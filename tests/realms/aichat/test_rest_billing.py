"""REST billing views of the aichat realm over the real api app: plans (public), the caller's
subscription, usage of a month by model, invoices and payments in keyset pages; each shows
the caller's rows only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from kernel.db import connect
from kernel.tokens import sign_access_token
from tests.realms.aichat import rows


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database that keeps the reference plans and providers."""
    connection = await connect(dsn)
    yield connection
    await connection.close()


def bearer(secret: str, user: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user), 'aichat', 600)}"}


async def _ok(response: Any) -> Any:
    assert response.status == 200, await response.text()
    return await response.json()


async def test_plans_are_public_cheapest_first_and_hide_inactive_ones(
    aichat_api: TestClient, conn: asyncpg.Connection
) -> None:
    await conn.execute("UPDATE aichat.plans SET is_active = false WHERE name = 'Pro'")
    plans = await _ok(await aichat_api.get("/v1/aichat/plans"))
    assert [p["name"] for p in plans] == ["Free", "Plus"]
    plus = plans[1]
    assert Decimal(str(plus["monthly_price"])) == Decimal("20.00")
    assert (plus["monthly_token_quota"], plus["monthly_message_quota"]) == (1_000_000, 5000)
    assert plus["features"] == ["gpt-4o", "claude-3-sonnet"]


async def test_subscription_of_the_caller_or_not_found(
    aichat_api: TestClient, conn: asyncpg.Connection, secret: str
) -> None:
    user = await rows.make_user(conn, plan_tier="PLUS")
    other = await rows.make_user(conn, plan_tier="PRO")
    r = await aichat_api.get("/v1/aichat/subscription", headers=bearer(secret, user))
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"

    plus = await conn.fetchval("SELECT id FROM aichat.plans WHERE name = 'Plus'")
    pro = await conn.fetchval("SELECT id FROM aichat.plans WHERE name = 'Pro'")
    sub = await rows.make_subscription(
        conn, user, plus, status="past_due", cancel_at_period_end=True
    )
    await rows.make_subscription(conn, other, pro)
    mine = await _ok(await aichat_api.get("/v1/aichat/subscription", headers=bearer(secret, user)))
    assert mine["id"] == str(sub)
    assert (mine["plan"], mine["status"], mine["cancel_at_period_end"]) == (
        "Plus",
        "past_due",
        True,
    )
    assert datetime.fromisoformat(mine["current_period_end"]) == rows.T0 + timedelta(days=30)
    r = await aichat_api.get("/v1/aichat/subscription")
    assert r.status == 401


async def test_usage_of_a_month_sums_the_callers_tokens_by_model(
    aichat_api: TestClient, conn: asyncpg.Connection, secret: str
) -> None:
    user = await rows.make_user(conn, plan_tier="PLUS")
    other = await rows.make_user(conn, plan_tier="PLUS")
    month = date(2025, 3, 1)
    for model, provider, p, c, cost in (
        ("gpt-4o", "openai", 100, 50, "0.000750"),
        ("gpt-4o", "openai", 10, 20, "0.000225"),
        ("claude-3-sonnet", "anthropic", 1000, 10, "0.003150"),
    ):
        await rows.make_token_usage(
            conn,
            user,
            model=model,
            provider=provider,
            prompt_tokens=p,
            completion_tokens=c,
            total_tokens=p + c,
            cost_usd=Decimal(cost),
            billing_month=month,
        )
    await rows.make_token_usage(conn, user, billing_month=date(2025, 2, 1))  # another month
    await rows.make_token_usage(
        conn, other, billing_month=month, prompt_tokens=994, total_tokens=999
    )
    await rows.make_usage_tracking(conn, user, billing_month=month, messages_count=4)

    usage = await _ok(
        await aichat_api.get(
            "/v1/aichat/usage", params={"month": "2025-03"}, headers=bearer(secret, user)
        )
    )
    assert (usage["month"], usage["plan"], usage["resets_on"]) == (
        "2025-03-01",
        "Plus",
        "2025-04-01",
    )
    assert (usage["tokens_used"], usage["token_quota"]) == (1190, 1_000_000)
    assert (usage["messages_count"], usage["message_quota"]) == (4, 5000)
    assert Decimal(str(usage["cost_usd"])) == Decimal("0.004125")
    by_model = [(m["model"], m["requests"], m["total_tokens"]) for m in usage["by_model"]]
    assert by_model == [("claude-3-sonnet", 1, 1010), ("gpt-4o", 2, 180)]

    february = await _ok(
        await aichat_api.get(
            "/v1/aichat/usage", params={"month": "2025-02"}, headers=bearer(secret, user)
        )
    )
    assert (february["tokens_used"], february["messages_count"]) == (15, 0)
    now = await _ok(await aichat_api.get("/v1/aichat/usage", headers=bearer(secret, user)))
    assert now["tokens_used"] == 0 and now["by_model"] == []
    assert date.fromisoformat(now["month"]).day == 1
    r = await aichat_api.get(
        "/v1/aichat/usage", params={"month": "2025-13"}, headers=bearer(secret, user)
    )
    assert r.status == 400 and (await r.json())["error"]["code"] == "bad_request"


async def _all_pages(api: TestClient, path: str, headers: dict[str, str]) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await _ok(await api.get(path, params=params, headers=headers))
        assert len(page["items"]) <= 2
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_invoices_and_payments_page_newest_first_and_show_only_the_callers(
    aichat_api: TestClient, conn: asyncpg.Connection, secret: str
) -> None:
    user = await rows.make_user(conn, plan_tier="PLUS")
    other = await rows.make_user(conn, plan_tier="PLUS")
    me = bearer(secret, user)
    invoices = [
        await rows.make_invoice(conn, user, created_at=rows.T0 + timedelta(days=30 * i))
        for i in range(5)
    ]
    payments = [
        await rows.make_payment(
            conn,
            user,
            status="failed" if i == 2 else "succeeded",
            created_at=rows.T0 + timedelta(days=i),
        )
        for i in range(3)
    ]
    await rows.make_invoice(conn, other)
    await rows.make_payment(conn, other)

    assert await _all_pages(aichat_api, "/v1/aichat/invoices", me) == [
        str(i) for i in reversed(invoices)
    ]
    assert await _all_pages(aichat_api, "/v1/aichat/payments", me) == [
        str(p) for p in reversed(payments)
    ]
    first = (await _ok(await aichat_api.get("/v1/aichat/payments", headers=me)))["items"][0]
    assert (first["status"], first["currency"]) == ("failed", "USD")
    assert Decimal(str(first["amount"])) == Decimal("20.00")
    invoice = (await _ok(await aichat_api.get("/v1/aichat/invoices", headers=me)))["items"][0]
    assert (invoice["status"], Decimal(str(invoice["total"]))) == ("draft", Decimal("20.00"))

    stranger = bearer(secret, await rows.make_user(conn))
    assert (await _ok(await aichat_api.get("/v1/aichat/invoices", headers=stranger)))["items"] == []
    for path in ("/v1/aichat/invoices", "/v1/aichat/payments"):
        r = await aichat_api.get(path)
        assert r.status == 401
