"""Discount codes over HTTP: an analyst's own codes, the public preview, and every rule a
code must pass when a subscription uses it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from realms.analyst.routes.discounts import discount_amount
from tests.api.test_subscriptions import api, approved_analyst, bearer, call, subscribe
from tests.factories import insert_row, make_subscription, make_tier, make_user

__all__ = ["api"]  # the fixture with Razorpay configured


async def make_code(db: asyncpg.Connection, analyst_id: uuid.UUID | None, **fields: Any) -> str:
    code = fields.pop("code", f"C{uuid.uuid4().hex[:10].upper()}")
    values = {
        "analyst_id": analyst_id,
        "code": code,
        "discount_type": "percentage",
        "discount_value": 10,
        **fields,
    }
    await insert_row(db, "discount_codes", values)
    return code


def new_code(**fields: Any) -> dict[str, Any]:
    return {
        "code": f"x{uuid.uuid4().hex[:8]}",
        "discount_type": "percentage",
        "discount_value": 20,
        **fields,
    }


# --- the amount -----------------------------------------------------------------------------


def test_a_percentage_rounds_half_up_and_respects_its_cap() -> None:
    assert discount_amount("percentage", 10, None, 99900) == 9990
    assert discount_amount("percentage", 15, None, 999) == 150  # 149.85
    assert discount_amount("percentage", 50, 10000, 99900) == 10000
    assert discount_amount("percentage", 100, None, 500) == 500


def test_a_fixed_amount_never_exceeds_the_price() -> None:
    assert discount_amount("fixed_amount", 5000, None, 99900) == 5000
    assert discount_amount("fixed_amount", 5000, None, 3000) == 3000


# --- managing codes -------------------------------------------------------------------------


async def test_an_analyst_creates_a_code_stored_upper_case(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst)
    body = new_code(
        code="telegram50",
        applicable_tiers=[str(tier)],
        max_discount_amount=5000,
        usage_limit=10,
        valid_until=(datetime.now(UTC) + timedelta(days=3)).isoformat(),
    )
    out = await call(api, "POST", "/v1/discount-codes", 201, bearer(secret, analyst), json=body)
    assert out["code"] == "TELEGRAM50" and out["analyst_id"] == str(analyst)
    assert out["applicable_tiers"] == [str(tier)] and out["usage_count"] == 0
    assert out["per_user_limit"] == 1 and out["billing_cycle_restriction"] == "both"
    again = await call(
        api,
        "POST",
        "/v1/discount-codes",
        409,
        bearer(secret, analyst),
        json={**body, "code": "Telegram50"},
    )
    assert "TELEGRAM50" in again["error"]["message"]


async def test_only_analysts_create_codes(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    await call(
        api, "POST", "/v1/discount-codes", 403, bearer(secret, await make_user(db)), json=new_code()
    )
    await call(api, "POST", "/v1/discount-codes", 401, json=new_code())


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"discount_value": 101}, "discount_value"),
        ({"discount_value": 0}, "discount_value"),
        ({"discount_type": "bogo"}, "discount_type"),
        ({"code": "a b"}, "code"),
        ({"discount_type": "fixed_amount", "max_discount_amount": 10}, "max_discount_amount"),
        (
            {"valid_from": "2030-01-02T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"},
            "valid_until",
        ),
        ({"valid_from": "2030-01-02T00:00:00"}, "valid_from"),
        ({"per_user_limit": 0}, "per_user_limit"),
        ({"applicable_tiers": ["nope"]}, "applicable_tiers"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_a_malformed_code_is_refused_naming_the_field(
    api: TestClient, db: asyncpg.Connection, secret: str, fields: dict[str, Any], field: str
) -> None:
    error = await call(
        api,
        "POST",
        "/v1/discount-codes",
        400,
        bearer(secret, await approved_analyst(db)),
        json=new_code(**fields),
    )
    assert field in error["error"]["message"]


async def test_a_code_may_only_name_the_analysts_own_tiers(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    other_tier = await make_tier(db, await approved_analyst(db))
    error = await call(
        api,
        "POST",
        "/v1/discount-codes",
        400,
        bearer(secret, await approved_analyst(db)),
        json=new_code(applicable_tiers=[str(other_tier)]),
    )
    assert "applicable_tiers" in error["error"]["message"]


async def test_an_analyst_lists_their_own_codes_in_pages(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    mine = {await make_code(db, analyst) for _ in range(3)}
    await make_code(db, await approved_analyst(db))
    me = bearer(secret, analyst)
    first = await call(api, "GET", "/v1/discount-codes", 200, me, params={"limit": 2})
    second = await call(
        api,
        "GET",
        "/v1/discount-codes",
        200,
        me,
        params={"limit": 2, "cursor": first["next_cursor"]},
    )
    assert {c["code"] for c in first["items"] + second["items"]} == mine
    assert second["next_cursor"] is None
    await call(api, "GET", "/v1/discount-codes", 400, me, params={"cursor": "!!"})
    await call(api, "GET", "/v1/discount-codes", 403, bearer(secret, await make_user(db)))


async def test_the_owner_edits_and_deactivates_a_code_and_nobody_else_can(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    me = bearer(secret, analyst)
    code = await call(api, "POST", "/v1/discount-codes", 201, me, json=new_code())
    path = f"/v1/discount-codes/{code['id']}"
    out = await call(api, "PATCH", path, 200, me, json={"is_active": False, "code_name": "Launch"})
    assert out["is_active"] is False and out["code_name"] == "Launch"
    assert out["discount_value"] == 20
    await call(
        api,
        "PATCH",
        path,
        404,
        bearer(secret, await approved_analyst(db)),
        json={"is_active": True},
    )
    await call(api, "GET", path, 404, bearer(secret, await approved_analyst(db)))
    assert (await call(api, "GET", path, 200, me))["code_name"] == "Launch"
    error = await call(api, "PATCH", path, 400, me, json={"code": "NEW"})
    assert "code" in error["error"]["message"]
    error = await call(api, "PATCH", path, 400, me, json={"discount_value": 150})
    assert "discount_value" in error["error"]["message"]
    await call(api, "DELETE", path, 404, bearer(secret, await approved_analyst(db)))
    await call(api, "DELETE", path, 204, me)
    await call(api, "GET", path, 404, me)


async def test_the_usage_limit_cannot_drop_below_the_uses_made(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    code = await make_code(db, analyst, usage_limit=5, usage_count=3)
    code_id = await db.fetchval("SELECT id FROM analyst.discount_codes WHERE code = $1", code)
    error = await call(
        api,
        "PATCH",
        f"/v1/discount-codes/{code_id}",
        400,
        bearer(secret, analyst),
        json={"usage_limit": 2},
    )
    assert "usage_limit" in error["error"]["message"]


# --- using codes ----------------------------------------------------------------------------


async def test_a_percentage_code_is_capped_and_counted_once_used(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst, price_monthly=99900)
    code = await make_code(db, analyst, discount_value=50, max_discount_amount=20000)
    sub = await subscribe(
        api, bearer(secret, await make_user(db)), tier, discount_code=code.lower()
    )
    assert (sub["price_paid"], sub["discount_applied"], sub["final_price"]) == (99900, 20000, 79900)
    assert sub["pending_order"]["amount"] == 79900 and sub["discount_code_used"] is not None
    assert (
        await db.fetchval("SELECT usage_count FROM analyst.discount_codes WHERE code = $1", code)
        == 1
    )


async def test_a_full_discount_activates_a_paid_tier_for_one_period(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst, price_monthly=1000)
    code = await make_code(db, analyst, discount_type="fixed_amount", discount_value=5000)
    sub = await subscribe(api, bearer(secret, await make_user(db)), tier, discount_code=code)
    assert sub["status"] == "active" and sub["final_price"] == 0 and sub["pending_order"] is None
    assert sub["expires_at"] is not None and sub["auto_renewal"] is True


async def test_a_platform_wide_code_works_for_any_analyst(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    code = await make_code(db, None, discount_type="fixed_amount", discount_value=100)
    tier = await make_tier(db, await approved_analyst(db), price_monthly=1000)
    sub = await subscribe(api, bearer(secret, await make_user(db)), tier, discount_code=code)
    assert sub["final_price"] == 900


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"is_active": False}, 400, "not active"),
        ({"valid_from": datetime.now(UTC) + timedelta(days=1)}, 400, "not valid yet"),
        (
            {
                "valid_from": datetime.now(UTC) - timedelta(days=2),
                "valid_until": datetime.now(UTC) - timedelta(days=1),
            },
            400,
            "expired",
        ),
        ({"applicable_tiers": [uuid.uuid4()]}, 400, "does not apply"),
        ({"billing_cycle_restriction": "yearly"}, 400, "yearly"),
        ({"usage_limit": 2, "usage_count": 2}, 409, "usage limit"),
        ({"deleted_at": datetime.now(UTC)}, 400, "no such code"),
    ],
)
async def test_a_code_that_does_not_apply_is_refused_saying_why(
    api: TestClient,
    db: asyncpg.Connection,
    secret: str,
    fields: dict[str, Any],
    status: int,
    words: str,
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst)
    code = await make_code(db, analyst, **fields)
    error = await subscribe(
        api, bearer(secret, await make_user(db)), tier, status, discount_code=code
    )
    assert words in error["error"]["message"] and "discount_code" in error["error"]["message"]
    assert await db.fetchval("SELECT count(*) FROM analyst.subscriptions") == 0


async def test_another_analysts_code_is_refused(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    code = await make_code(db, await approved_analyst(db))
    tier = await make_tier(db, await approved_analyst(db))
    error = await subscribe(api, bearer(secret, await make_user(db)), tier, 400, discount_code=code)
    assert "this analyst" in error["error"]["message"]


async def test_a_first_time_code_is_refused_to_a_former_subscriber(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst)
    code = await make_code(db, analyst, first_time_only=True)
    former = await make_user(db)
    await make_subscription(db, former, tier, status="expired")
    error = await subscribe(api, bearer(secret, former), tier, 400, discount_code=code)
    assert "first-time" in error["error"]["message"]
    await subscribe(api, bearer(secret, await make_user(db)), tier, discount_code=code)


async def test_a_code_is_used_at_most_per_user_limit_times_by_one_user(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst)
    code = await make_code(db, analyst)  # per_user_limit defaults to 1
    me = bearer(secret, await make_user(db))
    first = await subscribe(api, me, tier, discount_code=code)
    await call(api, "POST", f"/v1/subscriptions/{first['id']}/cancel", 200, me)
    error = await subscribe(api, me, tier, 400, discount_code=code)
    assert "already used" in error["error"]["message"]


async def test_the_database_refuses_the_use_past_the_usage_limit(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst)
    code = await make_code(db, analyst, usage_limit=1)
    await subscribe(api, bearer(secret, await make_user(db)), tier, discount_code=code)
    error = await subscribe(api, bearer(secret, await make_user(db)), tier, 409, discount_code=code)
    assert "usage limit" in error["error"]["message"]


# --- preview --------------------------------------------------------------------------------


async def test_anyone_previews_what_a_code_takes_off_a_tier(
    api: TestClient, db: asyncpg.Connection
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst, price_monthly=1000, price_yearly=10000)
    code = await make_code(db, analyst, discount_value=25, first_time_only=True)
    out = await call(
        api,
        "GET",
        f"/v1/discount-codes/{code}/preview",
        200,
        params={"tier_id": str(tier), "billing_cycle": "yearly"},
    )
    assert (out["price"], out["discount"], out["final_price"]) == (10000, 2500, 7500)
    assert out["first_time_only"] is True and out["currency"] == "INR"


async def test_a_preview_of_an_unknown_or_expired_code_says_so(
    api: TestClient, db: asyncpg.Connection
) -> None:
    analyst = await approved_analyst(db)
    tier = await make_tier(db, analyst)
    params = {"tier_id": str(tier)}
    await call(api, "GET", "/v1/discount-codes/NOPE/preview", 404, params=params)
    expired = await make_code(db, analyst, valid_until=datetime.now(UTC) - timedelta(seconds=1))
    error = await call(api, "GET", f"/v1/discount-codes/{expired}/preview", 400, params=params)
    assert "expired" in error["error"]["message"]
    error = await call(
        api, "GET", f"/v1/discount-codes/{expired}/preview", 400, params={"tier_id": "x"}
    )
    assert "tier_id" in error["error"]["message"]
    await call(
        api,
        "GET",
        f"/v1/discount-codes/{expired}/preview",
        404,
        params={"tier_id": str(uuid.uuid4())},
    )
