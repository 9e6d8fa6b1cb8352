"""The academy load-test tools against this test's own stack: loadtests.seed_academy (the
population and its credentials file, which the api and the gateway's join rule accept), a
short locust run of loadtests/locust_academy.py (learners joining, chatting, leaving; the
host) and loadtests.bench_academy at a toy size, so none of them rots."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from loadtests.bench_academy import bench
from loadtests.seed_academy import CREDENTIAL_COLUMNS, AcademySeedConfig, seed
from tests.conftest import ROOT
from tests.gateway.harness import GatewayProcess, WsClient
from tests.loadtests.stack import Stack, file_text, running_stack
from tests.realms.academy.live import connect, server_event

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
    db: asyncpg.Connection,
    tmp_path: Path,
    academy_api: TestClient,
    gateway: GatewayProcess,
    secret: str,
    sockets: list[WsClient],
) -> None:
    out = tmp_path / "academy.csv"
    config = AcademySeedConfig(learners=40, sessions=3, hot_share=0.5, lessons=12, gates=5)
    report = await seed(db, config, out)
    assert (report.hosts, report.learners, report.lessons) == (3, 40, 12)
    assert report.registrations == 40 == report.credentials - 3
    hot, *rest = report.sessions
    assert hot.participants == 20 + sum(1 for n in range(21, 41) if n % 3 == 0)
    assert sum(s.participants for s in report.sessions) == 40
    counts = await db.fetchrow(
        "SELECT (SELECT count(*) FROM academy.users) AS users,"
        " (SELECT count(*) FROM academy.user_profiles) AS profiles,"
        " (SELECT count(*) FROM academy.user_streaks) AS streaks,"
        " (SELECT count(*) FROM academy.live_sessions WHERE status = 'live') AS live,"
        " (SELECT count(DISTINCT encrypted_password) FROM academy.users) AS hashes"
    )
    assert dict(counts) == {"users": 43, "profiles": 43, "streaks": 43, "live": 3, "hashes": 1}
    rows = read_credentials(out)
    assert [r["user_type"] for r in rows[:3]] == ["host"] * 3
    assert {r["channels"] for r in rows} == {s.channel for s in report.sessions}

    # A second population beside the first: its own e-mails and lesson levels.
    again = await seed(db, AcademySeedConfig(learners=5, sessions=1, lessons=12), None)
    assert again.lessons == 12 and again.credentials == 0
    assert await db.fetchval("SELECT count(*) FROM academy.lessons") == 24

    # What the file says holds: the password logs in, and the room admits the learner.
    learner = next(r for r in rows if r["user_type"] == "learner")
    r = await academy_api.post(
        "/v1/academy/auth/login", json={"email": learner["email"], "password": config.password}
    )
    assert r.status == 200, await r.text()
    client = await connect(gateway, secret, UUID(learner["user_id"]), sockets)
    assert (await client.ok("join", channel=learner["channels"]))["role"] == "member"
    host = next(r for r in rows[:3] if r["channels"] == learner["channels"])
    client = await connect(gateway, secret, UUID(host["user_id"]), sockets)
    assert (await client.ok("join", channel=learner["channels"]))["role"] == "owner"
    for other in rest:
        if other.channel != learner["channels"]:
            refused = await client.call("join", channel=other.channel)
            assert refused["code"] == "forbidden"


@pytest.fixture
async def stack(dsn: str, secret: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(
        dsn, secret, tmp_path, SWITCHBOARD_REALMS="academy", BCRYPT_ROUNDS="4"
    ) as running:
        yield running


@pytest.mark.timeout(180)
async def test_locust_academy_live_session_run(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path, secret: str, sockets: list[WsClient]
) -> None:
    credentials = tmp_path / "academy.csv"
    report = await seed(db, AcademySeedConfig(learners=20, sessions=1), credentials)
    (session,) = report.sessions
    # The host watches the room's live count from a socket of their own.
    watcher = await connect(stack.gateway, secret, session.host_id, sockets)
    await watcher.ok("join", channel=session.channel)
    prefix = tmp_path / "locust"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtests" / "locust_academy.py"),
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
        "--academy-gateway-url",
        stack.gateway.url,
        "--academy-credentials",
        str(credentials),
        "--academy-wait-min",
        "0.2",
        "--academy-wait-max",
        "0.6",
        "--academy-recv-sample",
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

    # One host and five learners logged in, joined, chatted, heard each other, and the
    # learners left and came back.
    assert count("POST", "/v1/academy/auth/login") == 6
    assert count("WS", "connect") == 6
    assert count("WS", "join") >= 6
    assert count("WS", "send (ack)") > 10
    assert count("WS", "send-to-receive (own echo)") > 10
    assert count("WS", "msg received (commit-to-receive)") > 0
    assert count("WS", "leave") > 0
    assert count("GET", "/v1/academy/sessions/{id}") > 0
    attended = await db.fetchval(
        "SELECT count(*) FROM academy.session_participants WHERE session_id = $1"
        " AND attendance_status = 'attended' AND joined_at IS NOT NULL",
        session.id,
    )
    assert attended == 5
    # Everyone has gone: the ledger empties the room's live count. Each change is pushed to
    # the room, so while the count is not 0 yet another `participants` event is on its way.
    while await db.fetchval(
        "SELECT current_participants FROM academy.live_sessions WHERE id = $1", session.id
    ):
        await watcher.expect(server_event("participants"))


@pytest.mark.timeout(180)
async def test_fanout_benchmark_smoke(base_dsn: str, tmp_path: Path) -> None:
    """loadtests.bench_academy at a toy size (its own database and gateways): every message
    reaches every participant in both rooms, and the results file says so."""
    out = tmp_path / "academy-fanout.json"
    results = await bench(
        base_dsn,
        participants=6,
        messages=4,
        rate=10,
        duration=0.5,
        timed=2,
        processes=1,
        compare_analyst=True,
        out=out,
    )
    assert [r.realm for r in results] == ["academy", "analyst"]
    for r in results:
        assert r.participants == 6 and r.deliveries_per_s > 0
        assert r.steady_sent > 0 and r.delivered == r.expected == r.steady_sent * 6
        assert r.p99_ms >= r.p50_ms > 0
    written = json.loads(file_text(out))
    assert [p["realm"] for p in written["points"]] == ["academy", "analyst"]
