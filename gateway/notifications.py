"""In-app delivery: LISTEN sb_notification (one NOTIFY per new notification, from a trigger)
and write a `notification` frame to the `user:<id>` stream of users with sockets here.

Every gateway process listens and serves only its own sockets, so each socket gets each
notification once however many processes there are; going through Redis as well would
deliver it once per process that has the user. A missed NOTIFY (listener reconnecting) is
covered by the unread count a client reads on connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import TYPE_CHECKING

import asyncpg
import msgspec

from gateway.protocol import Notification, json_encoder
from kernel.db import connect
from kernel.logs import EventLog

if TYPE_CHECKING:
    from gateway.runtime import Gateway

log = EventLog("gateway.notifications")

NOTIFICATION_CHANNEL = "sb_notification"
MAX_LOAD = 1000  # notifications loaded per query


class _Notice(msgspec.Struct, frozen=True):
    user_id: str
    id: str


_notice = msgspec.json.Decoder(_Notice)

_LOAD = """
SELECT id, user_id, notification_type, title, message, action_url, priority, created_at
  FROM analyst.notifications
 WHERE id = ANY ($1::uuid[]) AND send_in_app
 ORDER BY created_at, id
"""

_UNREAD = """
SELECT count(*) FROM analyst.notifications
 WHERE user_id = $1 AND read_at IS NULL AND send_in_app
"""


async def unread_count(db: asyncpg.Pool | asyncpg.Connection, user_id: str) -> int:
    """Unread in-app notifications of the user (the badge a client shows on connect)."""
    return int(await db.fetchval(_UNREAD, uuid.UUID(user_id)))


class NotificationRelay:
    """Hears new notifications and writes them to local sockets. `start()`, then `close()`."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._pending: list[str] = []
        self._flushing: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.delivered = 0

    async def start(self) -> None:
        """Return once listening (so nothing committed after start is missed)."""
        self._listen_task = asyncio.create_task(self._listen(), name="notification-listen")
        ready = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait([ready, self._listen_task], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._listen_task.done():
            self._listen_task.result()

    async def close(self) -> None:
        for task in (self._listen_task, self._flushing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def unread_count(self, user_id: str) -> int:
        """Unread in-app notifications of the user (the badge a client shows on connect)."""
        return await unread_count(self._gateway.pool, user_id)

    # --- listening ----------------------------------------------------------------------------

    async def _listen(self) -> None:
        dsn = self._gateway.settings.database_url
        delay = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(dsn, application_name="switchboard-notifications")
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(NOTIFICATION_CHANNEL, self._on_notice)
                self._ready.set()
                delay = 0.5
                await lost.wait()
                log.warning("listen_connection_lost")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not self._ready.is_set():
                    raise
                log.error("listen_failed", error=repr(exc))
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _on_notice(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = _notice.decode(payload)
        except msgspec.DecodeError:
            log.error("bad_notification_notice", payload=payload[:200])
            return
        # Most notices are for users connected elsewhere: a dict lookup, nothing more.
        if notice.user_id not in self._gateway.sessions:
            return
        self._pending.append(notice.id)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Load what arrived since the last flush in one query per MAX_LOAD and deliver it."""
        await asyncio.sleep(0)  # let the rest of a burst of notices queue up first
        while self._pending:
            ids, self._pending = self._pending[:MAX_LOAD], self._pending[MAX_LOAD:]
            try:
                rows = await self._gateway.pool.fetch(_LOAD, ids)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.error("notification_load_failed", error=repr(exc), count=len(ids))
                continue
            for row in rows:
                self._deliver(row)

    def _deliver(self, row: asyncpg.Record) -> None:
        channel = f"user:{row['user_id']}"
        frame = Notification(
            channel=channel,
            id=str(row["id"]),
            notification_type=row["notification_type"],
            title=row["title"],
            message=row["message"],
            action_url=row["action_url"],
            priority=row["priority"],
            created_at=row["created_at"].isoformat(),
        )
        # The same path as a frame from the bus: the hub writes it to the user's sockets
        # here (JSON or msgpack), coalesced with anything else due this loop iteration.
        self._gateway.hub.on_bus(channel, 0, time.time(), json_encoder.encode(frame))
        self.delivered += 1
