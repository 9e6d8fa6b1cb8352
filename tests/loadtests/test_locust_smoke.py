"""A 20-second locust run against a real gateway and API, so the locustfile never rots.

The stack is this test's own: a fresh database seeded with loadtests.seed, one gateway
process and `python -m api` on free loopback ports. Locust runs headless as a subprocess with
a handful of users at brisk rates; its CSV must show traffic of every kind and no failure.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from loadtests.seed import SeedConfig, seed
from tests.conftest import ROOT
from tests.loadtests.stack import Stack, file_text, running_stack

RUN_SECONDS = 20


@pytest.fixture
async def stack(dsn: str, secret: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(dsn, secret, tmp_path) as running:
        yield running


def stats(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open(newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


@pytest.mark.timeout(180)
async def test_locust_smoke_run(stack: Stack, dsn: str, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.csv"
    conn = await asyncpg.connect(dsn)
    try:
        # Every trader's first subscription is to analyst #1, whom the analyst user plays:
        # chat users share a room and receive that analyst's post notifications.
        await seed(
            conn,
            SeedConfig(
                users=40,
                analysts=3,
                hot_channels=1,
                hot_share=1.0,
                message_rate_limit=600,
                random_seed=0.5,
            ),
            credentials,
        )
    finally:
        await conn.close()

    prefix = tmp_path / "locust"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtests" / "locustfile.py"),
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
        "--gateway-url",
        stack.gateway_url,
        "--credentials",
        str(credentials),
        "--analyst-users",
        "1",
        "--inbox-weight",
        "3",
        "--chat-wait-min",
        "0.3",
        "--chat-wait-max",
        "1.0",
        "--post-wait-min",
        "1",
        "--post-wait-max",
        "2",
        "--inbox-wait-min",
        "0.5",
        "--inbox-wait-max",
        "1",
        "--ws-recv-sample",
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
    assert int(total["Request Count"]) > 100
    assert int(total["Failure Count"]) == 0
    failures = file_text(Path(f"{prefix}_failures.csv")).strip().splitlines()
    assert failures[1:] == [], failures

    def count(kind: str, name: str) -> int:
        row = rows.get((kind, name))
        return int(row["Request Count"]) if row else 0

    # Every user class did its part: REST logins, inbox reads, posts; WebSocket connects,
    # joins, sends, the senders' own echoes, others' messages and post notifications.
    assert count("POST", "/v1/auth/login") == 6
    assert count("GET", "/v1/inbox/unread-count") + count("GET", "/v1/feed") > 0
    assert count("POST", "/v1/posts (call)") + count("POST", "/v1/posts (urgent call)") > 0
    assert count("WS", "connect") >= 1
    assert count("WS", "join") >= 1
    assert count("WS", "send (ack)") > 10
    assert count("WS", "send-to-receive (own echo)") > 10
    assert count("WS", "msg received (commit-to-receive)") > 0
    assert count("WS", "notification new_post") + count("WS", "notification urgent_post") > 0
    echo = rows[("WS", "send-to-receive (own echo)")]
    assert 0 < float(echo["Average Response Time"]) < 5000


def _server_frame(payload: bytes, opcode: int, fin: bool = True, mask: bytes = b"") -> bytes:
    n, maskbit = len(payload), 0x80 if mask else 0
    head = bytes(((0x80 if fin else 0) | opcode,))
    head += bytes((maskbit | n,)) if n < 126 else bytes((maskbit | 126,)) + n.to_bytes(2, "big")
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + payload


def test_ws_client_frames() -> None:
    """The locust WebSocket client's reader: fragmented and masked messages, a ping answered
    with a pong, and the server's close (its code reaches on_close, and is echoed)."""
    from gevent import socket as gsocket

    from loadtests.ws_user import GeventWebSocket

    ours, theirs = gsocket.socketpair()
    received: list[bytes] = []
    closed: list[tuple[int | None, str]] = []
    ws = GeventWebSocket(
        "ws://127.0.0.1:1/ws", received.append, lambda code, reason: closed.append((code, reason))
    )
    ws._sock = ours  # as after a handshake
    theirs.sendall(
        _server_frame(b'{"op":', 0x1, fin=False)
        + _server_frame(b'"ok"}', 0x0)
        + _server_frame(b"x" * 300, 0x1)[:1]  # a frame split across writes...
    )
    theirs.sendall(
        _server_frame(b"x" * 300, 0x1)[1:]  # ...completed by the next one
        + _server_frame(b"masked", 0x2, mask=b"\x01\x02\x03\x04")
        + _server_frame(b"hi", 0x9)
        + _server_frame(b"\x0f\xa8slow", 0x8)
    )
    ws._read_loop(bytearray())
    assert received == [b'{"op":"ok"}', b"x" * 300, b"masked"]
    assert closed == [(4008, "slow")] and ws.closed.is_set() and not ws.closed_by_client
    answered = theirs.recv(100)
    assert answered == b"\x8a\x82\x00\x00\x00\x00hi" + b"\x88\x82\x00\x00\x00\x00\x0f\xa8"
    theirs.close()
