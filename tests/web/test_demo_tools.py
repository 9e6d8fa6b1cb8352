"""`make demo` (python -m tools.demo) and `python -m tools.admin create-admin`, run as the
commands they are, against this test's database; their logins and tokens are then used on
the real api."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import aiohttp
import asyncpg

from kernel.realms import enabled_realms
from tests.conftest import ROOT
from tests.factories import make_user
from tests.web.conftest import StartApi
from tools import analyst


async def run(dsn: str, secret: str, module: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret, "BCRYPT_ROUNDS": "4"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def call(api_url: str, token: str, path: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(api_url.rstrip("/") + path, headers=headers) as res,
    ):
        assert res.status == 200, await res.text()
        return await res.json()


async def test_make_demo_seeds_once_and_prints_working_logins(
    dsn: str, secret: str, db: asyncpg.Connection, start_api: StartApi
) -> None:
    code, out, err = await run(dsn, secret, "tools.demo", "--json")
    assert code == 0, err
    first = json.loads(out)
    code, text, err = await run(dsn, secret, "tools.demo")  # again: nothing is duplicated
    assert code == 0, err
    code, out, err = await run(dsn, secret, "tools.demo", "--json")
    assert code == 0, err
    again = json.loads(out)

    realm = next(r for r in first["realms"] if r["realm"] == "analyst")
    realm_again = next(r for r in again["realms"] if r["realm"] == "analyst")
    assert realm["realm"] == "analyst" and realm["password"] == analyst.DEMO_PASSWORD
    roles = {u["email"]: u["role"] for u in realm["users"]}
    assert roles == {
        "asha.rao@example.com": "analyst",
        "tom.trader@example.com": "trader",
        "tara.trader@example.com": "trader",
        "ada.admin@example.com": "admin",
    }
    assert [u["user_id"] for u in realm_again["users"]] == [u["user_id"] for u in realm["users"]]
    assert realm_again["channels"] == realm["channels"]
    # The realms without users are named, not silently left out.
    assert set(first["skipped"]) == {r.name for r in enabled_realms()} - {"analyst", "academy"}
    for user in realm["users"]:
        assert user["email"] in text and user["app_link"].split("#token=")[0] == first["app_url"]
    assert "#token=" in text

    counts = await db.fetchrow(
        "SELECT (SELECT count(*) FROM analyst.users) AS users,"
        " (SELECT count(*) FROM analyst.subscriptions) AS subscriptions,"
        " (SELECT count(*) FROM analyst.chat_channels) AS channels,"
        " (SELECT count(*) FROM analyst.chat_messages) AS messages,"
        " (SELECT count(*) FROM analyst.notifications) AS notifications"
    )
    assert dict(counts) == {
        "users": 4,
        "subscriptions": 1,
        "channels": 2,
        "messages": 36 + 5,
        "notifications": 2,
    }

    # The printed tokens work on the api as printed, for the user they name.
    api = await start_api()
    for user in realm_again["users"]:
        me = await call(api.url, user["access_token"], "/v1/analyst/me")
        assert (me["id"], me["user_type"]) == (user["user_id"], user["role"])
    # And the password signs in.
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            api.url + "v1/analyst/auth/login",
            json={"email": "tom.trader@example.com", "password": analyst.DEMO_PASSWORD},
        ) as res,
    ):
        assert res.status == 200, await res.text()


async def test_create_admin_creates_promotes_and_refuses_analysts(
    dsn: str, secret: str, db: asyncpg.Connection, start_api: StartApi
) -> None:
    code, out, err = await run(
        dsn, secret, "tools.admin", "create-admin", "--email", "ops@example.com"
    )
    assert code == 0, err
    assert "admin ops@example.com: created" in out
    password = next(line for line in out.splitlines() if line.startswith("password: "))
    password = password.removeprefix("password: ").split()[0]
    token = out.strip().splitlines()[-1].rsplit(" ", 1)[-1]

    api = await start_api()
    me = await call(api.url, token, "/v1/analyst/me")
    assert me["email"] == "ops@example.com" and me["user_type"] == "admin"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            api.url + "v1/analyst/auth/login",
            json={"email": "ops@example.com", "password": password},
        ) as res,
    ):
        assert res.status == 200, await res.text()
    # An admin may see the realm's jobs.
    await call(api.url, token, "/v1/admin/jobs")

    code, out, _ = await run(
        dsn, secret, "tools.admin", "create-admin", "--email", "OPS@example.com"
    )
    assert (code, "unchanged" in out) == (0, True)

    trader = await make_user(db, email="lead@example.com")
    code, out, _ = await run(
        dsn, secret, "tools.admin", "create-admin", "--email", "lead@example.com"
    )
    assert (code, "promoted" in out) == (0, True)
    assert await db.fetchval("SELECT user_type FROM analyst.users WHERE id = $1", trader) == "admin"

    await make_user(db, email="an@example.com", user_type="analyst")
    admin = ("tools.admin", "create-admin", "--email")
    code, _, err = await run(dsn, secret, *admin, "an@example.com")
    assert code == 2 and "is an analyst" in err
    code, _, err = await run(dsn, secret, *admin, "not-an-email")
    assert code == 2 and "not an e-mail address" in err
    assert await db.fetchval("SELECT count(*) FROM analyst.users WHERE user_type = 'admin'") == 2
