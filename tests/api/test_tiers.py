"""Subscription tiers over HTTP: the analyst's own tiers, the seed's price and uniqueness
rules, soft deletion, and who may see which tiers."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from kernel.tokens import sign_access_token
from tests.factories import make_analyst, make_subscription, make_tier, make_user

PRO = {"tier_name": "Pro", "price_monthly": 99900}


async def _json(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json() if status != 204 else None


async def _message(response: Any, status: int) -> str:
    return str((await _json(response, status))["error"]["message"])


def _auth(secret: str, user_id: uuid.UUID) -> dict[str, str]:
    token = sign_access_token(secret, str(user_id), "analyst", 600)
    return {"Authorization": f"Bearer {token}"}


async def _approved(db: asyncpg.Connection) -> uuid.UUID:
    return await make_analyst(db, verification_status="approved")


async def _names(api: TestClient, path: str, headers: dict[str, str]) -> list[str]:
    page = await _json(await api.get(path, headers=headers), 200)
    return [t["tier_name"] for t in page["items"]]


# --- creating ---------------------------------------------------------------------------------


async def test_an_analyst_creates_a_paid_tier(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    body = {
        "tier_name": " Pro ",
        "price_monthly": 99900,
        "price_yearly": 999000,
        "tier_description": "Daily **options** calls",
        "tier_order": 2,
        "features": ["5 calls a day", "Chat"],
        "posts_per_day": 5,
        "chat_access": True,
    }
    tier = await _json(await api.post("/v1/tiers", json=body, headers=_auth(secret, analyst)), 201)
    assert tier["analyst_id"] == str(analyst) and tier["tier_name"] == "Pro"
    assert tier["price_monthly"] == 99900 and tier["price_yearly"] == 999000
    assert tier["currency"] == "INR" and tier["is_active"] and not tier["is_free_tier"]
    assert tier["features"] == ["5 calls a day", "Chat"] and tier["posts_per_day"] == 5
    assert tier["deleted_at"] is None


async def test_a_tier_priced_at_zero_is_the_free_tier_and_there_is_only_one(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    headers = _auth(secret, await make_analyst(db))
    free = await _json(
        await api.post(
            "/v1/tiers", json={"tier_name": "Free", "price_monthly": 0}, headers=headers
        ),
        201,
    )
    assert free["is_free_tier"]
    message = await _message(
        await api.post(
            "/v1/tiers",
            json={"tier_name": "Basic", "price_monthly": 0, "price_yearly": 0},
            headers=headers,
        ),
        409,
    )
    assert "free tier" in message


async def test_tier_names_are_unique_per_analyst_whatever_their_case(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, other = await make_analyst(db), await make_analyst(db)
    await _json(await api.post("/v1/tiers", json=PRO, headers=_auth(secret, analyst)), 201)
    message = await _message(
        await api.post(
            "/v1/tiers", json={**PRO, "tier_name": "pro "}, headers=_auth(secret, analyst)
        ),
        409,
    )
    assert "name" in message
    await _json(await api.post("/v1/tiers", json=PRO, headers=_auth(secret, other)), 201)


@pytest.mark.parametrize(
    ("monthly", "yearly"),
    [(99900, 99900 * 12), (99900, 99900 * 12 + 1), (99900, 0), (0, 100)],
)
async def test_a_yearly_price_must_be_a_real_discount_on_twelve_months(
    api: TestClient, db: asyncpg.Connection, secret: str, monthly: int, yearly: int
) -> None:
    body = {"tier_name": "T", "price_monthly": monthly, "price_yearly": yearly}
    message = await _message(
        await api.post("/v1/tiers", json=body, headers=_auth(secret, await make_analyst(db))), 400
    )
    assert "price_yearly" in message


async def test_a_yearly_price_just_below_twelve_months_is_accepted(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    body = {"tier_name": "T", "price_monthly": 99900, "price_yearly": 99900 * 12 - 1}
    await _json(
        await api.post("/v1/tiers", json=body, headers=_auth(secret, await make_analyst(db))), 201
    )


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("price_monthly", {"tier_name": "T", "price_monthly": -1}),
        ("price_monthly", {"tier_name": "T"}),
        ("price_monthly", {"tier_name": "T", "price_monthly": 9.5}),
        ("price_monthly", {"tier_name": "T", "price_monthly": 2**31}),
        ("tier_name", {"tier_name": "  ", "price_monthly": 100}),
        ("tier_name", {"tier_name": "x" * 101, "price_monthly": 100}),
        ("currency", {**PRO, "currency": "USD"}),
        ("posts_per_day", {**PRO, "posts_per_day": -1}),
        ("features", {**PRO, "features": "all of them"}),
        ("is_free_tier", {**PRO, "is_free_tier": True}),
        ("is_active", {**PRO, "is_active": "yes"}),
    ],
)
async def test_malformed_tiers_are_refused_naming_the_field(
    api: TestClient, db: asyncpg.Connection, secret: str, field: str, body: dict[str, Any]
) -> None:
    message = await _message(
        await api.post("/v1/tiers", json=body, headers=_auth(secret, await make_analyst(db))), 400
    )
    assert field in message


@pytest.mark.parametrize("user_type", ["trader", "admin"])
async def test_only_analysts_create_tiers_or_list_their_own(
    api: TestClient, db: asyncpg.Connection, secret: str, user_type: str
) -> None:
    headers = _auth(secret, await make_user(db, user_type=user_type))
    await _json(await api.post("/v1/tiers", json=PRO, headers=headers), 403)
    await _json(await api.get("/v1/me/tiers", headers=headers), 403)


async def test_every_tier_route_refuses_an_unauthenticated_caller(api: TestClient) -> None:
    somebody = uuid.uuid4()
    for method, path, body in [
        ("GET", f"/v1/analysts/{somebody}/tiers", None),
        ("GET", "/v1/me/tiers", None),
        ("GET", f"/v1/tiers/{somebody}", None),
        ("POST", "/v1/tiers", PRO),
        ("PATCH", f"/v1/tiers/{somebody}", {}),
        ("DELETE", f"/v1/tiers/{somebody}", None),
    ]:
        error = await _json(await api.request(method, path, json=body), 401)
        assert error["error"]["code"] == "unauthorized", (method, path)


# --- listing and reading ----------------------------------------------------------------------


async def test_any_user_lists_an_approved_analysts_active_tiers_in_display_order(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await _approved(db)
    await make_tier(db, analyst, tier_name="Premium", tier_order=3)
    await make_tier(db, analyst, tier_name="Free", tier_order=1, price_monthly=0, is_free_tier=True)
    await make_tier(db, analyst, tier_name="Pro", tier_order=2)
    await make_tier(db, analyst, tier_name="Hidden", tier_order=0, is_active=False)
    await make_tier(
        db, analyst, tier_name="Retired", tier_order=0, deleted_at=await db.fetchval("SELECT now()")
    )
    await make_tier(db, await _approved(db), tier_name="Someone else's")
    headers = _auth(secret, await make_user(db))
    names = await _names(api, f"/v1/analysts/{analyst}/tiers", headers)
    assert names == ["Free", "Pro", "Premium"]


async def test_tiers_of_an_unapproved_analyst_are_visible_only_to_the_analyst_and_admins(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)  # pending
    await make_tier(db, analyst, tier_name="Pro")
    path = f"/v1/analysts/{analyst}/tiers"
    await _json(await api.get(path, headers=_auth(secret, await make_user(db))), 404)
    await _json(await api.get(path, headers=_auth(secret, await _approved(db))), 404)
    assert await _names(api, path, _auth(secret, analyst)) == ["Pro"]
    admin = await make_user(db, user_type="admin")
    assert await _names(api, path, _auth(secret, admin)) == ["Pro"]
    await _json(
        await api.get(f"/v1/analysts/{uuid.uuid4()}/tiers", headers=_auth(secret, admin)), 200
    )
    message = await _message(
        await api.get("/v1/analysts/x/tiers", headers=_auth(secret, admin)), 400
    )
    assert "analyst_id" in message


async def test_an_analyst_lists_own_tiers_including_inactive_but_not_deleted(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    await make_tier(db, analyst, tier_name="Pro", tier_order=1)
    await make_tier(db, analyst, tier_name="Paused", tier_order=2, is_active=False)
    await make_tier(db, analyst, tier_name="Gone", deleted_at=await db.fetchval("SELECT now()"))
    await make_tier(db, await make_analyst(db), tier_name="Not mine")
    assert await _names(api, "/v1/me/tiers", _auth(secret, analyst)) == ["Pro", "Paused"]


async def test_tier_lists_are_paginated_with_a_stable_cursor(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await _approved(db)
    for order in range(5):
        await make_tier(db, analyst, tier_name=f"T{order}", tier_order=order * 10)
    headers = _auth(secret, await make_user(db))
    path = f"/v1/analysts/{analyst}/tiers"
    first = await _json(await api.get(f"{path}?limit=3", headers=headers), 200)
    assert [t["tier_name"] for t in first["items"]] == ["T0", "T1", "T2"]
    await make_tier(db, analyst, tier_name="Early", tier_order=5)  # before the cursor
    second = await _json(
        await api.get(f"{path}?limit=3&cursor={first['next_cursor']}", headers=headers), 200
    )
    assert [t["tier_name"] for t in second["items"]] == ["T3", "T4"]
    assert second["next_cursor"] is None
    await _json(await api.get(f"{path}?cursor=not-a-cursor", headers=headers), 400)
    assert "limit" in await _message(await api.get(f"{path}?limit=101", headers=headers), 400)
    own = await _json(await api.get("/v1/me/tiers?limit=4", headers=_auth(secret, analyst)), 200)
    assert len(own["items"]) == 4 and own["next_cursor"] is not None


async def test_one_tier_is_visible_while_public_and_always_to_its_analyst_and_admins(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await _approved(db)
    active = await make_tier(db, analyst)
    inactive = await make_tier(db, analyst, is_active=False)
    pending_analyst = await make_analyst(db)
    unapproved = await make_tier(db, pending_analyst)
    trader = _auth(secret, await make_user(db))
    tier = await _json(await api.get(f"/v1/tiers/{active}", headers=trader), 200)
    assert tier["id"] == str(active)
    for hidden in (inactive, unapproved, uuid.uuid4()):
        await _json(await api.get(f"/v1/tiers/{hidden}", headers=trader), 404)
    await _json(await api.get(f"/v1/tiers/{inactive}", headers=_auth(secret, analyst)), 200)
    await _json(
        await api.get(f"/v1/tiers/{unapproved}", headers=_auth(secret, pending_analyst)), 200
    )
    admin = _auth(secret, await make_user(db, user_type="admin"))
    await _json(await api.get(f"/v1/tiers/{inactive}", headers=admin), 200)
    assert "tier_id" in await _message(await api.get("/v1/tiers/123", headers=trader), 400)


# --- editing ----------------------------------------------------------------------------------


async def test_an_analyst_edits_only_the_fields_given_and_null_clears_a_field(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    tier = await make_tier(db, analyst, tier_name="Pro", posts_per_day=3, price_yearly=500000)
    edited = await _json(
        await api.patch(
            f"/v1/tiers/{tier}",
            json={"tier_name": "Pro Plus", "posts_per_day": None, "is_active": False},
            headers=_auth(secret, analyst),
        ),
        200,
    )
    assert edited["tier_name"] == "Pro Plus" and edited["posts_per_day"] is None
    assert not edited["is_active"] and edited["price_yearly"] == 500000
    assert edited["price_monthly"] == 99900


async def test_another_analysts_tier_cannot_be_edited_or_deleted(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    tier = await make_tier(db, await make_analyst(db), tier_name="Pro")
    for user in (
        await make_analyst(db),
        await make_user(db),
        await make_user(db, user_type="admin"),
    ):
        headers = _auth(secret, user)
        await _json(
            await api.patch(f"/v1/tiers/{tier}", json={"tier_name": "Mine"}, headers=headers), 403
        )
        await _json(await api.delete(f"/v1/tiers/{tier}", headers=headers), 403)
    assert await db.fetchval(
        "SELECT tier_name = 'Pro' AND deleted_at IS NULL FROM analyst.subscription_tiers"
        " WHERE id = $1",
        tier,
    )


async def test_editing_an_unknown_deleted_or_malformed_tier(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    headers = _auth(secret, analyst)
    gone = await make_tier(db, analyst, deleted_at=await db.fetchval("SELECT now()"))
    for tier in (uuid.uuid4(), gone):
        await _json(await api.patch(f"/v1/tiers/{tier}", json={}, headers=headers), 404)
        await _json(await api.delete(f"/v1/tiers/{tier}", headers=headers), 404)
    await _json(await api.patch("/v1/tiers/zzz", json={}, headers=headers), 400)
    tier = await make_tier(db, analyst)
    message = await _message(
        await api.patch(f"/v1/tiers/{tier}", json={"price_monthly": -5}, headers=headers), 400
    )
    assert "price_monthly" in message


async def test_price_rules_are_checked_against_the_tier_as_edited(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    tier = await make_tier(db, analyst, price_monthly=99900, price_yearly=999000)
    headers = _auth(secret, analyst)
    message = await _message(
        await api.patch(f"/v1/tiers/{tier}", json={"price_monthly": 50000}, headers=headers), 400
    )
    assert "price_yearly" in message
    edited = await _json(
        await api.patch(
            f"/v1/tiers/{tier}",
            json={"price_monthly": 50000, "price_yearly": 500000},
            headers=headers,
        ),
        200,
    )
    assert edited["price_monthly"] == 50000 and edited["price_yearly"] == 500000


async def test_renaming_onto_another_tiers_name_or_making_a_second_free_tier_is_a_conflict(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    await make_tier(db, analyst, tier_name="Free", price_monthly=0, is_free_tier=True)
    await make_tier(db, analyst, tier_name="Pro")
    tier = await make_tier(db, analyst, tier_name="Premium")
    headers = _auth(secret, analyst)
    message = await _message(
        await api.patch(f"/v1/tiers/{tier}", json={"tier_name": "PRO"}, headers=headers), 409
    )
    assert "name" in message
    message = await _message(
        await api.patch(f"/v1/tiers/{tier}", json={"price_monthly": 0}, headers=headers), 409
    )
    assert "free tier" in message


async def test_a_tier_without_subscribers_switches_between_paid_and_free(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    tier = await make_tier(db, analyst, tier_name="Pro")
    headers = _auth(secret, analyst)
    free = await _json(
        await api.patch(f"/v1/tiers/{tier}", json={"price_monthly": 0}, headers=headers), 200
    )
    assert free["is_free_tier"]
    paid = await _json(
        await api.patch(f"/v1/tiers/{tier}", json={"price_monthly": 100}, headers=headers), 200
    )
    assert not paid["is_free_tier"]


async def test_a_tier_with_live_subscriptions_keeps_its_free_or_paid_nature(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    tier = await make_tier(db, analyst, tier_name="Pro")
    await make_subscription(db, await make_user(db), tier)
    headers = _auth(secret, analyst)
    message = await _message(
        await api.patch(f"/v1/tiers/{tier}", json={"price_monthly": 0}, headers=headers), 409
    )
    assert "subscribers" in message
    repriced = await _json(
        await api.patch(f"/v1/tiers/{tier}", json={"price_monthly": 149900}, headers=headers), 200
    )
    assert repriced["price_monthly"] == 149900


# --- deleting ---------------------------------------------------------------------------------


async def test_deleting_a_tier_is_soft_and_its_subscribers_keep_their_subscription(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await _approved(db)
    tier = await make_tier(db, analyst, tier_name="Pro")
    subscriber = await make_user(db)
    subscription = await make_subscription(db, subscriber, tier)
    headers = _auth(secret, analyst)
    await _json(await api.delete(f"/v1/tiers/{tier}", headers=headers), 204)
    row = await db.fetchrow(
        "SELECT deleted_at, is_active FROM analyst.subscription_tiers WHERE id = $1", tier
    )
    assert row["deleted_at"] is not None and not row["is_active"]
    assert (
        await db.fetchval("SELECT status FROM analyst.subscriptions WHERE id = $1", subscription)
        == "active"
    )
    trader = _auth(secret, await make_user(db))
    assert await _names(api, f"/v1/analysts/{analyst}/tiers", trader) == []
    assert await _names(api, "/v1/me/tiers", headers) == []
    await _json(await api.get(f"/v1/tiers/{tier}", headers=trader), 404)
    retired = await _json(
        await api.get(f"/v1/tiers/{tier}", headers=_auth(secret, subscriber)), 200
    )
    assert retired["deleted_at"] is not None
    await _json(await api.delete(f"/v1/tiers/{tier}", headers=headers), 404)


async def test_a_deleted_tier_frees_its_name_and_its_free_slot(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    headers = _auth(secret, analyst)
    free = await _json(
        await api.post(
            "/v1/tiers", json={"tier_name": "Free", "price_monthly": 0}, headers=headers
        ),
        201,
    )
    await _json(await api.delete(f"/v1/tiers/{free['id']}", headers=headers), 204)
    await _json(
        await api.post(
            "/v1/tiers", json={"tier_name": "Free", "price_monthly": 0}, headers=headers
        ),
        201,
    )
