"""The presence ledger's writes (gateway/presence.py), against Postgres: a wave of leaves of
one channel is deleted in one transaction with one count, and a join of a user whose leave
is still being written waits for it, so the user's row is there afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway.presence import PresenceLedger
from kernel.db import create_pool

ROOM = "community:presence-ledger-test"


@pytest.fixture
async def ledger(dsn: str) -> AsyncIterator[PresenceLedger]:
    pool = await create_pool(dsn, min_size=1, max_size=4)
    ledger = PresenceLedger(pool, heartbeat_s=3600)

    async def no_sweep(_channels: list[str]) -> None:
        return None

    await ledger.start(no_sweep)
    yield ledger
    await ledger.close()
    await pool.close()


class Counts:
    """The count hook: every (channel, count) it was called with."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def __call__(self, _conn: asyncpg.Connection, _channel: str, count: int) -> None:
        self.seen.append(count)


async def _enter(ledger: PresenceLedger, user: str, counts: Counts) -> bool:
    return await ledger.enter(
        ROOM, user, cap=None, counted=True, lock_sql=None, lock_arg=None, on_count=counts
    )


async def _leave(ledger: PresenceLedger, user: str, counts: Counts) -> bool:
    return await ledger.leave(ROOM, user, lock_sql=None, lock_arg=None, on_count=counts)


async def _rows(ledger: PresenceLedger) -> set[str]:
    rows = await ledger.pool.fetch(
        "SELECT user_id FROM gateway.live_members WHERE channel = $1", ROOM
    )
    return {r["user_id"] for r in rows}


async def test_a_wave_of_leaves_is_one_deletion_and_one_count(ledger: PresenceLedger) -> None:
    counts = Counts()
    users = [f"user-{i}" for i in range(200)]
    for user in users:
        assert await _enter(ledger, user, counts)
    assert counts.seen[-1] == 200 and await _rows(ledger) == set(users)
    counts.seen.clear()

    left = await asyncio.gather(*(_leave(ledger, user, counts) for user in users))

    assert left == [True] * 200
    assert await _rows(ledger) == set()
    assert counts.seen == [0]  # not 200 transactions in a row, each with its count
    assert not ledger.dirty

    # a lone leave afterwards is written on its own, at once
    assert await _enter(ledger, "late", counts)
    assert await _leave(ledger, "late", counts)
    assert counts.seen[-2:] == [1, 0] and await _rows(ledger) == set()


async def test_a_join_during_the_users_leave_waits_for_it(ledger: PresenceLedger) -> None:
    counts = Counts()
    assert await _enter(ledger, "alice", counts)
    assert await _enter(ledger, "bob", counts)

    left, joined = await asyncio.gather(
        _leave(ledger, "alice", counts), _enter(ledger, "alice", counts)
    )

    assert (left, joined) == (True, True)
    assert await _rows(ledger) == {"alice", "bob"}
    assert counts.seen[-2:] == [1, 2]


async def test_a_second_socket_of_the_user_leaves_nothing_to_write(
    ledger: PresenceLedger,
) -> None:
    counts = Counts()
    assert await _enter(ledger, "carol", counts)
    assert not await _enter(ledger, "carol", counts)  # a second socket
    assert not await _leave(ledger, "carol", counts)
    assert await _rows(ledger) == {"carol"} and counts.seen == [1]
    assert await _leave(ledger, "carol", counts)
    assert await _rows(ledger) == set() and counts.seen == [1, 0]
