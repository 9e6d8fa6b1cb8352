"""The creator load-test tools against this test's own stack: loadtests.seed_creator (the
population and its credentials file, which the api's login and the gateway's join rules
accept), a short locust run of loadtests/locust_creator.py (fans in their conversations,
viewers in a live stream) and loadtests.bench_creator at a toy size, so none of them rots."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from kernel.tokens import sign_access_token
from loadtests.bench_creator import Deliveries, LiveSocket, bench, table
from loadtests.seed_creator import CREDENTIAL_COLUMNS, PREMIUM_PRICE, CreatorSeedConfig, seed
from loadtests.wsclient import client_frame as ws_frame
from tests.conftest import ROOT
from tests.gateway.harness import WsClient
from tests.loadtests.stack import Stack, file_text, running_stack
from tests.realms.creator.conftest import Connect

RUN_SECONDS = 15


def stats(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open(newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def read_credentials(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == CREDENTIAL_COLUMNS
        return list(reader)


def channels(row: dict[str, str], prefix: str) -> list[str]:
    return [c for c in row["channels"].split() if c.startswith(prefix)]


async def test_seed_population_and_credentials(
    db: asyncpg.Connection, tmp_path: Path, api: TestClient, connect_as: Connect
) -> None:
    out = tmp_path / "creator.csv"
    config = CreatorSeedConfig(
        fans=12, creators=3, follows=2, subscribed=6, messages=4, premium_every=3, streams=2
    )
    report = await seed(db, config, out)
    assert (report.creators, report.fans, report.profiles) == (3, 12, 15)
    assert (report.follows, report.subscriptions, report.conversations) == (24, 6, 6)
    assert (report.premium, report.messages) == (2, 6 * 4 + 2)
    # hot share 0.5: fans 1-6 watch stream 1; fans 7-12 round-robin (7, 9, 11 stream 1)
    assert [s.viewers for s in report.streams] == [9, 3]
    counts = await db.fetchrow(
        "SELECT (SELECT count(*) FROM creator.users WHERE age_verified"
        "   AND account_status = 'active') AS users,"
        " (SELECT count(DISTINCT password_hash) FROM creator.users) AS hashes,"
        " (SELECT count(*) FROM creator.user_profiles) AS profiles,"
        " (SELECT count(*) FROM creator.subscriptions s"
        "   WHERE creator.has_active_subscription(s.subscriber_id, s.creator_id)) AS subscribed,"
        " (SELECT count(*) FROM creator.conversations"
        "   WHERE fan_unread_count = 0 AND creator_unread_count = 0"
        "     AND fan_last_read_seq = last_seq AND last_message_at IS NOT NULL) AS read,"
        " (SELECT sum(last_seq) FROM creator.conversations) AS seqs,"
        " (SELECT count(*) FROM creator.messages WHERE price = $1) AS premium,"
        " (SELECT count(*) FROM creator.live_streams WHERE status = 'live'"
        "   AND NOT is_premium) AS live",
        PREMIUM_PRICE,
    )
    assert dict(counts) == {
        "users": 15, "hashes": 1, "profiles": 15, "subscribed": 6, "read": 6, "seqs": 26,
        "premium": 2, "live": 2,
    }  # fmt: skip

    rows = read_credentials(out)
    assert len(rows) == report.credentials == 15
    assert [r["user_type"] for r in rows[:3]] == ["creator"] * 3
    host = rows[0]  # creator 1: fans 1 and 4 subscribe to them; they host stream 1
    assert len(channels(host, "creator.dm:")) == 2
    assert channels(host, "creator.live:") == [report.streams[0].channel]
    fan = next(r for r in rows[3:] if channels(r, "creator.dm:"))
    assert channels(fan, "creator.live:") == [report.streams[0].channel]
    assert not channels(rows[-1], "creator.dm:")  # fan 12: no subscription
    assert channels(rows[-1], "creator.live:") == [report.streams[1].channel]

    # What the file says holds: the password logs in, and the channels admit their users.
    resp = await api.post(
        "/v1/creator/auth/login", json={"login": fan["email"], "password": config.password}
    )
    assert resp.status == 200, await resp.text()
    fan_socket = await connect_as(uuid.UUID(fan["user_id"]))
    (dm,) = channels(fan, "creator.dm:")
    joined = await fan_socket.ok("join", channel=dm)
    assert joined["role"] == "fan" and joined["last_seq"] >= 4
    (live,) = channels(fan, "creator.live:")
    assert (await fan_socket.ok("join", channel=live))["role"] == "member"
    host_socket = await connect_as(uuid.UUID(host["user_id"]))
    assert (await host_socket.ok("join", channel=live))["role"] == "owner"
    assert (await host_socket.ok("join", channel=channels(host, "creator.dm:")[0]))[
        "role"
    ] == "creator"
    stranger = await connect_as(uuid.UUID(rows[-1]["user_id"]))
    assert (await stranger.call("join", channel=dm))["code"] == "forbidden"

    # The premium messages travel locked to a fan who has not bought them.
    premium_fan = await db.fetchval(
        "SELECT c.fan_id FROM creator.messages m JOIN creator.conversations c"
        " ON c.id = m.conversation_id WHERE m.price IS NOT NULL LIMIT 1"
    )
    premium_socket = await connect_as(premium_fan)
    premium_dm = next(
        channels(r, "creator.dm:")[0] for r in rows if r["user_id"] == str(premium_fan)
    )
    await premium_socket.ok("join", channel=premium_dm)
    history = await premium_socket.ok("history", channel=premium_dm, limit=10)
    (locked,) = [m for m in history["messages"] if m.get("price")]
    assert locked["locked"] is True and locked["text"] == "" and "attachment" not in locked
    assert locked["preview"]["media_types"] == ["image"]

    # A second population beside the first.
    again = await seed(
        db, CreatorSeedConfig(fans=2, creators=1, follows=1, subscribed=1, streams=1), None
    )
    assert again.tag != report.tag and again.credentials == 0
    assert await db.fetchval("SELECT count(*) FROM creator.users") == 18


@pytest.fixture
async def stack(dsn: str, secret: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(
        dsn, secret, tmp_path, SWITCHBOARD_REALMS="creator", BCRYPT_ROUNDS="4"
    ) as running:
        yield running


@pytest.mark.timeout(180)
async def test_locust_creator_run(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path, secret: str
) -> None:
    credentials = tmp_path / "creator.csv"
    report = await seed(
        db,
        CreatorSeedConfig(
            fans=8,
            creators=2,
            follows=1,
            subscribed=4,
            messages=2,
            premium_every=1,
            streams=1,
            hot_share=1.0,
        ),
        credentials,
    )
    (stream,) = report.streams
    # The stream's creator watches the room's count from a socket of their own.
    token = sign_access_token(secret, str(stream.creator_id), "creator", 600)
    watcher = await WsClient.open(stack.gateway.url, token)
    try:
        await watcher.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
        await watcher.ok("join", channel=stream.channel)
        prefix = tmp_path / "locust"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "loadtests" / "locust_creator.py"),
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
            "--creator-gateway-url",
            stack.gateway.url,
            "--creator-credentials",
            str(credentials),
            "--creator-fan-weight",
            "1",
            "--creator-viewer-weight",
            "1",
            "--creator-wait-min",
            "0.2",
            "--creator-wait-max",
            "0.6",
            "--creator-viewer-wait-min",
            "0.2",
            "--creator-viewer-wait-max",
            "0.6",
            "--creator-buy-share",
            "1",
            "--creator-recv-sample",
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

        # Three fans and three viewers logged in, joined, talked and heard each other.
        assert count("POST", "/v1/creator/auth/login") == 6
        assert count("WS", "connect") == 6
        assert count("WS", "join") >= 6
        assert count("WS", "send (ack)") > 10
        assert count("WS", "send-to-receive (own echo)") > 10
        assert count("WS", "msg received (commit-to-receive)") > 0  # viewers hear each other
        assert count("WS", "leave") > 0
        assert count("WS", "viewers event (interval)") > 0
        assert count("WS", "read") + count("WS", "history") > 0
        looks = count("GET", "/v1/creator/conversations/{id}/messages")
        bought = count("POST", "/v1/creator/messages/{id}/purchase")
        assert looks > 0 and bought > 0
        assert count("WS", "message unlocked (purchase-to-receive)") > 0
        purchases = await db.fetchval(
            "SELECT count(*) FROM creator.transactions WHERE transaction_type = 'message_purchase'"
            " AND status = 'completed'"
        )
        assert 0 < purchases <= 3  # one per fan at most: a retried purchase charges nothing
        seeded = 4 * (2 + 1)  # four conversations: two messages and a premium one each
        assert await db.fetchval("SELECT count(*) FROM creator.messages") > seeded
        # Everyone has gone: the room's count drops to 0, pushed as `viewers` events.
        while await db.fetchval(
            "SELECT current_viewers FROM creator.live_streams WHERE id = $1", stream.id
        ):
            await watcher.expect(lambda f: f.get("kind") == "viewers", timeout=30)
    finally:
        await watcher.close()


async def test_benchmark_times_every_delivery_once_whatever_the_reads() -> None:
    """The benchmark's receivers read raw bytes: a message split across two reads, at any
    byte, is one delivery; other frames are none."""
    clock = Deliveries()
    clock.sent_at = [0.0] * 20
    frames = b"".join(
        ws_frame(b'{"op":"msg","channel":"c","id":"i","text":"#%d# hello","type":"text"}' % n)
        for n in (3, 17, 4)
    ) + ws_frame(b'{"op":"event","channel":"c","kind":"viewers","data":{"current":3}}')
    for cut in range(len(frames) + 1):
        sock = LiveSocket("/ws", "127.0.0.1")
        sock.clock = clock
        sock.data_received(frames[:cut])
        sock.data_received(frames[cut:])
    assert clock.count == 3 * (len(frames) + 1)
    assert sum(clock.hist) == clock.count


@pytest.mark.timeout(180)
async def test_live_stream_benchmark_smoke(base_dsn: str, tmp_path: Path) -> None:
    """loadtests.bench_creator at a toy size (its own database and gateway): every chat
    message reaches every viewer (half of them timing each delivery, half counting), each
    wave's count reaches the room, and the results file and table say so."""
    out = tmp_path / "creator-live.json"
    result = await bench(
        base_dsn,
        viewers=6,
        waves=2,
        chatters=2,
        rate=10,
        duration=1,
        leave_share=0.5,
        join_concurrency=3,
        timed_share=0.5,
        out=out,
    )
    assert [(w.kind, w.viewers, w.total) for w in result.waves] == [("join", 3, 3), ("join", 3, 6)]
    assert all(w.lag_s is not None and w.events >= 1 for w in result.waves)
    chat = result.chat
    assert chat.sent == 10 and chat.refused == 0
    assert chat.delivered == chat.expected == 10 * 6 and chat.timed == 10 * 3
    assert chat.deliveries_per_s > 0 and chat.max_ms >= chat.p99_ms >= chat.p50_ms > 0
    assert result.leave is not None and (result.leave.viewers, result.leave.total) == (3, 3)
    assert result.leave.lag_s is not None
    assert (result.final_current, result.final_peak) == (3, 6)
    assert result.lost_sockets == 0
    written = json.loads(file_text(out))
    assert written["benchmark"] == "creator-live" and written["chat"]["delivered"] == 60
    assert "| deliveries | 60 of 60 |" in table(result)
