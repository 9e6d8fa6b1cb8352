"""In-app delivery of every realm's inbox (kernel/inbox.py): LISTEN sb_notification (one NOTIFY
per new notification) and sb_notification_read (one per realm and user whose notifications
were marked read), both naming the realm, and write `notification` frames and
`notifications_read` events to the user stream of that realm's user (`user:<id>` in the
analyst realm, `<realm>.user:<id>` in others) when they have sockets here; on connect, the
unread count and the newest unread notifications.

Every gateway process listens and serves only its own sockets, so each socket gets each
frame once however many processes there are; going through Redis as well would deliver it
once per process that has the user. A NOTIFY missed while the listener reconnects is covered
by what a client gets on its next connect (the unread count and the missed notifications).
A notice of a realm this process does not serve is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

import asyncpg
import msgspec

from gateway.ports import RelayHost
from gateway.protocol import Event, Notification, json_encoder
from kernel import inbox
from kernel.inbox import Inbox
from kernel.listen import Listener
from kernel.logs import EventLog
from kernel.realms import Realm

log = EventLog("gateway.notifications")

NOTIFICATION_CHANNEL = "sb_notification"
READ_CHANNEL = "sb_notification_read"
MAX_LOAD = 1000  # notifications loaded, or users counted, per query


class _Created(msgspec.Struct, frozen=True):
    realm: str
    user_id: str
    id: str


class _Read(msgspec.Struct, frozen=True):
    realm: str
    user_id: str
    ids: list[str] | None  # None: more than 100 were read at once


_created = msgspec.json.Decoder(_Created)
_read = msgspec.json.Decoder(_Read)

_LOAD = """
SELECT n.id, n.user_id::text AS user_id, n.notification_type, n.title, n.message,
       n.action_url, n.priority, n.created_at
  FROM {table} n
 WHERE n.id = ANY ($1::uuid[]) AND n.send_in_app{realm_match}
 ORDER BY n.created_at, n.id
"""


@functools.cache
def _load_sql(box: Inbox) -> str:
    return _LOAD.format(table=box.table, realm_match=" AND n.realm = $2" if box.shared else "")


def notification_frame(realm: Realm, row: asyncpg.Record, *, missed: bool = False) -> Notification:
    """The `notification` frame of a row of `realm`'s inbox, on its user's stream."""
    return Notification(
        channel=realm.user_stream(str(row["user_id"])),
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
        self._created: dict[str, list[str]] = {}  # realm -> notification ids
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

    async def missed(self, user_id: str, realm: Realm) -> tuple[int, list[Notification]]:
        """What a socket of `realm`'s user gets on connect: the unread count and the newest
        unread notifications (GATEWAY_MISSED_NOTIFICATIONS of them), oldest first."""
        limit = self._gateway.settings.gateway_missed_notifications
        unread, rows = await inbox.missed(self._gateway.pool, user_id, limit, realm)
        return unread, [notification_frame(realm, row, missed=True) for row in rows]

    def _realm(self, name: str) -> Realm | None:
        realms = self._gateway.realms
        return realms.get(name) if name in realms else None

    # --- listening ----------------------------------------------------------------------------

    def _on_created(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = _created.decode(payload)
        except msgspec.DecodeError:
            log.error("bad_notification_notice", payload=payload[:200])
            return
        realm = self._realm(notice.realm)
        # Most notices are for users connected elsewhere: a dict lookup, nothing more.
        if realm is not None and realm.user_stream(notice.user_id) in self._gateway.sessions:
            self._created.setdefault(realm.name, []).append(notice.id)
            self._schedule_flush()

    def _on_read(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = _read.decode(payload)
        except msgspec.DecodeError:
            log.error("bad_read_notice", payload=payload[:200])
            return
        realm = self._realm(notice.realm)
        if realm is not None and realm.user_stream(notice.user_id) in self._gateway.sessions:
            self._read.append(notice)
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Deliver what arrived since the last flush: new notifications (one query per realm
        and MAX_LOAD), then read changes with each user's unread count as it is now (so a
        notification read at once is shown, then shown read)."""
        await asyncio.sleep(0)  # let the rest of a burst of notices queue up first
        while self._created or self._read:
            while self._created:
                name, ids = next(iter(self._created.items()))
                batch, rest = ids[:MAX_LOAD], ids[MAX_LOAD:]
                if rest:
                    self._created[name] = rest
                else:
                    del self._created[name]
                await self._load(name, batch)
            if self._read:
                reads, self._read = self._read[:MAX_LOAD], self._read[MAX_LOAD:]
                by_realm: dict[str, list[_Read]] = {}
                for read in reads:
                    by_realm.setdefault(read.realm, []).append(read)
                for name, group in by_realm.items():
                    await self._tell_read(name, group)

    async def _load(self, name: str, ids: list[str]) -> None:
        realm = self._realm(name)
        if realm is None:
            return
        box = inbox.inbox_of(realm)
        args: list[object] = [ids, name] if box.shared else [ids]
        try:
            rows = await self._gateway.pool.fetch(_load_sql(box), *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.error("notification_load_failed", error=repr(exc), count=len(ids), realm=name)
            return
        for row in rows:
            self._deliver(notification_frame(realm, row))
            self.delivered += 1

    async def _tell_read(self, name: str, reads: list[_Read]) -> None:
        realm = self._realm(name)
        if realm is None:
            return
        users = list({r.user_id for r in reads})
        try:
            counts = await inbox.unread_counts(self._gateway.pool, users, realm)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            log.error("unread_count_failed", error=repr(exc), count=len(users), realm=name)
            return
        for read in reads:
            unread = counts.get(inbox.user_key(realm, read.user_id), 0)
            self._deliver(
                Event(
                    channel=realm.user_stream(read.user_id),
                    kind="notifications_read",
                    ids=read.ids,
                    unread=unread,
                )
            )

    def _deliver(self, frame: Notification | Event) -> None:
        # The same path as a frame from the bus: the hub writes it to the user's sockets
        # here (JSON or msgpack), coalesced with anything else due this loop iteration.
        self._gateway.hub.on_bus(frame.channel, 0, time.time(), json_encoder.encode(frame))
