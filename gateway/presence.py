"""Live membership across gateway processes, kept in Postgres: presence and member counts.

Each gateway process is a node with a heartbeat row; each (channel, user) with at least one
joined socket on a node has a row in gateway.live_members. Presence is the users with a row
on a live node; a node that stops heartbeating is swept (its rows cascade away), so presence
expires on its own when a process dies. Joins over a channel's cap are refused here, under
the channel's row lock, so two nodes cannot both admit the last member.

The leaves of one channel that come while its previous deletion runs are deleted together:
one transaction, one count (a wave of closes is not one transaction per socket in a row).
A leave always completes here, in memory, whatever Postgres says; if its write fails (the
database is away) the ledger is marked dirty. At the first heartbeat that gets through after
a failure, or when the heartbeat finds this node swept (a long outage, a paused process),
the node re-asserts what it owns: its node row, a row for each user still here, none for a
user gone; then the changed channels are recounted (docs/protocol.md §14).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

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
_UPSERT_NODE = (
    "INSERT INTO gateway.nodes (node_id) VALUES ($1)"
    " ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now()"
)
_DELETE_GONE = """
DELETE FROM gateway.live_members lm
 USING unnest($2::text[], $3::text[]) AS gone (channel, user_id)
 WHERE lm.node_id = $1 AND lm.channel = gone.channel AND lm.user_id = gone.user_id
RETURNING lm.channel
"""
_INSERT_HERE = """
INSERT INTO gateway.live_members (channel, user_id, node_id, counted)
SELECT here.channel, here.user_id, $1, here.counted
  FROM unnest($2::text[], $3::text[], $4::boolean[]) AS here (channel, user_id, counted)
    ON CONFLICT DO NOTHING
RETURNING channel
"""
_DELETE_LEFT = (
    "DELETE FROM gateway.live_members"
    " WHERE channel = $1 AND node_id = $2 AND user_id = ANY ($3::text[])"
)
Sweep = Callable[[list[str]], Awaitable[None]]


@dataclass(frozen=True)
class _LeaveWrite:
    """How a channel's leaves are written: its domain row lock and its count hook."""

    lock_sql: str | None
    lock_arg: object
    on_count: CountHook


@dataclass
class _LeaveBatch:
    """Leaves of one channel waiting for the channel's next deletion."""

    done: asyncio.Future[None]
    users: list[str] = field(default_factory=list)


