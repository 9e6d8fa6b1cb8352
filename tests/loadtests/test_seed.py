"""loadtests.seed: the population it builds, the credentials file, and that what the file says
holds against the real API (login) and the gateway's own join rule."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
import uuid
from pathlib import Path
from typing import Any, cast

import asyncpg
import bcrypt
import pytest

from api.app import create_app
from kernel.config import load_settings
from kernel.conversation import Principal
from kernel.errors import Forbidden
from loadtests.seed import CREDENTIAL_COLUMNS, SeedConfig, seed
from realms.analyst.namespaces.community import CommunityNamespace
from realms.analyst.namespaces.community_messages import CommunityMessages
from tests.conftest import ROOT

CONFIG = SeedConfig(
    users=400,
    analysts=8,
    hot_channels=2,
    hot_share=0.5,
    password="seeded-password-1",
    tag="tst",
    random_seed=0.25,
)


def read_credentials(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == CREDENTIAL_COLUMNS
        return list(reader)


async def test_population_shape_and_credentials(db: asyncpg.Connection, tmp_path: Path) -> None:
    out = tmp_path / "credentials.csv"
    report = await seed(db, CONFIG, out)

    assert (report.analysts, report.traders, report.credentials) == (8, 400, 408)
    assert await db.fetchval("SELECT count(*) FROM analyst.users") == 408
    assert await db.fetchval("SELECT count(DISTINCT password_hash) FROM analyst.users") == 1
    password_hash = await db.fetchval("SELECT password_hash FROM analyst.users LIMIT 1")
    assert bcrypt.checkpw(CONFIG.password.encode(), password_hash.encode())
    assert (
        await db.fetchval(
            "SELECT count(*) FROM analyst.analyst_profiles WHERE verification_status = 'approved'"
        )
        == 8
    )

    # Every analyst: 2-3 tiers, exactly one free, at least one with chat; 1-3 channels.
    shape = await db.fetch(
        """SELECT u.email,
                  (SELECT count(*) FROM analyst.subscription_tiers t WHERE t.analyst_id = u.id)
                      AS tiers,
                  (SELECT count(*) FROM analyst.subscription_tiers t
                    WHERE t.analyst_id = u.id AND t.is_free_tier) AS free,
                  (SELECT count(*) FROM analyst.subscription_tiers t
                    WHERE t.analyst_id = u.id AND t.chat_access) AS chat,
                  (SELECT count(*) FROM analyst.chat_channels c WHERE c.analyst_id = u.id)
                      AS channels,
                  p.active_subscribers
             FROM analyst.users u JOIN analyst.analyst_profiles p ON p.user_id = u.id"""
    )
    by_rank = {int(r["email"].split("-a")[1].split("@")[0]): r for r in shape}
    for row in shape:
        assert 2 <= row["tiers"] <= 3 and row["free"] == 1 and row["chat"] >= 1
        assert 1 <= row["channels"] <= 3
    # Zipf-like, with the hot analysts on top: they have the most subscribers and 3 channels.
    hot = [by_rank[r]["active_subscribers"] for r in (1, 2)]
    rest = [by_rank[r]["active_subscribers"] for r in range(3, 9)]
    assert min(hot) > max(rest) > 0
    assert by_rank[3]["active_subscribers"] > by_rank[8]["active_subscribers"]
    assert by_rank[1]["channels"] == by_rank[2]["channels"] == 3

    per_trader = await db.fetch(
        """SELECT count(*) AS n, count(DISTINCT analyst_id) AS analysts
             FROM analyst.subscriptions GROUP BY user_id"""
    )
    assert len(per_trader) == 400
    assert all(1 <= r["n"] == r["analysts"] <= 3 for r in per_trader)
    assert report.subscriptions == sum(r["n"] for r in per_trader)

    rows = read_credentials(out)
    assert len(rows) == 408
    assert {r["password"] for r in rows} == {CONFIG.password}
    assert [r["user_type"] for r in rows[:8]] == ["analyst"] * 8
    assert [r["email"] for r in rows[:2]] == [
        f"lt-tst-a1@{CONFIG.domain}",
        f"lt-tst-a2@{CONFIG.domain}",
    ]
    traders = rows[8:]
    assert sum(1 for r in traders if r["channels"]) == report.chat_users > 200
    hot_channels = {channel for channel, _ in report.hot}
    assert len(hot_channels) == 2
    # Hot channels come first in a trader's list, and have the most members.
    for r in traders:
        listed = r["channels"].split()
        flags = [c in hot_channels for c in listed]
        assert flags == sorted(flags, reverse=True)
    assert min(n for _, n in report.hot) > 50


async def test_same_seed_same_population(db: asyncpg.Connection, tmp_path: Path) -> None:
    """--seed makes a run repeatable (the smoke test relies on it): two populations seeded
    with one value have the same subscriptions, tiers and channel lists, ids aside."""
    shapes = []
    for tag in ("x1", "x2"):
        out = tmp_path / f"{tag}.csv"
        config = SeedConfig(users=300, analysts=6, hot_channels=2, tag=tag, random_seed=0.5)
        await seed(db, config, out)
        subscriptions = await db.fetch(
            """SELECT substring(u.email FROM '-t([0-9]+)@')::int AS n,
                      substring(a.email FROM '-a([0-9]+)@')::int AS rank,
                      t.tier_order, s.status, s.billing_cycle
                 FROM analyst.subscriptions s
                 JOIN analyst.users u ON u.id = s.user_id
                 JOIN analyst.users a ON a.id = s.analyst_id
                 JOIN analyst.subscription_tiers t ON t.id = s.tier_id
                WHERE u.email LIKE $1""",
            f"lt-{tag}-%",
        )
        listed = [len(r["channels"].split()) for r in read_credentials(out)]
        shapes.append((sorted(tuple(r) for r in subscriptions), listed))
    assert shapes[0] == shapes[1]
    assert len(shapes[0][0]) > 300


async def test_seeded_users_log_in_and_may_join_exactly_their_listed_channels(
    dsn: str, db: asyncpg.Connection, tmp_path: Path, aiohttp_client: Any, secret: str
) -> None:
    out = tmp_path / "credentials.csv"
    config = SeedConfig(users=120, analysts=5, hot_channels=1, password="another-pass-2")
    await seed(db, config, out)
    rows = read_credentials(out)
    trader = next(r for r in rows if r["user_type"] == "trader" and r["channels"])

    # Login through the real API, with the printed password.
    settings = load_settings({"DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret})
    client = await aiohttp_client(create_app(settings))
    response = await client.post(
        "/v1/auth/login", json={"email": trader["email"], "password": config.password}
    )
    assert response.status == 200, await response.text()
    session = await response.json()
    assert session["user"]["id"] == trader["user_id"]
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"})
    assert (await me.json())["email"] == trader["email"]
    wrong = await client.post(
        "/v1/auth/login", json={"email": trader["email"], "password": "not-the-password"}
    )
    assert wrong.status == 401
    await client.close()

    # The gateway's join rule, unchanged: every listed channel passes it, and every other
    # channel of an analyst the user subscribes to (a free tier, a premium room, an expired
    # subscription) is refused.
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        gate = CommunityNamespace(pool, messages=cast(CommunityMessages, None))
        channels_of = {
            r["analyst_id"]: r["channels"]
            for r in await db.fetch(
                "SELECT analyst_id, array_agg(id) AS channels FROM analyst.chat_channels"
                " GROUP BY analyst_id"
            )
        }
        refused = 0
        for row in rows:
            user_id = uuid.UUID(row["user_id"])
            principal = Principal(user_id=str(user_id), realm="analyst", user_type=row["user_type"])
            listed = set(row["channels"].split())
            if row["user_type"] == "analyst":
                assert listed == {f"community:{c}" for c in channels_of[user_id]}
                for channel in listed:
                    member = await gate.authorize(principal, channel, channel.split(":")[1])
                    assert member.role == "owner"
                continue
            analysts = await db.fetch(
                "SELECT DISTINCT analyst_id FROM analyst.subscriptions WHERE user_id = $1", user_id
            )
            candidates = {f"community:{c}" for a in analysts for c in channels_of[a["analyst_id"]]}
            assert listed <= candidates
            for channel in sorted(candidates):
                key = channel.split(":")[1]
                if channel in listed:
                    member = await gate.authorize(principal, channel, key)
                    assert member.role == "member"
                else:
                    with pytest.raises(Forbidden):
                        await gate.authorize(principal, channel, key)
                    refused += 1
        assert refused > 0  # the population does contain users the gate turns away
    finally:
        await pool.close()


async def test_command_line(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "credentials.csv"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loadtests.seed",
        "--users",
        "60",
        "--analysts",
        "4",
        "--hot-channels",
        "1",
        "--out",
        str(out),
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": dsn},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = output.decode()
    assert proc.returncode == 0, text
    assert "password for every seeded user: loadtest-password" in text
    assert "subscriptions" in text and "hot channel community:" in text
    assert len(read_credentials(out)) == 64

    refused = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loadtests.seed",
        "--hot-channels",
        "9",
        "--analysts",
        "4",
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": dsn},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(refused.communicate(), 60)
    assert refused.returncode == 2 and b"--hot-channels" in err
