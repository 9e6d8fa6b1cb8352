"""Live membership across gateway processes, kept in Postgres: presence and member counts.

Each gateway process is a node with a heartbeat row; each (channel, user) with at least one
joined socket on a node has a row in gateway.live_members. Presence is the users with a row
on a live node; a node that stops heartbeating is swept (its rows cascade away), so presence
expires on its own when a process dies. Joins over a channel's cap are refused here, under
the channel's row lock, so two nodes cannot both admit the last member.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import asyncpg

from kernel.errors import Forbidden
from kernel.logs import EventLog

log = EventLog("gateway.presence")


CountHook = Callable[[asyncpg.Connection, str, int], Awaitable[None]]

_COUNT = """
SELECT count(DISTINCT lm.user_id)
  FROM gateway.live_members lm JOIN gateway.nodes n USING (node_id)
 WHERE lm.channel = $1 AND n.heartbeat_at > now() - make_interval(secs => $2)
"""
_COUNT_OTHERS = """
SELECT count(DISTINCT lm.user_id)
  FROM gateway.live_members lm JOIN gateway.nodes n USING (node_id)
 WHERE lm.channel = $1 AND n.heartbeat_at > now() - make_interval(secs => $2)
   AND lm.user_id <> $3::text AND lm.counted
"""


class PresenceLedger:
    """This node's view: local socket counts per (channel, user), mirrored into Postgres."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        node_id: str | None = None,
        *,
        heartbeat_s: float = 5.0,
        node_ttl_s: float = 20.0,
    ) -> None:
        """`node_ttl_s` without a heartbeat and a node counts as dead (and is swept)."""
        self.pool = pool
        self.node_id = node_id or f"gw-{uuid.uuid4().hex[:12]}"
        self.heartbeat_s = heartbeat_s
        self.node_ttl_s = node_ttl_s
        self._local: Counter[tuple[str, str]] = Counter()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None

    def _lock_for(self, key: tuple[str, str]) -> asyncio.Lock:
        # One lock per (channel, user): joins of different users do not wait for each other.
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def start(self, sweep: Callable[[list[str]], Awaitable[None]]) -> None:
        await self.pool.execute(
            "INSERT INTO gateway.nodes (node_id) VALUES ($1)"
            " ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now()",
            self.node_id,
        )
        self._task = asyncio.create_task(self._heartbeat(sweep), name="presence-heartbeat")

    async def _heartbeat(self, sweep: Callable[[list[str]], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self.pool.execute(
                    "UPDATE gateway.nodes SET heartbeat_at = now() WHERE node_id = $1", self.node_id
                )
                rows = await self.pool.fetch(
                    "WITH dead AS (DELETE FROM gateway.nodes"
                    "  WHERE heartbeat_at < now() - make_interval(secs => $1) RETURNING node_id)"
                    " SELECT DISTINCT lm.channel FROM gateway.live_members lm"
                    "  JOIN dead USING (node_id)",
                    self.node_ttl_s,
                )
                if rows:
                    await sweep([r["channel"] for r in rows])
            except (OSError, asyncpg.PostgresError) as exc:
                log.error("heartbeat_failed", node=self.node_id, error=repr(exc))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await self.pool.execute("DELETE FROM gateway.nodes WHERE node_id = $1", self.node_id)

    async def enter(
        self,
        channel: str,
        user_id: str,
        *,
        cap: int | None,
        counted: bool,
        lock_sql: str | None,
        lock_arg: object,
        on_count: CountHook,
    ) -> bool:
        """Count a socket of `user_id` in; raise Forbidden when the channel is at `cap`.

        Only `counted` members take a place under the cap. `lock_sql` locks the channel's
        domain row (serialising admissions across nodes). Returns True for the user's first
        socket in the channel on this node.
        """
        key = (channel, user_id)
        async with self._lock_for(key):
            if self._local[key] > 0:
                self._local[key] += 1
                return False
            async with self.pool.acquire() as conn, conn.transaction():
                if lock_sql:
                    await conn.execute(lock_sql, lock_arg)
                if cap is not None:
                    present = await conn.fetchval(_COUNT_OTHERS, channel, self.node_ttl_s, user_id)
                    if present >= cap:
                        raise Forbidden(f"channel is full ({cap} members)")
                await conn.execute(
                    "INSERT INTO gateway.live_members (channel, user_id, node_id, counted)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    channel,
                    user_id,
                    self.node_id,
                    counted,
                )
                await on_count(conn, channel, await conn.fetchval(_COUNT, channel, self.node_ttl_s))
            self._local[key] = 1
            return True

    async def leave(
        self,
        channel: str,
        user_id: str,
        *,
        lock_sql: str | None,
        lock_arg: object,
        on_count: CountHook,
    ) -> bool:
        """Count a socket out; True when it was the user's last one here on this node."""
        key = (channel, user_id)
        async with self._lock_for(key):
            if self._local[key] <= 0:
                return False
            self._local[key] -= 1
            if self._local[key] > 0:
                return False
            del self._local[key]
            async with self.pool.acquire() as conn, conn.transaction():
                if lock_sql:
                    await conn.execute(lock_sql, lock_arg)
                await conn.execute(
                    "DELETE FROM gateway.live_members"
                    " WHERE channel = $1 AND user_id = $2 AND node_id = $3",
                    channel,
                    user_id,
                    self.node_id,
                )
                await on_count(conn, channel, await conn.fetchval(_COUNT, channel, self.node_ttl_s))
        lock = self._locks.get(key)
        if lock is not None and not lock.locked() and self._local.get(key, 0) == 0:
            del self._locks[key]
        return True

    async def recount(self, channel: str, on_count: CountHook) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await on_count(conn, channel, await conn.fetchval(_COUNT, channel, self.node_ttl_s))

    async def who(self, channel: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT DISTINCT lm.user_id FROM gateway.live_members lm JOIN gateway.nodes n"
            " USING (node_id) WHERE lm.channel = $1"
            " AND n.heartbeat_at > now() - make_interval(secs => $2) ORDER BY 1",
            channel,
            self.node_ttl_s,
        )
        return [str(r["user_id"]) for r in rows]
