"""Plans (active ones for everyone, admins manage) and subscriptions (trialing or active,
one live subscription at a time, cancel at period end)."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.academy.conftest import Academy

PLANS = "/v1/academy/plans"
SUBS = "/v1/academy/subscriptions"


async def test_admins_manage_plans_and_users_see_active_ones(
    academy_api: TestClient, academy: Academy
) -> None:
    _, user = await academy.user()
    _, admin = await academy.user(admin=True)
    body = {"name": "Pro", "price": "19.99", "features": {"live": True}}
    assert (await academy_api.post(PLANS, json=body, headers=user)).status == 403
    assert (
        await academy_api.post(PLANS, json={**body, "price": "-1"}, headers=admin)
    ).status == 400
    pro = await (await academy_api.post(PLANS, json=body, headers=admin)).json()
    old = await (await academy_api.post(PLANS, json={**body, "name": "Old"}, headers=admin)).json()
    r = await academy_api.patch(f"{PLANS}/{old['id']}", json={"is_active": False}, headers=admin)
    assert r.status == 200
    seen = [p["name"] for p in await (await academy_api.get(PLANS, headers=user)).json()]
    assert seen == ["Pro"] and pro["price"] == "19.99"


async def test_subscribe_trial_or_active_once_then_cancel(
    academy_api: TestClient, academy: Academy, db: asyncpg.Connection
) -> None:
    user, headers = await academy.user()
    _, admin = await academy.user(admin=True)
    trial = await (
        await academy_api.post(
            PLANS, json={"name": "T", "price": "5", "features": {}, "trial_days": 7}, headers=admin
        )
    ).json()
    r = await academy_api.post(SUBS, json={"plan_id": trial["id"]}, headers=headers)
    assert r.status == 201
    sub = await r.json()
    assert sub["status"] == "trialing" and sub["trial_end"] is not None
    again = await academy_api.post(SUBS, json={"plan_id": trial["id"]}, headers=headers)
    assert again.status == 409
    r = await academy_api.post(f"{SUBS}/{sub['id']}/cancel", headers=headers)
    assert (await r.json())["status"] == "canceled"
    _, other = await academy.user()
    assert (await academy_api.post(f"{SUBS}/{sub['id']}/cancel", headers=other)).status == 404
    assert await (await academy_api.get(SUBS, headers=other)).json() == []
    monthly = await (
        await academy_api.post(
            PLANS, json={"name": "M", "price": "9", "features": {}}, headers=admin
        )
    ).json()
    r = await academy_api.post(SUBS, json={"plan_id": monthly["id"]}, headers=headers)
    assert (await r.json())["status"] == "active"
    assert (
        await db.fetchval(
            "SELECT current_period_end - current_period_start FROM academy.user_subscriptions"
            " WHERE user_id = $1 AND status = 'active'",
            user,
        )
        is not None
    )