class _KeyLock:
    """A lock with a count of its holders and waiters, so it is dropped only when unused."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


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
        self._counted: dict[tuple[str, str], bool] = {}
        self._locks: dict[tuple[str, str], _KeyLock] = {}
        self._task: asyncio.Task[None] | None = None
        self._reassert_lock = asyncio.Lock()
        # Leaves of a channel queued while its previous deletion runs, and those deletions.
        self._leaving: dict[str, _LeaveBatch] = {}
        self._flushing: dict[str, asyncio.Task[None]] = {}
        # Postgres may disagree with _local (a write failed): re-assert at the next heartbeat.
        self.dirty = False

    @contextlib.asynccontextmanager
    async def _holding(self, key: tuple[str, str]) -> AsyncIterator[None]:
        # One lock per (channel, user): joins of different users do not wait for each other.
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = _KeyLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0 and self._locks.get(key) is entry:
                del self._locks[key]

    async def start(self, sweep: Sweep) -> None:
        await self.pool.execute(_UPSERT_NODE, self.node_id)
        self._task = asyncio.create_task(self._heartbeat(sweep), name="presence-heartbeat")

    async def _heartbeat(self, sweep: Sweep) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                status = await self.pool.execute(
                    "UPDATE gateway.nodes SET heartbeat_at = now() WHERE node_id = $1", self.node_id
                )
                if status == "UPDATE 0":  # swept while we were silent: our rows are gone
                    log.warning("node_was_swept", node=self.node_id)
                    self.dirty = True
                if self.dirty:
                    changed = await self.reassert()
                    if changed:
                        await sweep(changed)
                rows = await self.pool.fetch(
                    "WITH dead AS (DELETE FROM gateway.nodes"
                    "  WHERE heartbeat_at < now() - make_interval(secs => $1) RETURNING node_id)"
                    " SELECT DISTINCT lm.channel FROM gateway.live_members lm"
                    "  JOIN dead USING (node_id)",
                    self.node_ttl_s,
                )
                if rows:
                    await sweep([r["channel"] for r in rows])
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.dirty = True  # what failed meanwhile is repaired at the next beat
                log.error("heartbeat_failed", node=self.node_id, error=repr(exc))
            except Exception:
                self.dirty = True
                log.exception("heartbeat_crashed", node=self.node_id)

    async def reassert(self) -> list[str]:
        """Make this node's rows in Postgres match its sockets: the node row back if it was
        swept, a row for each (channel, user) still here, none for one gone. Returns the
        channels whose rows changed (their counts are to be recomputed)."""
        async with self._reassert_lock:
            self.dirty = False
            try:
                await self.pool.execute(_UPSERT_NODE, self.node_id)
                rows = await self.pool.fetch(
                    "SELECT channel, user_id FROM gateway.live_members WHERE node_id = $1",
                    self.node_id,
                )
                keys = sorted({(r["channel"], r["user_id"]) for r in rows} | set(self._local))
                async with contextlib.AsyncExitStack() as held:
                    # Under each key's lock no join or leave of that key is half done.
                    for key in keys:
                        await held.enter_async_context(self._holding(key))
                    here = [k for k in keys if self._local.get(k, 0) > 0]
                    gone = [k for k in keys if self._local.get(k, 0) <= 0]
                    async with self.pool.acquire() as conn, conn.transaction():
                        await conn.execute(_UPSERT_NODE, self.node_id)
                        deleted = await conn.fetch(
                            _DELETE_GONE,
                            self.node_id,
                            [c for c, _ in gone],
                            [u for _, u in gone],
                        )
                        inserted = await conn.fetch(
                            _INSERT_HERE,
                            self.node_id,
                            [c for c, _ in here],
                            [u for _, u in here],
                            [self._counted.get(k, True) for k in here],
                        )
            except BaseException:
                self.dirty = True
                raise
        changed = sorted({r["channel"] for r in deleted} | {r["channel"] for r in inserted})
        log.info(
            "presence_reasserted",
            node=self.node_id,
            removed=len(deleted),
            restored=len(inserted),
            channels=len(changed),
        )
        return changed

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
        async with self._holding(key):
            if self._local[key] > 0:
                self._local[key] += 1
                return False
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    if lock_sql:
                        await conn.execute(lock_sql, lock_arg)
                    if cap is not None:
                        present = await conn.fetchval(
                            _COUNT_OTHERS, channel, self.node_ttl_s, user_id
                        )
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
                    count = await conn.fetchval(_COUNT, channel, self.node_ttl_s)
                    await on_count(conn, channel, count)
            except Forbidden:
                raise
            except BaseException:  # a commit cut short may have kept the row: look again
                self.dirty = True
                raise
            self._local[key] = 1
            self._counted[key] = counted
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
        """Count a socket out; True when it was the user's last one here on this node.

        Never fails for want of Postgres: the count here is what matters for this node, and a
        row left behind is removed when the ledger re-asserts itself (see `reassert`)."""
        key = (channel, user_id)
        async with self._holding(key):
            if self._local[key] <= 0:
                return False
            self._local[key] -= 1
            if self._local[key] > 0:
                return False
            del self._local[key]
            self._counted.pop(key, None)
            # Held under the key's lock until the row is gone: a join of the same user waits.
            await self._leave_row(channel, user_id, _LeaveWrite(lock_sql, lock_arg, on_count))
        return True

    async def _leave_row(self, channel: str, user_id: str, write: _LeaveWrite) -> None:
        """Delete the user's row of `channel`, together with every other leave of the channel
        that comes while the channel's previous deletion runs: one transaction, one count and
        one count hook for all of them. A wave of 500 closes was 500 transactions in a row,
        each under the channel's lock; a lone leave still goes at once."""
        batch = self._leaving.get(channel)
        if batch is None:
            batch = self._leaving[channel] = _LeaveBatch(asyncio.get_running_loop().create_future())
            if channel not in self._flushing:
                self._flushing[channel] = asyncio.create_task(
                    self._flush_leaves(channel, write), name=f"presence-leave {channel}"
                )
        batch.users.append(user_id)
        await asyncio.shield(batch.done)

    async def _flush_leaves(self, channel: str, write: _LeaveWrite) -> None:
        try:
            while (batch := self._leaving.pop(channel, None)) is not None:
                try:
                    async with self.pool.acquire() as conn, conn.transaction():
                        if write.lock_sql:
                            await conn.execute(write.lock_sql, write.lock_arg)
                        await conn.execute(_DELETE_LEFT, channel, self.node_id, batch.users)
                        count = await conn.fetchval(_COUNT, channel, self.node_ttl_s)
                        await write.on_count(conn, channel, count)
                except Exception as exc:
                    self.dirty = True  # the rows left behind go at the next heartbeat
                    log.error(
                        "presence_leave_deferred",
                        channel=channel,
                        users=len(batch.users),
                        error=repr(exc),
                    )
                except BaseException:  # cancelled: whether it committed is unknown
                    self.dirty = True
                    raise
                finally:
                    batch.done.set_result(None)  # a leave never fails
        finally:
            self._flushing.pop(channel, None)
            left_behind = self._leaving.pop(channel, None)
            if left_behind is not None:  # cancelled with leaves still queued
                self.dirty = True
                left_behind.done.set_result(None)

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
