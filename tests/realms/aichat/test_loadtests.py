"""The aichat load-test tools against this test's own stack: loadtests.seed_aichat (the
population and its credentials file, which the api and the gateway accept), a short locust
run of loadtests/locust_aichat.py (streamed replies, cancels, history) and
loadtests.bench_aichat at a toy size, so none of them rots."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from kernel.db import connect
from loadtests.bench_aichat import bench
from loadtests.seed_aichat import CREDENTIAL_COLUMNS, AichatSeedConfig, seed
from tests.conftest import ROOT, free_port
from tests.gateway.harness import GatewayProcess
from tests.realms.aichat.world import socket

RUN_SECONDS = 15


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(dsn)
    yield connection
    await connection.close()


async def test_seed_population_usage_and_credentials(
    conn: asyncpg.Connection,
    tmp_path: Path,
    aichat_api: TestClient,
    aichat_gateway: GatewayProcess,
    secret: str,
) -> None:
    out = tmp_path / "aichat.csv"
    config = AichatSeedConfig(users=7, conversations=2, history=5, tier="PLUS")
    report = await seed(conn, config, out)
    assert (report.users, report.conversations, report.messages) == (7, 14, 70)
    assert report.credentials == 7
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM aichat.messages WHERE role = 'assistant') AS replies,"
        " (SELECT count(*) FROM aichat.messages WHERE role = 'assistant'"
        "   AND reply_to IS NOT NULL) AS linked,"
        " (SELECT count(*) FROM aichat.token_usage) AS usage,"
        " (SELECT count(DISTINCT password) FROM aichat.users) AS hashes,"
        " (SELECT sum(tokens_used) FROM aichat.usage_tracking) AS tracked,"
        " (SELECT sum(total_tokens) FROM aichat.token_usage) AS spent,"
        " (SELECT sum(token_count) FROM aichat.conversations) AS counted"
    )
    assert dict(counts) == {
        "replies": 28,
        "linked": 28,
        "usage": 28,
        "hashes": 1,
        "tracked": 28 * 36,
        "spent": 28 * 36,
        "counted": 28 * 36,
    }
    rows = read_csv(out)
    assert tuple(rows[0]) == CREDENTIAL_COLUMNS
    assert all(len(r["channels"].split()) == 2 for r in rows)

    # What the file says holds: the password logs in, the usage view agrees, history is
    # there, and the socket admits the user to the seeded conversation.
    first = rows[0]
    r = await aichat_api.post(
        "/v1/aichat/auth/login", json={"email": first["email"], "password": config.password}
    )
    assert r.status == 200, await r.text()
    auth = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
    usage = await (await aichat_api.get("/v1/aichat/usage", headers=auth)).json()
    assert (usage["plan"], usage["tokens_used"], usage["messages_count"]) == ("Plus", 144, 6)
    client = await socket(aichat_gateway, secret, uuid.UUID(first["user_id"]))
    channel = first["channels"].split()[0]
    joined = await client.ok("join", channel=channel)
    assert joined["last_seq"] == 5
    history = await client.ok("history", channel=channel)
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"] * 2 + ["user"]

    again = await seed(conn, AichatSeedConfig(users=2, conversations=1, history=0), None)
    assert (again.users, again.conversations, again.messages) == (2, 2, 0)


@pytest.fixture
async def stack(dsn: str, secret: str, tmp_path: Path) -> AsyncIterator[tuple[str, GatewayProcess]]:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "SWITCHBOARD_SECRET": secret,
        "SWITCHBOARD_REALMS": "aichat",
        "LOG_LEVEL": "INFO",
        "BCRYPT_ROUNDS": "4",
        "AICHAT_LOCAL_DELAY_MS": "5",  # the offline provider answers, briskly
    }
    env.pop("REDIS_URL", None)
    for name in ("AICHAT_OPENAI_BASE_URL", "AICHAT_OPENAI_API_KEY", "AICHAT_ANTHROPIC_API_KEY"):
        env.pop(name, None)
    gateway = GatewayProcess({**env, "GATEWAY_PORT": str(free_port())})
    api_port = free_port()
    api_log = tmp_path / "api.log"
    api: asyncio.subprocess.Process | None = None
    try:
        await gateway.start()
        with api_log.open("wb") as log:
            api = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "api",
                cwd=ROOT,
                env={**env, "API_PORT": str(api_port), "LOG_LEVEL": "WARNING"},
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{api_port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                assert api.returncode is None, _text(api_log)
                try:
                    async with http.get(f"{url}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        yield url, gateway
    finally:
        if api is not None and api.returncode is None:
            api.terminate()
            await asyncio.wait_for(api.wait(), 30)
        await gateway.stop()
        print("--- api log ---\n" + _text(api_log))
        print("--- gateway log (tail) ---\n" + "".join(gateway.log[-50:]))


@pytest.mark.timeout(180)
async def test_locust_aichat_run(
    stack: tuple[str, GatewayProcess], conn: asyncpg.Connection, tmp_path: Path
) -> None:
    api_url, gateway = stack
    credentials = tmp_path / "aichat.csv"
    await seed(conn, AichatSeedConfig(users=4, conversations=2, history=2), credentials)
    prefix = tmp_path / "locust"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtests" / "locust_aichat.py"),
        "--headless",
        "--users",
        "4",
        "--spawn-rate",
        "4",
        "--run-time",
        f"{RUN_SECONDS}s",
        "--stop-timeout",
        "10",
        "--host",
        api_url,
        "--aichat-gateway-url",
        gateway.url,
        "--aichat-credentials",
        str(credentials),
        "--aichat-wait-min",
        "0.1",
        "--aichat-wait-max",
        "0.3",
        "--csv",
        str(prefix),
        "--only-summary",
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), RUN_SECONDS + 90)
    text = output.decode(errors="replace")
    print(text)
    assert proc.returncode == 0, f"locust exited with {proc.returncode}"
    assert "Traceback" not in text
    rows = {(r["Type"], r["Name"]): r for r in read_csv(Path(f"{prefix}_stats.csv"))}
    assert int(rows[("", "Aggregated")]["Failure Count"]) == 0, _text(
        Path(f"{prefix}_failures.csv")
    )

    def count(kind: str, name: str) -> int:
        row = rows.get((kind, name))
        return int(row["Request Count"]) if row else 0

    assert count("POST", "/v1/aichat/auth/login") == 4
    assert count("WS", "connect") == 4
    assert count("WS", "reply (send-to-committed)") > 5
    assert count("WS", "first delta (send-to-first-token)") > 5
    assert count("WS", "history") + count("GET", "/v1/aichat/conversations/{id}/messages") > 0
    assert count("GET", "/v1/aichat/usage") > 0
    replies = await conn.fetchval(
        "SELECT count(*) FROM aichat.messages WHERE role = 'assistant' AND model LIKE 'local%'"
    )
    assert replies >= count("WS", "reply (send-to-committed)")


@pytest.mark.timeout(180)
async def test_streaming_benchmark_smoke(base_dsn: str, tmp_path: Path) -> None:
    """loadtests.bench_aichat at a toy size (its own database, stand-in and gateway): every
    reply streams whole to its conversation, and the results file says so."""
    out = tmp_path / "aichat-streaming.json"
    result = await bench(
        base_dsn, conversations=4, rounds=2, chunks=3, chunk_ms=1, processes=1, out=out
    )
    assert (result.replies, result.replies_whole) == (8, 8)
    assert result.deltas == result.deltas_expected == 4 * 2 * 3
    assert result.deltas_per_s > 0
    added = result.added_first_token_ms
    assert added["max"] >= added["p99"] >= added["p50"] >= 0
    written = json.loads(_text(out))
    assert written["benchmark"] == "aichat-streaming" and written["replies_whole"] == 8
