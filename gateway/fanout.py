"""Local fan-out: which sockets of this process are in which channel, and delivery to them.

A server-to-client WebSocket frame is not masked, so a message's frame is built once and
the same bytes are written to every recipient's transport. Sequenced channels deliver in
`seq` order with no gap and no duplicate: out-of-order arrivals wait in a reorder buffer,
and a gap that does not close quickly is filled from the database. A socket joining with
`since` is caught up from history while live messages are held for it, then switched live.
A socket whose write buffer passes the limit is closed as a slow consumer.

Writes are coalesced: the frames a room receives during one event-loop iteration (a whole
group-commit batch, say) are joined and written to each socket with one call, because the
write system call, not Python, is what a large fan-out spends its time on.

The bus may lose messages (Redis restarted, a publish dropped or timed out): when it says
so, `request_resync` catches every sequenced room up from the database, in order, with
nothing delivered twice (docs/protocol.md §14).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.protocol import State

from gateway.protocol import json_to_msgpack
from kernel.conversation import SequenceSource
from kernel.logs import EventLog

log = EventLog("gateway.fanout")

CLOSE_SLOW_CONSUMER = 4008


def ws_frame(payload: bytes, binary: bool) -> bytes:
    """One unmasked, unfragmented server frame (RFC 6455 section 5.2) carrying `payload`."""
    first = 0x82 if binary else 0x81
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


class Client:
    """One authenticated socket as fan-out sees it. `on_slow` is called once if it lags.
    `rooms` names the rooms it is in (live or catching up), kept by the Hub, so that a socket's
    close leaves its own rooms rather than searching every room of the process."""

    __slots__ = (
        "__weakref__",
        "binary",
        "dead",
        "on_slow",
        "protocol",
        "rooms",
        "transport",
        "user_id",
    )

    def __init__(
        self, transport: Any, protocol: Any, binary: bool, user_id: str, on_slow: Callable[[], None]
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        self.binary = binary
        self.user_id = user_id
        self.on_slow = on_slow
        self.dead = False
        self.rooms: list[str] = []  # a socket is in few rooms: a list is smaller than a set

    def write_payload(self, payload_json: bytes, payload_msgpack: bytes | None = None) -> None:
        """Write one message (given in JSON, re-encoded when this socket speaks msgpack)."""
        if self.binary:
            self.write_frame(ws_frame(payload_msgpack or json_to_msgpack(payload_json), True))
        else:
            self.write_frame(ws_frame(payload_json, False))

    def write_frame(self, frame: bytes) -> None:
        if self.dead or self.protocol.state is not State.OPEN:
            return
        self.transport.write(frame)


def _enter(client: Client, channel: str) -> None:
    if channel not in client.rooms:
        client.rooms.append(channel)


def _exit(client: Client, channel: str) -> None:
    if channel in client.rooms:
        client.rooms.remove(channel)


class _Room:
    __slots__ = (
        "catching_up",
        "delivered",
        "gap_task",
        "json",
        "msgpack",
        "name",
        "outbox",
        "outbox_sent_at",
        "pending",
        "ready",
        "sequenced",
    )

    def __init__(self, name: str, sequenced: bool) -> None:
        self.name = name
        self.sequenced = sequenced
        self.json: dict[Client, None] = {}
        self.msgpack: dict[Client, None] = {}
        self.catching_up: dict[Client, list[tuple[int, bytes]]] = {}
        self.delivered = 0
        self.pending: dict[int, bytes] = {}
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gap_task: asyncio.Task[None] | None = None
        self.outbox: list[bytes] = []  # JSON payloads to write at the end of this iteration
        self.outbox_sent_at: list[float] = []

    def __len__(self) -> int:
        return len(self.json) + len(self.msgpack) + len(self.catching_up)


class Hub:
    """This process's rooms. The bus calls `on_bus`; sessions call `join`, `leave`, `drop`."""

    RESUME_LIMIT = 1000
    GAP_WAIT_S = 0.25

    def __init__(
        self,
        *,
        subscribe: Callable[[str], Awaitable[None]],
        unsubscribe: Callable[[str], Awaitable[None]],
        source_for: Callable[[str], SequenceSource | None],
        slow_limit_bytes: int = 1 << 20,
        on_delivered: Callable[[int, float], None] | None = None,
    ) -> None:
        self._rooms: dict[str, _Room] = {}
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self._source_for = source_for
        self.slow_limit = slow_limit_bytes
        self._on_delivered = on_delivered or (lambda _n, _t: None)
        self._resync_task: asyncio.Task[None] | None = None
        self._resync_again = False

    def members(self, channel: str) -> int:
        room = self._rooms.get(channel)
        return len(room) if room else 0

    def rooms_of(self, client: Client) -> list[str]:
        return list(client.rooms)

    async def _room(self, channel: str) -> _Room:
        room = self._rooms.get(channel)
        if room is None:
            source = self._source_for(channel)
            room = self._rooms[channel] = _Room(channel, sequenced=source is not None)
            try:
                await self._subscribe(channel)
                if source is not None:
                    # Subscribed first, so nothing committed after this read is missed.
                    room.delivered = await source.last_seq(channel)
                    stale = [s for s in room.pending if s <= room.delivered]
                    for s in stale:
                        del room.pending[s]
                room.ready.set_result(None)
                self._drain_in_order(room)
            except BaseException as exc:
                self._rooms.pop(channel, None)
                room.ready.set_exception(exc)
                raise
        else:
            await asyncio.shield(room.ready)
        return room

    async def join(self, client: Client, channel: str, since: int | None) -> tuple[int, bool, int]:
        """Add `client` to `channel`; replay what it missed after `since` first.

        Returns (replayed, recovered, last_seq). When more than RESUME_LIMIT messages were
        missed nothing is replayed and recovered is False: the client must page `history`.
        The caller writes its ack right after this returns (before the next live message).
        """
        room = await self._room(channel)
        if since is None or not room.sequenced:
            self._add_live(room, client)
            return 0, True, room.delivered
        source = self._source_for(channel)
        assert source is not None
        room.catching_up[client] = []
        _enter(client, channel)
        try:
            rows = await source.after(channel, since, self.RESUME_LIMIT + 1)
        except BaseException:
            if room.catching_up.pop(client, None) is not None:
                _exit(client, channel)
            raise
        held = room.catching_up.pop(client, None)
        if held is None:  # dropped (closed, slow) while we were reading
            return 0, False, room.delivered
        recovered = len(rows) <= self.RESUME_LIMIT
        last = since
        replayed = 0
        if recovered:
            for seq, payload in rows:
                # Past what this room delivered, a row is still on its way here: it will
                # arrive live, so replaying it too would send it twice.
                if seq > room.delivered:
                    break
                client.write_payload(payload)
                last = seq
                replayed += 1
        else:
            last = room.delivered
        for seq, payload in held:
            if seq > last:
                client.write_payload(payload)
                last = seq
        self._add_live(room, client)
        return replayed, recovered, room.delivered

    def _add_live(self, room: _Room, client: Client) -> None:
        # What is queued was already held for (or replayed to) this client: send it to the
        # others first, so the newcomer does not get it twice.
        if room.outbox:
            self._flush(room)
        (room.msgpack if client.binary else room.json)[client] = None
        _enter(client, room.name)

    async def leave(self, client: Client, channel: str) -> bool:
        room = self._rooms.get(channel)
        if room is None:
            return False
        found = (
            room.json.pop(client, 0) is None
            or room.msgpack.pop(client, 0) is None
            or room.catching_up.pop(client, None) is not None
        )
        if found:
            _exit(client, channel)
        if not room:
            await self._close_room(room)
        return found

    async def drop(self, client: Client) -> list[str]:
        """Remove `client` from every room; returns the channels it was in."""
        channels = self.rooms_of(client)
        for channel in channels:
            await self.leave(client, channel)
        return channels

    async def _close_room(self, room: _Room) -> None:
        if self._rooms.get(room.name) is room:
            del self._rooms[room.name]
            if room.gap_task is not None:
                room.gap_task.cancel()
            try:
                await self._unsubscribe(room.name)
            except Exception as exc:  # the room is gone here whatever the bus says
                log.error("unsubscribe_failed", channel=room.name, error=repr(exc))

    # --- delivery ---------------------------------------------------------------------------

    def on_bus(self, channel: str, seq: int, sent_at: float, payload: bytes) -> None:
        room = self._rooms.get(channel)
        if room is None:
            return
        if seq == 0 or not room.sequenced:
            self._deliver(room, seq, payload, sent_at)
            return
        if not room.ready.done():
            room.pending[seq] = payload
            return
        if seq <= room.delivered:
            return
        if seq == room.delivered + 1:
            room.delivered = seq
            self._deliver(room, seq, payload, sent_at)
            self._drain_in_order(room)
            return
        room.pending[seq] = payload
        if room.gap_task is None or room.gap_task.done():
            room.gap_task = asyncio.create_task(self._fill_gap(room))

    def _drain_in_order(self, room: _Room) -> None:
        if not room.pending:
            return
        # What a catch-up from the database delivered meanwhile is not pending any more.
        for seq in [s for s in room.pending if s <= room.delivered]:
            del room.pending[seq]
        while room.pending:
            payload = room.pending.pop(room.delivered + 1, None)
            if payload is None:
                break
            room.delivered += 1
            self._deliver(room, room.delivered, payload, time.time())

    async def _fill_gap(self, room: _Room) -> None:
        await asyncio.sleep(self.GAP_WAIT_S)  # the missing publish usually lands meanwhile
        source = self._source_for(room.name)
        while room.pending and source is not None and self._rooms.get(room.name) is room:
            want = min(room.pending) - room.delivered - 1
            if want <= 0:
                self._drain_in_order(room)
                continue
            rows = await source.after(room.name, room.delivered, want)
            if not rows:
                log.warning("gap_unfilled", channel=room.name, after=room.delivered)
                return
            for seq, payload in rows:
                if seq == room.delivered + 1:
                    room.delivered = seq
                    self._deliver(room, seq, payload, time.time())
            self._drain_in_order(room)

    # --- catching up after the bus lost messages -----------------------------------------------

    RESYNC_PAGE = 500

    def request_resync(self) -> None:
        """Catch every sequenced room up from the database (the bus may have lost messages).
        Requests made while one runs are folded into one more run after it."""
        if self._resync_task is not None and not self._resync_task.done():
            self._resync_again = True
            return
        self._resync_task = asyncio.get_running_loop().create_task(
            self._resync(), name="hub-resync"
        )

    async def _resync(self) -> None:
        while True:
            self._resync_again = False
            failed: list[str] = []
            error: BaseException | None = None
            for room in list(self._rooms.values()):
                if not room.sequenced or not room.ready.done():
                    continue
                try:
                    await self._catch_up(room)
                except Exception as exc:  # the database is away too: the next run retries
                    failed.append(room.name)
                    error = exc
            if failed:
                log.warning("resync_failed", rooms=len(failed), error=repr(error))
            if not self._resync_again:
                return

    async def _catch_up(self, room: _Room) -> None:
        source = self._source_for(room.name)
        while source is not None and self._rooms.get(room.name) is room:
            rows = await source.after(room.name, room.delivered, self.RESYNC_PAGE)
            caught = 0
            for seq, payload in rows:
                if seq == room.delivered + 1:  # skip what arrived live meanwhile
                    room.delivered = seq
                    self._deliver(room, seq, payload, time.time())
                    caught += 1
            self._drain_in_order(room)
            if caught:
                log.info("room_caught_up", channel=room.name, messages=caught)
            if len(rows) < self.RESYNC_PAGE or not caught:
                return

    def _deliver(self, room: _Room, seq: int, payload: bytes, sent_at: float) -> None:
        for held in room.catching_up.values():
            held.append((seq, payload))
        if not room.outbox:
            asyncio.get_running_loop().call_soon(self._flush, room)
        room.outbox.append(payload)
        room.outbox_sent_at.append(sent_at)

    def _flush(self, room: _Room) -> None:
        """Write the room's queued frames to every live member, one write per socket."""
        payloads, sent = room.outbox, room.outbox_sent_at
        if not payloads:
            return
        room.outbox, room.outbox_sent_at = [], []
        slow: list[Client] = []
        limit = self.slow_limit
        if room.json:
            frames = b"".join([ws_frame(payload, False) for payload in payloads])
            for client in room.json:
                transport = client.transport
                if client.protocol.state is State.OPEN:
                    transport.write(frames)
                    if transport.get_write_buffer_size() > limit:
                        slow.append(client)
        if room.msgpack:
            frames = b"".join([ws_frame(json_to_msgpack(payload), True) for payload in payloads])
            for client in room.msgpack:
                transport = client.transport
                if client.protocol.state is State.OPEN:
                    transport.write(frames)
                    if transport.get_write_buffer_size() > limit:
                        slow.append(client)
        recipients = len(room.json) + len(room.msgpack)
        for sent_at in sent:
            self._on_delivered(recipients, sent_at)
        for client in slow:
            if not client.dead:
                client.dead = True
                client.on_slow()
