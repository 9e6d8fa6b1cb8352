"""In-app delivery of the inbox in kernel/inbox.py (the analyst realm's, whose users'
streams are `user:<id>`): LISTEN sb_notification (one NOTIFY per new notification) and
sb_notification_read (one per user whose notifications were marked read), and write
`notification` frames and `notifications_read` events to the `user:<id>` stream of users
with sockets here; on connect, the unread count and the newest unread notifications.

Every gateway process listens and serves only its own sockets, so each socket gets each
frame once however many processes there are; going through Redis as well would deliver it
once per process that has the user. A NOTIFY missed while the listener reconnects is covered
by what a client gets on its next connect (the unread count and the missed notifications).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import asyncpg
import msgspec

from gateway.ports import RelayHost
from gateway.protocol import Event, Notification, json_encoder
from kernel import inbox
from kernel.listen import Listener
from kernel.logs import EventLog

log = EventLog("gateway.notifications")

NOTIFICATION_CHANNEL = "sb_notification"
READ_CHANNEL = "sb_notification_read"
MAX_LOAD = 1000  # notifications loaded, or users counted, per query


class _Created(msgspec.Struct, frozen=True):
    user_id: str
    id: str


class _Read(msgspec.Struct, frozen=True):
    user_id: str
    ids: list[str] | None  # None: more than 100 were read at once


_created = msgspec.json.Decoder(_Created)
_read = msgspec.json.Decoder(_Read)

_LOAD = """
SELECT id, user_id, notification_type, title, message, action_url, priority, created_at
  FROM analyst.notifications
 WHERE id = ANY ($1::uuid[]) AND send_in_app
 ORDER BY created_at, id
"""


def notification_frame(row: asyncpg.Record, *, missed: bool = False) -> Notification:
    """The `notification` frame of an analyst.notifications row."""
    return Notification(
        channel=f"user:{row['user_id']}",
        id=str(row["id"]),
        notification_type=row["notification_type"],
        title=row["title"],
        message=row["message"],
        action_url=row["action_url"],
        priority=row["priority"],
        created_at=row["created_at"].isoformat(),
        missed=missed,
    )


class NotificationRelay:
    """Hears new and read notifications and tells local sockets. `attach()`, then `close()`."""

    def __init__(self, gateway: RelayHost) -> None:
        self._gateway = gateway
        self._created: list[str] = []
        self._read: list[_Read] = []
        self._flushing: asyncio.Task[None] | None = None
        self.delivered = 0

    def attach(self, listener: Listener) -> None:
        """Hear new and read notifications on the process's shared listener. A NOTIFY missed
        while it reconnects is covered by what a client gets on its next connect."""
        listener.on(NOTIFICATION_CHANNEL, self._on_created)
        listener.on(READ_CHANNEL, self._on_read)

    async def close(self) -> None:
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing

    async def missed(self, user_id: str) -> tuple[int, list[Notification]]:
        """What a socket gets on connect: the unread count and the newest unread
        notifications (GATEWAY_MISSED_NOTIFICATIONS of them), oldest first."""
        limit = self._gateway.settings.gateway_missed_notifications
        unread, rows = await inbox.missed(self._gateway.pool, uuid.UUID(user_id), limit)
        return unread, [notification_frame(row, missed=True) for row in rows]

    # --- listening ----------------------------------------------------------------------------

    def _on_created(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = _created.decode(payload)
        except msgspec.DecodeError:
            log.error("bad_notification_notice", payload=payload[:200])
            return
        # Most notices are for users connected elsewhere: a dict lookup, nothing more.
        if f"user:{notice.user_id}" in self._gateway.sessions:
            self._created.append(notice.id)
            self._schedule_flush()

    def _on_read(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = _read.decode(payload)
        except msgspec.DecodeError:
            log.error("bad_read_notice", payload=payload[:200])
            return
        if f"user:{notice.user_id}" in self._gateway.sessions:
            self._read.append(notice)
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Deliver what arrived since the last flush: new notifications (one query per
        MAX_LOAD), then read changes with each user's unread count as it is now (so a
        notification read at once is shown, then shown read)."""
        await asyncio.sleep(0)  # let the rest of a burst of notices queue up first
        while self._created or self._read:
            while self._created:
                ids, self._created = self._created[:MAX_LOAD], self._created[MAX_LOAD:]
                try:
                    rows = await self._gateway.pool.fetch(_LOAD, ids)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.error("notification_load_failed", error=repr(exc), count=len(ids))
                    continue
                for row in rows:
                    self._deliver(notification_frame(row))
                    self.delivered += 1
            if self._read:
                reads, self._read = self._read[:MAX_LOAD], self._read[MAX_LOAD:]
                users = list({uuid.UUID(r.user_id) for r in reads})
                try:
                    counts = await inbox.unread_counts(self._gateway.pool, users)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.error("unread_count_failed", error=repr(exc), count=len(users))
                    continue
                for read in reads:
                    channel = f"user:{read.user_id}"
                    unread = counts.get(uuid.UUID(read.user_id), 0)
                    self._deliver(
                        Event(
                            channel=channel, kind="notifications_read", ids=read.ids, unread=unread
                        )
                    )

    def _deliver(self, frame: Notification | Event) -> None:
        # The same path as a frame from the bus: the hub writes it to the user's sockets
        # here (JSON or msgpack), coalesced with anything else due this loop iteration.
        self._gateway.hub.on_bus(frame.channel, 0, time.time(), json_encoder.encode(frame))
