"""Invite links over HTTP: an analyst's own links, the public short link (click, unique
visitor, redirect), and the funnel: signups on subscribe, conversions and revenue on capture."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from tests.api.test_subscriptions import (
    PUBLIC_BASE_URL,
    api,
    approved_analyst,
    bearer,
    call,
    pay,
    subscribe,
)
from tests.factories import insert_row, make_analyst, make_tier, make_user

__all__ = ["api"]  # the fixture with Razorpay configured


async def make_link(db: asyncpg.Connection, analyst_id: uuid.UUID, **fields: Any) -> str:
    code = fields.pop("invite_code", f"L-{uuid.uuid4().hex[:10].upper()}")
    await insert_row(db, "invite_links", {"analyst_id": analyst_id, "invite_code": code, **fields})
    return code


async def link_row(db: asyncpg.Connection, code: str) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM analyst.invite_links WHERE invite_code = $1", code)
    assert row is not None
    return row


# --- managing links -------------------------------------------------------------------------


async def test_an_analyst_creates_a_link_with_a_unique_code(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    me = bearer(secret, analyst)
    body = {
        "invite_code": "rajesh-telegram",
        "link_name": "Telegram",
        "max_uses": 50,
        "utm_source": "telegram",
    }
    out = await call(api, "POST", "/v1/invite-links", 201, me, json=body)
    assert out["invite_code"] == "RAJESH-TELEGRAM" and out["analyst_id"] == str(analyst)
    assert out["total_clicks"] == 0 and out["conversion_rate"] == 0
    other = bearer(secret, await approved_analyst(db))
    error = await call(
        api, "POST", "/v1/invite-links", 409, other, json={"invite_code": "Rajesh-Telegram"}
    )
    assert "invite_code" in error["error"]["message"]


async def test_only_analysts_create_links_and_only_with_their_own_codes(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    await call(
        api,
        "POST",
        "/v1/invite-links",
        403,
        bearer(secret, await make_user(db)),
        json={"invite_code": "ABC"},
    )
    await call(api, "POST", "/v1/invite-links", 401, json={"invite_code": "ABC"})
    other_code = await insert_row(
        db,
        "discount_codes",
        {
            "analyst_id": await approved_analyst(db),
            "code": "OTHER10",
            "discount_type": "percentage",
            "discount_value": 10,
        },
    )
    error = await call(
        api,
        "POST",
        "/v1/invite-links",
        400,
        bearer(secret, await approved_analyst(db)),
        json={"invite_code": "MINE", "discount_code_id": str(other_code)},
    )
    assert "discount_code_id" in error["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"invite_code": "no spaces"}, "invite_code"),
        ({"invite_code": "AB"}, "invite_code"),
        ({"invite_code": "ABC", "max_uses": 0}, "max_uses"),
        ({"invite_code": "ABC", "expires_at": "tomorrow"}, "expires_at"),
        ({}, "invite_code"),
    ],
)
async def test_a_malformed_link_is_refused_naming_the_field(
    api: TestClient, db: asyncpg.Connection, secret: str, body: dict[str, Any], field: str
) -> None:
    error = await call(
        api, "POST", "/v1/invite-links", 400, bearer(secret, await approved_analyst(db)), json=body
    )
    assert field in error["error"]["message"]


async def test_an_analyst_lists_their_own_links_in_pages(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    mine = {await make_link(db, analyst) for _ in range(3)}
    await make_link(db, await approved_analyst(db))
    me = bearer(secret, analyst)
    first = await call(api, "GET", "/v1/invite-links", 200, me, params={"limit": 2})
    second = await call(
        api, "GET", "/v1/invite-links", 200, me, params={"limit": 2, "cursor": first["next_cursor"]}
    )
    assert {link["invite_code"] for link in first["items"] + second["items"]} == mine
    await call(api, "GET", "/v1/invite-links", 400, me, params={"cursor": "x"})
    await call(api, "GET", "/v1/invite-links", 403, bearer(secret, await make_user(db)))


async def test_a_link_is_read_and_edited_by_its_analyst_or_an_admin_only(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    code = await make_link(db, analyst)
    path = f"/v1/invite-links/{(await link_row(db, code))['id']}"
    out = await call(
        api,
        "PATCH",
        path,
        200,
        bearer(secret, analyst),
        json={"is_active": False, "link_name": "Paused"},
    )
    assert out["is_active"] is False and out["link_name"] == "Paused"
    await call(api, "GET", path, 404, bearer(secret, await approved_analyst(db)))
    await call(api, "PATCH", path, 404, bearer(secret, await make_user(db)), json={})
    admin = bearer(secret, await make_user(db, user_type="admin"))
    assert (await call(api, "GET", path, 200, admin))["invite_code"] == code
    error = await call(api, "PATCH", path, 400, bearer(secret, analyst), json={"invite_code": "X"})
    assert "invite_code" in error["error"]["message"]


# --- following a link -----------------------------------------------------------------------


async def test_following_a_link_counts_clicks_and_unique_visitors_and_redirects(
    api: TestClient, db: asyncpg.Connection
) -> None:
    analyst = await approved_analyst(db)
    code = await make_link(db, analyst, utm_source="telegram", utm_campaign="launch")
    response = await api.get(f"/v1/i/{code}", allow_redirects=False)
    assert response.status == 302
    target = URL(response.headers["Location"])
    assert str(target.with_query(None)) == f"{PUBLIC_BASE_URL}/analysts/{analyst}"
    assert dict(target.query) == {
        "invite": code,
        "utm_source": "telegram",
        "utm_campaign": "launch",
    }
    assert "sb_visitor" in response.cookies
    await call(api, "GET", f"/v1/i/{code}", 302)  # the same visitor: the cookie comes back
    row = await link_row(db, code)
    assert (row["total_clicks"], row["unique_visitors"]) == (2, 1)
    assert row["last_used_at"] is not None
    api.session.cookie_jar.clear()  # a new visitor
    await call(api, "GET", f"/v1/i/{code.lower()}", 302)
    row = await link_row(db, code)
    assert (row["total_clicks"], row["unique_visitors"]) == (3, 2)


async def test_a_visitor_is_counted_once_per_link(api: TestClient, db: asyncpg.Connection) -> None:
    analyst = await approved_analyst(db)
    first, second = await make_link(db, analyst), await make_link(db, analyst)
    for code in (first, second, first):
        await call(api, "GET", f"/v1/i/{code}", 302)
    assert (await link_row(db, second))["unique_visitors"] == 1
    assert (await link_row(db, first))["unique_visitors"] == 1


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"is_active": False}, 404),
        ({"deleted_at": datetime.now(UTC)}, 404),
        ({"expires_at": datetime.now(UTC) - timedelta(seconds=1)}, 410),
        ({"max_uses": 1, "signups_count": 1}, 410),
    ],
)
async def test_a_dead_link_is_not_followed_and_not_counted(
    api: TestClient, db: asyncpg.Connection, fields: dict[str, Any], status: int
) -> None:
    code = await make_link(db, await approved_analyst(db), **fields)
    await call(api, "GET", f"/v1/i/{code}", status)
    assert (await link_row(db, code))["total_clicks"] == 0


async def test_a_link_of_an_unapproved_analyst_leads_nowhere(
    api: TestClient, db: asyncpg.Connection
) -> None:
    code = await make_link(db, await make_analyst(db))  # verification pending
    await call(api, "GET", f"/v1/i/{code}", 404)


async def test_an_unknown_link_is_not_found(api: TestClient) -> None:
    await call(api, "GET", "/v1/i/NOPE", 404)


# --- attribution ----------------------------------------------------------------------------


async def test_a_subscription_through_a_link_is_a_signup_and_its_payment_a_conversion(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    code = await make_link(db, analyst)
    await call(api, "GET", f"/v1/i/{code}", 302)
    me = bearer(secret, await make_user(db))
    sub = await subscribe(
        api, me, await make_tier(db, analyst, price_monthly=50000), invite_code=code.lower()
    )
    link = await link_row(db, code)
    assert sub["referred_by_invite_link"] == str(link["id"]) and link["signups_count"] == 1
    assert link["conversions_count"] == 0
    await pay(api, me, sub["pending_order"]["razorpay_order_id"])
    link = await link_row(db, code)
    assert (link["conversions_count"], link["total_revenue_generated"]) == (1, 50000)
    assert link["conversion_rate"] == 100


async def test_a_free_signup_through_a_link_is_not_a_conversion(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    code = await make_link(db, analyst)
    tier = await make_tier(db, analyst, price_monthly=0, is_free_tier=True)
    await subscribe(api, bearer(secret, await make_user(db)), tier, invite_code=code)
    link = await link_row(db, code)
    assert (link["signups_count"], link["conversions_count"]) == (1, 0)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"is_active": False}, "not active"),
        ({"expires_at": datetime.now(UTC) - timedelta(seconds=1)}, "expired"),
        ({"max_uses": 2, "signups_count": 2}, "used up"),
    ],
)
async def test_a_dead_link_cannot_be_used_to_subscribe(
    api: TestClient, db: asyncpg.Connection, secret: str, fields: dict[str, Any], words: str
) -> None:
    analyst = await approved_analyst(db)
    code = await make_link(db, analyst, **fields)
    error = await subscribe(
        api,
        bearer(secret, await make_user(db)),
        await make_tier(db, analyst),
        400,
        invite_code=code,
    )
    assert words in error["error"]["message"] and "invite_code" in error["error"]["message"]


async def test_another_analysts_link_or_an_unknown_one_is_refused(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    code = await make_link(db, await approved_analyst(db))
    tier = await make_tier(db, await approved_analyst(db))
    me = bearer(secret, await make_user(db))
    assert (
        "another analyst"
        in (await subscribe(api, me, tier, 400, invite_code=code))["error"]["message"]
    )
    assert (
        "no such" in (await subscribe(api, me, tier, 400, invite_code="NOPE"))["error"]["message"]
    )
    assert (await link_row(db, code))["signups_count"] == 0


async def test_a_links_own_discount_code_applies_unless_another_is_given(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst, price_monthly=10000)
    link_code = await insert_row(
        db,
        "discount_codes",
        {
            "analyst_id": analyst,
            "code": "LINK10",
            "discount_type": "percentage",
            "discount_value": 10,
        },
    )
    await insert_row(
        db,
        "discount_codes",
        {
            "analyst_id": analyst,
            "code": "BIG50",
            "discount_type": "percentage",
            "discount_value": 50,
        },
    )
    code = await make_link(db, analyst, discount_code_id=link_code)
    sub = await subscribe(api, bearer(secret, await make_user(db)), tier, invite_code=code)
    assert sub["final_price"] == 9000 and sub["discount_code_used"] == str(link_code)
    sub = await subscribe(
        api, bearer(secret, await make_user(db)), tier, invite_code=code, discount_code="BIG50"
    )
    assert sub["final_price"] == 5000


async def test_a_links_spent_discount_code_does_not_block_the_signup(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    spent = await insert_row(
        db,
        "discount_codes",
        {
            "analyst_id": analyst,
            "code": "SPENT",
            "discount_type": "percentage",
            "discount_value": 10,
            "is_active": False,
        },
    )
    code = await make_link(db, analyst, discount_code_id=spent)
    sub = await subscribe(
        api,
        bearer(secret, await make_user(db)),
        await make_tier(db, analyst, price_monthly=10000),
        invite_code=code,
    )
    assert sub["final_price"] == 10000 and sub["discount_code_used"] is None
