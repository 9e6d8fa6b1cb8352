"""The market load-test tools against this test's own stack: loadtests.seed_market (the
population and its credentials file, which the api's login and the gateway's join rules
accept), a short locust run of loadtests/locust_market.py (chatters, couriers, watchers)
and loadtests.bench_market at a toy size, so none of them rots."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from loadtests.bench_market import bench
from loadtests.seed_market import CREDENTIAL_COLUMNS, MarketSeedConfig, seed
from tests.conftest import ROOT
from tests.gateway.harness import GatewayProcess
from tests.loadtests.stack import Stack, file_text, running_stack
from tests.realms.market.conftest import Connect, event

RUN_SECONDS = 15


def stats(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open(newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def read_credentials(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == CREDENTIAL_COLUMNS
        return list(reader)


async def test_seed_population_and_credentials(
    db: asyncpg.Connection, tmp_path: Path, market_api: TestClient, sock: Connect
) -> None:
    out = tmp_path / "market.csv"
    config = MarketSeedConfig(buyers=12, sellers=3, couriers=4, products=2, orders=8, chats=6)
    report = await seed(db, config, out)
    assert (report.buyers, report.sellers, report.couriers) == (12, 3, 4)
    assert (report.products, report.orders, report.chats, report.messages) == (6, 8, 6, 12)
    counts = await db.fetchrow(
        "SELECT (SELECT count(*) FROM market.users) AS users,"
        " (SELECT count(DISTINCT password_hash) FROM market.users) AS hashes,"
        " (SELECT count(*) FROM market.orders WHERE status = 'in_transit'"
        "   AND courier_id IS NOT NULL) AS moving,"
        " (SELECT count(*) FROM market.order_tracking) AS tracked,"
        " (SELECT count(*) FROM market.chats WHERE type = 'direct') AS chats,"
        " (SELECT count(*) FROM market.chat_participants WHERE last_read_seq = 2) AS read"
    )
    assert dict(counts) == {
        "users": 19, "hashes": 1, "moving": 8, "tracked": 8, "chats": 6, "read": 12,
    }  # fmt: skip
    rows = read_credentials(out)
    assert len(rows) == report.credentials == 19
    assert [r["user_type"] for r in rows[:4]] == ["courier"] * 4
    courier = rows[0]
    assert courier["channels"].split() == [
        f"market.order:{o}"
        for o in await db.fetch(
            "SELECT id FROM market.orders WHERE courier_id = $1 ORDER BY id",
            int(courier["user_id"]),
        )
        for o in [o["id"]]
    ]

    # What the file says holds: the password logs in, the channels admit their users, and
    # the courier's position reaches the buyer watching the order.
    buyer = next(r for r in rows if r["user_type"] == "buyer" and "market.chat:" in r["channels"])
    resp = await market_api.post(
        "/v1/market/auth/login", json={"email": buyer["email"], "password": config.password}
    )
    assert resp.status == 200, await resp.text()
    order_channel = next(c for c in buyer["channels"].split() if c.startswith("market.order:"))
    chat_channel = next(c for c in buyer["channels"].split() if c.startswith("market.chat:"))
    watcher = await sock(int(buyer["user_id"]))
    assert (await watcher.ok("join", channel=order_channel))["role"] == "buyer"
    assert (await watcher.ok("join", channel=chat_channel))["last_seq"] == 2
    driver_id = await db.fetchval(
        "SELECT courier_id FROM market.orders WHERE id = $1", int(order_channel.split(":")[1])
    )
    driver = await sock(driver_id)
    assert (await driver.ok("join", channel=order_channel))["role"] == "courier"
    await driver.ok(
        "send",
        channel=order_channel,
        type="location",
        text="p",
        metadata={"lat": 41.3, "lon": 69.2},
    )
    await watcher.expect(event("position", channel=order_channel))
    stranger = await sock(int(rows[-1]["user_id"]))  # the last buyer has no chat or order
    assert rows[-1]["channels"] == ""
    assert (await stranger.call("join", channel=order_channel))["code"] == "forbidden"


@pytest.fixture
async def stack(dsn: str, secret: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(
        dsn, secret, tmp_path, SWITCHBOARD_REALMS="market", BCRYPT_ROUNDS="4"
    ) as running:
        yield running


@pytest.mark.timeout(180)
async def test_locust_market_run(stack: Stack, db: asyncpg.Connection, tmp_path: Path) -> None:
    credentials = tmp_path / "market.csv"
    await seed(
        db,
        MarketSeedConfig(buyers=8, sellers=2, couriers=2, products=1, orders=4, chats=4),
        credentials,
    )
    prefix = tmp_path / "locust"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtests" / "locust_market.py"),
        "--headless",
        "--users",
        "6",
        "--spawn-rate",
        "6",
        "--run-time",
        f"{RUN_SECONDS}s",
        "--stop-timeout",
        "5",
        "--host",
        stack.api_url,
        "--market-gateway-url",
        stack.gateway.url,
        "--market-credentials",
        str(credentials),
        "--market-chatter-weight",
        "1",
        "--market-courier-weight",
        "1",
        "--market-watcher-weight",
        "1",
        "--market-wait-min",
        "0.2",
        "--market-wait-max",
        "0.6",
        "--market-recv-sample",
        "1",
        "--csv",
        str(prefix),
        "--only-summary",
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    # Awaited, not run blocking: the gateway's log pipe is drained by this event loop.
    output, _ = await asyncio.wait_for(proc.communicate(), RUN_SECONDS + 90)
    text = output.decode(errors="replace")
    print(text)
    assert proc.returncode == 0, f"locust exited with {proc.returncode}"
    assert "Traceback" not in text

    rows = stats(Path(f"{prefix}_stats.csv"))
    total = rows[("", "Aggregated")]
    assert int(total["Failure Count"]) == 0, file_text(Path(f"{prefix}_failures.csv"))

    def count(kind: str, name: str) -> int:
        row = rows.get((kind, name))
        return int(row["Request Count"]) if row else 0

    assert count("POST", "/v1/market/auth/login") == 6
    assert count("WS", "connect") == 6
    assert count("WS", "join") >= 6
    assert count("WS", "send (ack)") > 5
    assert count("WS", "send-to-receive (own echo)") > 5
    assert count("WS", "position (ack)") > 10  # two couriers at 1/s for ~15 s
    assert count("WS", "position received (server-to-receive)") > 5
    assert count("GET", "/v1/market/orders/{id}") + count("WS", "read") > 0
    stored = await db.fetchval("SELECT count(*) FROM market.messages") - 8  # 4 seeded chats x 2
    assert stored >= count("WS", "send (ack)")


@pytest.mark.timeout(120)
async def test_tracking_benchmark_smoke(
    db: asyncpg.Connection, dsn: str, market_gateway: GatewayProcess, secret: str, tmp_path: Path
) -> None:
    """loadtests.bench_market at a toy size: every acknowledged position reaches its
    watcher, and the thinning rule shows as updates, not inserts."""
    out = tmp_path / "market.json"
    result = await bench(
        dsn, market_gateway.url, secret, orders=3, duration=2, interval=0.5, settle=1.0, out=out
    )
    assert result.orders == 3 and result.sent == 12 and result.refused == 0
    assert result.acked == result.sent == result.delivered
    assert result.deliveries_per_s > 0 and result.p99_ms >= result.p50_ms > 0
    assert result.pg_writes_per_s > 0
    updated = result.tracking_updated + result.tracking_inserted
    assert 0 < updated <= result.sent
    assert '"market_tracking"' in out.read_text()
