"""System settings over REST on real Postgres: public settings for anyone signed in, all of
them read and written by technical_access staff only, values checked against their type (and
the documented commission settings against their meaning), one audit_logs row per change."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.market.conftest import bearer
from tests.realms.market.world import World


async def call(
    api: TestClient, secret: str, user: int, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    resp = await api.request(
        method,
        "/v1/market" + path,
        json=body,
        headers={**bearer(secret, user), "User-Agent": "settings-test/1"},
    )
    return resp.status, (await resp.json()) if resp.status != 204 else None


async def audits(db: asyncpg.Connection, entity_id: int) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM market.audit_logs WHERE entity_type = 'setting' AND entity_id = $1"
        " ORDER BY id",
        entity_id,
    )


async def test_public_settings_are_readable_by_all_and_every_setting_by_technical_access(
    market_api: TestClient, world: World, secret: str
) -> None:
    buyer, accountant = await world.buyer(), await world.admin("accounting")
    staff, boss = await world.admin("technical_access"), await world.admin("super_admin")
    public = await world.setting(key="site.name", value="GOGOMARKET", is_public=True)
    await world.setting(key="sms.provider_key", value="secret")
    for reader in (buyer, accountant):
        _, listed = await call(market_api, secret, reader, "GET", "/settings")
        assert [s["key"] for s in listed] == ["site.name"] and listed[0]["id"] == public
        assert (await call(market_api, secret, reader, "GET", "/settings/site.name"))[0] == 200
        assert (await call(market_api, secret, reader, "GET", "/settings/sms.provider_key"))[
            0
        ] == 404
        status, _ = await call(
            market_api, secret, reader, "PUT", "/settings/site.name", {"value": "Mine"}
        )
        assert status == 403
        assert (await call(market_api, secret, reader, "DELETE", "/settings/site.name"))[0] == 403
        assert (await call(market_api, secret, reader, "GET", "/audit-logs"))[0] == 403
    for reader in (staff, boss):
        _, listed = await call(market_api, secret, reader, "GET", "/settings")
        assert [s["key"] for s in listed] == ["site.name", "sms.provider_key"]
        status, one = await call(market_api, secret, reader, "GET", "/settings/sms.provider_key")
        assert status == 200 and one["value"] == "secret"
    assert (await call(market_api, secret, staff, "GET", "/settings/Not.A.Key"))[0] == 400
    assert (await call(market_api, secret, staff, "GET", "/settings/no.such"))[0] == 404


async def test_setting_changes_are_type_checked_and_each_leaves_an_audit_row(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    staff = await world.admin("technical_access")
    path = "/settings/checkout.max_items"
    # a new setting needs its type, and the value must parse as it
    assert (await call(market_api, secret, staff, "PUT", path, {"value": "50"}))[0] == 400
    status, bad = await call(
        market_api, secret, staff, "PUT", path, {"value": "fifty", "type": "number"}
    )
    assert status == 400 and "not a valid number" in bad["error"]["message"]
    status, made = await call(
        market_api,
        secret,
        staff,
        "PUT",
        path,
        {"value": "50", "type": "number", "description": "Cart cap"},
    )
    assert status == 200 and (made["value"], made["type"], made["is_public"]) == (
        "50",
        "number",
        False,
    )
    status, changed = await call(
        market_api, secret, staff, "PUT", path, {"value": "60", "is_public": True}
    )
    assert status == 200 and changed["description"] == "Cart cap" and changed["is_public"]
    assert (await call(market_api, secret, staff, "PUT", path, {"value": "yes"}))[0] == 400
    for value, kind in (("maybe", "boolean"), ("{oops", "json")):
        assert (await call(market_api, secret, staff, "PUT", path, {"value": value, "type": kind}))[
            0
        ] == 400
    status, same = await call(market_api, secret, staff, "PUT", path, {"value": "60"})
    assert status == 200 and same["value"] == "60"  # no change: no audit row
    assert (await call(market_api, secret, staff, "DELETE", path))[0] == 204
    assert (await call(market_api, secret, staff, "DELETE", path))[0] == 404
    rows = await audits(db, made["id"])
    assert [r["action"] for r in rows] == ["setting.created", "setting.updated", "setting.deleted"]
    assert {r["user_id"] for r in rows} == {staff}
    assert rows[0]["old_values"] is None and rows[0]["new_values"]["value"] == "50"
    assert (rows[1]["old_values"]["value"], rows[1]["new_values"]["value"]) == ("50", "60")
    assert rows[1]["new_values"]["is_public"] is True and rows[2]["new_values"] is None
    assert str(rows[0]["ip_address"]) == "127.0.0.1" and rows[0]["user_agent"] == "settings-test/1"
    _, trail = await call(
        market_api,
        secret,
        staff,
        "GET",
        f"/audit-logs?entity_type=setting&entity_id={made['id']}&limit=2",
    )
    assert [a["action"] for a in trail["items"]] == ["setting.deleted", "setting.updated"]
    assert trail["next_cursor"] is not None


async def test_the_documented_commission_settings_are_checked_for_their_meaning(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    staff = await world.admin("technical_access")
    rate, rates = "/settings/commission.default_rate", "/settings/commission.category_rates"
    for body in (
        {"value": "7.5", "type": "string"},
        {"value": "101", "type": "number"},
        {"value": "-1", "type": "number"},
    ):
        assert (await call(market_api, secret, staff, "PUT", rate, body))[0] == 400, body
    for value in ("[1, 2]", '{"x": 5}', '{"12": 150}', '{"12": "5"}', '{"12": true}'):
        body = {"value": value, "type": "json"}
        assert (await call(market_api, secret, staff, "PUT", rates, body))[0] == 400, value
    assert (await call(market_api, secret, staff, "PUT", rate, {"value": "7.5", "type": "number"}))[
        0
    ] == 200
    assert (
        await call(
            market_api,
            secret,
            staff,
            "PUT",
            rates,
            {"value": '{"12": 5, "13": 12.5}', "type": "json"},
        )
    )[0] == 200
    values = {
        r["key"]: r["value"] for r in await db.fetch("SELECT key, value FROM market.settings")
    }
    assert values == {
        "commission.default_rate": "7.5",
        "commission.category_rates": '{"12": 5, "13": 12.5}',
    }
