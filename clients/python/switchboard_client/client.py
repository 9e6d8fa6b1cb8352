"""SwitchboardClient: the gateway protocol (docs/protocol.md) on asyncio and `websockets`.

One client keeps one logical session alive over as many sockets as it takes: it
authenticates with a token (or a token provider, also used to refresh before expiry and on
every reconnect), reconnects with jittered exponential backoff, rejoins every joined
channel with `since` = the last seq it delivered, drops messages it already delivered
(dedupe by seq), fills a hole with `history` when the server could not replay it, resolves
each `send` on its ack and resends unacknowledged sends after a reconnect with the same
`client_id`.

Frame handling is synchronous (one reader task per socket, one writer task); awaiting is
left to the callers' futures and to coroutine callbacks, which run one at a time, in order,
on a dispatcher task of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

log = logging.getLogger("switchboard_client")

JSON_SUBPROTOCOL = "switchboard.v1.json"
MSGPACK_SUBPROTOCOL = "switchboard.v1.msgpack"

Frame = dict[str, Any]
TokenProvider = Callable[[], "str | Awaitable[str]"]
Callback = Callable[[Any], Any]
State = Literal["idle", "connecting", "connected", "reconnecting", "closed"]
EVENTS = (
    "message",
    "event",
    "notification",
    "state",
    "unread",
    "welcome",
    "rejoin",
    "reset",
    "gap",
    "error",
)
# Ops retried on the next socket when the socket is lost before their reply.
RETRIED = frozenset({"join", "send", "history", "read", "presence", "read_notifications", "ping"})
REALMS = ("analyst", "academy", "aichat", "creator", "market")


class SwitchboardError(Exception):
    """A refusal by the server (an `error` frame) or by the client (`closed`, `unauthorized`)."""

    def __init__(self, code: str, message: str = "", frame: Frame | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message or code
        self.frame = frame
        self.retry_after_ms: int | None = frame.get("retry_after_ms") if frame else None
        self.channel: str | None = None


@dataclass
class Backoff:
    """Delay before reconnect attempt n: min(max, initial * factor**n), less up to `jitter`."""

    initial: float = 0.25
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * self.factor**attempt)
        return base * (1 - self.jitter * random.random())


@dataclass
class ChannelName:
    namespace: str
    key: str
    realm: str | None


def parse_channel(channel: str) -> ChannelName:
    """`community:<id>` -> ChannelName('community', '<id>', None); `academy.user:<id>` names a
    realm."""
    namespace, _, key = channel.partition(":")
    head = namespace.split(".", 1)[0]
    return ChannelName(namespace, key, head if "." in namespace and head in REALMS else None)


@dataclass
class _Channel:
    sequenced: bool
    joined: bool = False
    ever_joined: bool = False
    role: str | None = None
    last_seq: int | None = None
    read_seq: int | None = None
    unread_seqs: list[int] = field(default_factory=list)
    filling: bool = False
    buffer: list[Frame] = field(default_factory=list)


@dataclass(eq=False)
class _Op:
    frame: Frame
    future: asyncio.Future[Any]
    internal: bool = False
    ws: ClientConnection | None = None
    unavailable: int = 0
    sent_since: int | None = None
    rejoin: bool = False


def _msgpack_codec() -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    try:
        import msgspec

        return msgspec.msgpack.encode, msgspec.msgpack.decode
    except ImportError:
        pass
    try:
        import msgpack  # type: ignore[import-not-found,unused-ignore]

        def dec(data: bytes) -> Any:
            return msgpack.unpackb(data, raw=False)

        return msgpack.packb, dec
    except ImportError:
        raise RuntimeError(
            "format='msgpack' needs msgspec or msgpack: pip install 'switchboard-client[msgpack]'"
        ) from None


class SwitchboardClient:
    """A reconnecting, resuming client of the Switchboard gateway.

    `token` is an access token, or a callable (plain or async) returning one; with a
    callable the client refreshes the token at `refresh_ratio` of its lifetime and asks for a
    new one on every reconnect.
    """

    def __init__(
        self,
        url: str,
        token: str | TokenProvider,
        *,
        format: Literal["json", "msgpack"] = "json",
        auth: Literal["frame", "query"] = "frame",
        refresh_ratio: float = 0.8,
        backoff: Backoff | None = None,
        max_auth_failures: int = 3,
        max_unavailable_retries: int = 10,
        fill_gaps: bool = True,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
    ) -> None:
        self.url = url
        self._token_source = token
        self.format = format
        self.auth = auth
        self.refresh_ratio = refresh_ratio
        self.backoff = backoff or Backoff()
        self.max_auth_failures = max_auth_failures
        self.max_unavailable_retries = max_unavailable_retries
        self.fill_gaps = fill_gaps
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._msgpack = _msgpack_codec() if format == "msgpack" else None

        self.welcome: Frame | None = None
        self.user_id: str | None = None
        self.session_id: str | None = None
        self.user_stream: str | None = None
        self.expires_at: int | None = None
        self.clock_skew_ms = 0

        self._state: State = "idle"
        self._listeners: dict[str, list[Callback]] = {}
        self._ws: ClientConnection | None = None
        self._welcomed = False
        self._outbox: asyncio.Queue[str | bytes] | None = None
        self._ref = 0
        self._attempt = 0
        self._auth_failures = 0
        self._last_auth_error: SwitchboardError | None = None
        self._ops: list[_Op] = []
        self._inflight: dict[int, _Op] = {}
        self._channels: dict[str, _Channel] = {}
        self._connected: asyncio.Future[Frame] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._refresh_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dispatch: asyncio.Queue[tuple[Callback, Any]] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._seen_notifications: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._notifications_unread = 0
        self._closing = asyncio.Event()

    # --- public state -----------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def notifications_unread(self) -> int:
        return self._notifications_unread

    @property
    def channels(self) -> list[str]:
        return list(self._channels)

    def last_seq(self, channel: str) -> int | None:
        ch = self._channels.get(channel)
        return ch.last_seq if ch else None

    def unread(self, channel: str) -> int:
        ch = self._channels.get(channel)
        return len(ch.unread_seqs) if ch else 0

    def role(self, channel: str) -> str | None:
        ch = self._channels.get(channel)
        return ch.role if ch else None

    def on(self, event: str, callback: Callback) -> Callable[[], None]:
        """Call `callback(payload)` on each `event` (see EVENTS); returns an unsubscriber.

        Plain callbacks run at once, in the reader. Coroutine callbacks are awaited one at a
        time, in order, on a dispatcher task, so they may await the client's own requests.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r} (known: {', '.join(EVENTS)})")
        self._listeners.setdefault(event, []).append(callback)
        return lambda: self.off(event, callback)

    def off(self, event: str, callback: Callback) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.get(event, []).remove(callback)

    def _emit(self, event: str, payload: Any) -> None:
        for cb in list(self._listeners.get(event, ())):
            if inspect.iscoroutinefunction(cb):
                self._dispatch_later(cb, payload)
                continue
            try:
                result = cb(payload)
            except Exception:
                log.exception("switchboard_client: %s callback failed", event)
                continue
            if inspect.isawaitable(result):
                self._spawn(_awaited(result))

    def _dispatch_later(self, cb: Callback, payload: Any) -> None:
        if self._dispatch is None:
            self._dispatch = asyncio.Queue()
            self._dispatcher = asyncio.get_running_loop().create_task(self._run_dispatch())
        self._dispatch.put_nowait((cb, payload))

    async def _run_dispatch(self) -> None:
        assert self._dispatch is not None
        while True:
            cb, payload = await self._dispatch.get()
            try:
                await cb(payload)
            except Exception:
                log.exception("switchboard_client: callback failed")
            if self._state == "closed":
                return  # closed by this very callback (close() cannot cancel this task)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- lifecycle --------------------------------------------------------------------------

    async def connect(self) -> Frame:
        """Start (once) and wait for the first welcome and the user stream's join; raises
        SwitchboardError if the client closes first (a refused static token: `unauthorized`)."""
        if self._state == "closed":
            raise SwitchboardError("closed", "client is closed")
        if self._state == "connected" and self.welcome is not None:
            return self.welcome
        if self._connected is None or self._connected.done():
            self._connected = asyncio.get_running_loop().create_future()
        waiter = self._connected
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())
        return await asyncio.shield(waiter)

    async def close(self) -> None:
        """Close for good: pending requests fail with code `closed`."""
        if self._state == "closed":
            return
        self._closing.set()
        self._set_state("closed", code=1000)
        self._cancel_refresh()
        ws = self._ws
        self._ws = None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close(1000, "client closed")
        if self._runner is not None and self._runner is not asyncio.current_task():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        self._fail_all(SwitchboardError("closed", "client is closed"))
        for task in list(self._tasks):
            task.cancel()
        if self._dispatcher is not None and self._dispatcher is not asyncio.current_task():
            self._dispatcher.cancel()  # (closed from a coroutine callback: it ends with it)
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher

    async def __aenter__(self) -> SwitchboardClient:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _set_state(self, state: State, **detail: Any) -> None:
        previous = self._state
        self._state = state
        self._emit("state", {"state": state, "previous": previous, **detail})

    def _fail_all(self, error: SwitchboardError) -> None:
        ops, self._ops = self._ops, []
        self._inflight.clear()
        for op in ops:
            if not op.future.done():
                op.future.set_exception(error)
                op.future.exception()  # retrieved: an unawaited op does not warn
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(error)
            self._connected.exception()

    async def _token(self) -> str:
        source = self._token_source
        if callable(source):
            value = source()
            return await value if inspect.isawaitable(value) else value
        return source

    async def _run(self) -> None:
        """Connect, read until the socket is lost, back off, connect again; until closed."""
        while not self._closing.is_set():
            self._set_state("connecting", attempt=self._attempt)
            code: int | None = None
            reason = ""
            try:
                token = await self._token()
            except Exception as exc:
                self._emit("error", exc)
                await self._back_off(None, "token provider failed")
                continue
            url = self.url
            if self.auth == "query":
                url += ("&" if "?" in url else "?") + "token=" + quote(token, safe="")
            protocols = [Subprotocol(JSON_SUBPROTOCOL)]
            if self._msgpack is not None:
                protocols.insert(0, Subprotocol(MSGPACK_SUBPROTOCOL))
            try:
                async with connect(
                    url,
                    subprotocols=protocols,
                    compression=None,
                    open_timeout=self.open_timeout,
                    ping_interval=self.ping_interval,
                    ping_timeout=self.ping_timeout,
                    max_size=1 << 20,
                ) as ws:
                    await self._serve(ws, token)
                    code, reason = ws.close_code, ws.close_reason or ""
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                reason = str(exc)  # refused, unreachable, or the handshake failed: retry
            except InvalidURI:
                raise
            except Exception as exc:
                log.warning("switchboard_client: connection failed: %r", exc)
                reason = repr(exc)
            if self._closing.is_set():
                return
            if not self._lost(code, reason):
                return
            await self._back_off(code, reason)

    async def _back_off(self, code: int | None, reason: str) -> None:
        delay = self.backoff.delay(self._attempt)
        self._set_state(
            "reconnecting", code=code, reason=reason, attempt=self._attempt, delay=delay
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)

    async def _serve(self, ws: ClientConnection, token: str) -> None:
        self._ws = ws
        self._welcomed = False
        self._last_auth_error = None
        outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._outbox = outbox
        writer = asyncio.get_running_loop().create_task(self._write_loop(ws, outbox))
        try:
            if self.auth == "frame":
                self._write({"op": "auth", "token": token})
            async for data in ws:
                try:
                    frame = self._decode(data)
                except ValueError as exc:
                    self._emit("error", exc)
                    continue
                try:
                    self._on_frame(frame)
                except Exception:
                    log.exception("switchboard_client: could not handle %r", frame)
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _write_loop(self, ws: ClientConnection, outbox: asyncio.Queue[str | bytes]) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send(await outbox.get())

    def _decode(self, data: str | bytes) -> Frame:
        if isinstance(data, str):
            frame = json.loads(data)
        elif self._msgpack is not None:
            frame = self._msgpack[1](data)
        else:
            frame = _msgpack_codec()[1](data)
        if not isinstance(frame, dict):
            raise ValueError("a frame is not an object")
        return frame

    def _write(self, frame: Frame) -> None:
        ws, outbox = self._ws, self._outbox
        if ws is None or outbox is None:
            return
        if ws.subprotocol == MSGPACK_SUBPROTOCOL and self._msgpack is not None:
            outbox.put_nowait(self._msgpack[0](frame))
        else:
            outbox.put_nowait(json.dumps(frame, separators=(",", ":"), ensure_ascii=False))

    def _lost(self, code: int | None, reason: str) -> bool:
        """The socket is gone; True to reconnect, False when the client has given up."""
        self._ws = None
        self._outbox = None
        self._cancel_refresh()
        for op in self._inflight.values():
            op.ws = None
            if op.frame["op"] not in RETRIED:
                self._settle(op, None)
        self._inflight.clear()
        for ch in self._channels.values():
            ch.joined = False
        welcomed, self._welcomed = self._welcomed, False
        if code == 4001:
            self._auth_failures += 1
            error = self._last_auth_error or SwitchboardError("unauthorized", reason)
            if not callable(self._token_source) or self._auth_failures >= self.max_auth_failures:
                self._emit("error", error)
                self._closing.set()
                self._set_state("closed", code=code, reason=reason)
                self._fail_all(error)
                return False
        if not welcomed:
            self._attempt += 1
        return True

    # --- frames from the server -------------------------------------------------------------

    def _on_frame(self, f: Frame) -> None:
        op = f.get("op")
        if op == "welcome":
            self._on_welcome(f)
        elif op in ("ok", "error", "pong"):
            self._on_reply(f)
        elif op == "msg":
            self._on_msg(f)
        elif op == "event":
            self._on_event(f)
        elif op == "notification":
            self._on_notification(f)

    def _on_welcome(self, f: Frame) -> None:
        self.welcome = f
        self.user_id = f["user_id"]
        self.session_id = f["session_id"]
        self.expires_at = f["expires_at"]
        self.clock_skew_ms = int(f["server_time"] - time.time() * 1000)
        self._welcomed = True
        self._attempt = 0
        self._auth_failures = 0
        self._set_state("connected", session_id=f["session_id"])
        self._emit("welcome", f)
        self._schedule_refresh()
        self._flush()

    def _flush(self) -> None:
        """After a welcome: rejoin channels (with since), then (re)send every pending request."""
        pending_joins = {op.frame["channel"] for op in self._ops if op.frame["op"] == "join"}
        for name in list(self._channels):
            if name not in pending_joins:  # sent at once: before any pending send
                rejoin = self._request({"op": "join", "channel": name}, internal=True)
                rejoin.add_done_callback(_consume)
        joins = [op for op in self._ops if op.frame["op"] == "join"]
        rest = [op for op in self._ops if op.frame["op"] != "join"]
        for op in joins + rest:
            if op.ws is None:
                self._transmit(op)

    def _on_reply(self, f: Frame) -> None:
        ref = f.get("ref")
        if ref is None:
            if f["op"] == "ok" and f.get("role") == "self":
                # The automatic join of the user stream completes the connection handshake.
                self.user_stream = f.get("channel")
                self._set_notifications_unread(f.get("unread") or 0)
                if self._connected is not None and not self._connected.done():
                    assert self.welcome is not None
                    self._connected.set_result(self.welcome)
            elif f["op"] == "error":
                error = SwitchboardError(f.get("code", "internal"), f.get("message", ""), f)
                if not self._welcomed and error.code == "unauthorized":
                    self._last_auth_error = error  # close 4001 follows
                else:
                    self._emit("error", error)
            return
        op = self._inflight.pop(ref, None)
        if op is None:
            return
        op.ws = None
        kind = op.frame["op"]
        if f["op"] == "error":
            error = SwitchboardError(f.get("code", "internal"), f.get("message", ""), f)
            if (
                error.code == "unavailable"
                and kind in RETRIED
                and op.unavailable < self.max_unavailable_retries
            ):
                # Draining or a storage failure: retry on this socket after a backoff, or on
                # the next socket after the reconnect, whichever comes first.
                op.unavailable += 1
                ws = self._ws
                asyncio.get_running_loop().call_later(
                    self.backoff.delay(op.unavailable), self._retry_unavailable, op, ws
                )
                return
            if kind == "leave" and error.code == "not_found":
                self._settle(op, f)
                return
            if kind == "join":
                self._join_refused(op, error)
            self._settle(op, error=error)
            return
        if kind == "join":
            self._joined(op, f)
        elif kind == "read":
            self._read_up_to(op.frame["channel"], f.get("seq"))
        elif kind == "refresh":
            self.expires_at = f.get("expires_at", self.expires_at)
            self._schedule_refresh()
        elif kind == "read_notifications":
            self._set_notifications_unread(f.get("unread"))
        self._settle(op, f)

    def _retry_unavailable(self, op: _Op, ws: ClientConnection | None) -> None:
        if not op.future.done() and op.ws is None and self._ws is ws and self._welcomed:
            self._transmit(op)

    def _settle(self, op: _Op, value: Any = None, error: BaseException | None = None) -> None:
        with contextlib.suppress(ValueError):
            self._ops.remove(op)
        if op.future.done():
            return
        if error is not None:
            op.future.set_exception(error)
        else:
            op.future.set_result(value)

    def _joined(self, op: _Op, f: Frame) -> None:
        asked = op.frame["channel"]
        ch = self._channels.get(asked)
        if ch is None:
            return  # left meanwhile
        name = f.get("channel") or asked
        if name != asked:  # the server's canonical spelling is the key
            del self._channels[asked]
            self._channels[name] = ch
        ch.joined = True
        ch.role = f.get("role")
        since = op.sent_since
        last_seq = f.get("last_seq")
        if last_seq is not None:
            if since is not None and last_seq < since:
                # The server is behind the client (e.g. a restored database): start over.
                ch.last_seq = ch.read_seq = last_seq
                ch.unread_seqs = []
                self._emit("reset", {"channel": name, "last_seq": last_seq})
            elif since is None:
                ch.last_seq = max(ch.last_seq or 0, last_seq)
            elif (
                f.get("recovered") is False
                and last_seq > (ch.last_seq or 0)
                and not ch.filling
                and ch.last_seq is not None
            ):
                self._gap(name, ch, last_seq)
            if ch.read_seq is None:
                # Unread counts start at the join: what was there before counts as read.
                ch.read_seq = since if since is not None else last_seq
                ch.unread_seqs = [s for s in ch.unread_seqs if s > ch.read_seq]
                self._emit("unread", {"channel": name, "count": len(ch.unread_seqs)})
        if op.internal or op.rejoin:
            self._emit(
                "rejoin",
                {
                    "channel": name,
                    "role": ch.role,
                    "last_seq": last_seq,
                    "replayed": f.get("replayed"),
                    "recovered": f.get("recovered"),
                },
            )

    def _join_refused(self, op: _Op, error: SwitchboardError) -> None:
        name = op.frame["channel"]
        ch = self._channels.get(name)
        if ch is not None and not ch.joined:
            del self._channels[name]
        if op.internal:
            error.channel = name
            self._emit("error", error)

    def _on_msg(self, f: Frame) -> None:
        name = f.get("channel", "")
        ch = self._channels.get(name)
        if ch is None:
            return  # not (or no longer) joined
        seq = f.get("seq")
        if seq is None:  # community.live: nothing to order
            self._emit("message", f)
            return
        if ch.filling:
            ch.buffer.append(f)
            return
        if ch.last_seq is not None and seq <= ch.last_seq:
            return  # already delivered
        if ch.last_seq is not None and seq > ch.last_seq + 1:
            ch.buffer.append(f)
            self._gap(name, ch, seq - 1)
            return
        self._deliver(name, ch, f)

    def _deliver(self, name: str, ch: _Channel, f: Frame) -> None:
        seq: int = f["seq"]
        ch.last_seq = seq
        if f.get("user_id") != self.user_id and (ch.read_seq is None or seq > ch.read_seq):
            ch.unread_seqs.append(seq)
            self._emit("unread", {"channel": name, "count": len(ch.unread_seqs)})
        self._emit("message", f)

    def _gap(self, name: str, ch: _Channel, upto: int) -> None:
        """Messages last_seq+1 .. upto are missing: fetch them with history (or report it)."""
        assert ch.last_seq is not None
        if not self.fill_gaps:
            self._emit("gap", {"channel": name, "from": ch.last_seq + 1, "to": upto})
            ch.last_seq = upto
            self._drain_buffer(ch)
            return
        ch.filling = True
        self._spawn(self._fill(name, ch, upto))

    async def _fill(self, name: str, ch: _Channel, upto: int) -> None:
        try:
            while (ch.last_seq or 0) < upto and self._channels.get(name) is ch:
                page = await self.history(name, after=ch.last_seq, limit=100)
                if not page:
                    break
                for m in page:
                    if m["seq"] > (ch.last_seq or 0):
                        self._deliver(name, ch, m)
        except SwitchboardError as exc:
            self._emit("error", exc)
        finally:
            ch.filling = False
            self._drain_buffer(ch)

    def _drain_buffer(self, ch: _Channel) -> None:
        buffered = sorted(ch.buffer, key=lambda m: m["seq"])
        ch.buffer = []
        for m in buffered:
            self._on_msg(m)

    def _read_up_to(self, channel: str, seq: int | None) -> None:
        ch = self._channels.get(channel)
        if ch is None or seq is None:
            return
        ch.read_seq = max(ch.read_seq or 0, seq)
        ch.unread_seqs = [s for s in ch.unread_seqs if s > ch.read_seq]
        self._emit("unread", {"channel": channel, "count": len(ch.unread_seqs)})

    def _set_notifications_unread(self, n: int | None) -> None:
        if n is None:
            return
        self._notifications_unread = n
        self._emit("unread", {"channel": self.user_stream, "count": n})

    def _on_event(self, f: Frame) -> None:
        kind = f.get("kind")
        if kind == "read" and f.get("user_id") == self.user_id:
            self._read_up_to(f.get("channel", ""), f.get("seq"))
        elif kind == "removed":
            self._channels.pop(f.get("channel", ""), None)
        elif kind == "notifications_read":
            self._set_notifications_unread(f.get("unread"))
        elif kind == "token_expired" and callable(self._token_source):
            self._spawn(self._refresh_quietly())
        self._emit("event", f)

    def _on_notification(self, f: Frame) -> None:
        nid = f.get("id", "")
        if nid in self._seen_notifications:
            return
        self._seen_notifications.add(nid)
        self._seen_order.append(nid)
        if len(self._seen_order) > 5000:
            self._seen_notifications.discard(self._seen_order.popleft())
        if not f.get("missed"):  # missed ones are already in the connect-time `unread`
            self._set_notifications_unread(self._notifications_unread + 1)
        self._emit("notification", f)

    # --- token refresh ----------------------------------------------------------------------

    def _cancel_refresh(self) -> None:
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()
            self._refresh_timer = None

    def _schedule_refresh(self) -> None:
        self._cancel_refresh()
        if not callable(self._token_source) or self.expires_at is None:
            return
        now_ms = time.time() * 1000 + self.clock_skew_ms
        lifetime = self.expires_at * 1000 - now_ms
        delay = max(0.0, lifetime * self.refresh_ratio / 1000)
        self._refresh_timer = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self._refresh_quietly())
        )

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            self._emit("error", exc)

    async def refresh(self) -> Frame | None:
        """Present a new token from the provider on the open socket (done automatically)."""
        if not callable(self._token_source):
            raise SwitchboardError("bad_request", "refresh needs a token provider")
        token = await self._token()
        if not self._welcomed:
            return None  # the next socket authenticates with a fresh token anyway
        result: Frame | None = await self._request({"op": "refresh", "token": token})
        return result

    # --- requests ---------------------------------------------------------------------------

    def _request(self, frame: Frame, *, internal: bool = False) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._state == "closed":
            future.set_exception(SwitchboardError("closed", "client is closed"))
            return future
        op = _Op(frame, future, internal=internal)
        self._ops.append(op)
        if self._ws is not None and self._welcomed:
            self._transmit(op)
        elif frame["op"] not in RETRIED:
            self._settle(op, None)  # typing, leave or refresh while offline: moot
        return future

    def _transmit(self, op: _Op) -> None:
        if self._ws is None or op.future.done():
            return
        self._ref += 1
        frame = {**op.frame, "ref": self._ref}
        if frame["op"] == "join":
            ch = self._channels.get(frame["channel"])
            if ch is None:
                self._settle(op, None)  # left before it was sent
                return
            if ch.last_seq is not None and ch.sequenced:
                frame["since"] = ch.last_seq
            op.sent_since = frame.get("since")
            op.rejoin = ch.ever_joined
            ch.ever_joined = True
        op.ws = self._ws
        self._inflight[self._ref] = op
        self._write(frame)

    async def join(
        self, channel: str, *, since: int | None = None, read_seq: int | None = None
    ) -> Frame:
        """Join a channel; it stays joined across reconnects. `since`: resume after this seq."""
        ch = self._channels.get(channel)
        if ch is None:
            ch = _Channel(sequenced=not parse_channel(channel).namespace.endswith(".live"))
            self._channels[channel] = ch
        if since is not None:
            ch.last_seq = since
        if read_seq is not None:
            ch.read_seq = read_seq
        ok: Frame | None = await self._request({"op": "join", "channel": channel})
        if ok is None:
            raise SwitchboardError("not_found", f"left {channel} before it was joined")
        return ok

    async def leave(self, channel: str) -> Frame | None:
        """Leave a channel; it is no longer rejoined. Returns the `ok` frame (None if the
        channel was not joined or the client is offline)."""
        if self._channels.pop(channel, None) is None or not self._welcomed:
            return None
        ok: Frame | None = await self._request({"op": "leave", "channel": channel})
        return ok

    async def send(
        self,
        channel: str,
        text: str,
        *,
        client_id: str | None = None,
        type: str | None = None,
        reply_to: str | None = None,
        attachment_url: str | None = None,
    ) -> Frame:
        """Send a message; returns the ack (`id`, `seq`, `created_at`, `duplicate`) once it is
        committed, across reconnects (a retry reuses the same client_id); raises
        SwitchboardError with the server's code if refused."""
        frame: Frame = {
            "op": "send",
            "channel": channel,
            "text": text,
            "client_id": client_id or uuid.uuid4().hex,
        }
        if type is not None:
            frame["type"] = type
        if reply_to is not None:
            frame["reply_to"] = reply_to
        if attachment_url is not None:
            frame["attachment_url"] = attachment_url
        ack: Frame = await self._request(frame)
        return ack

    async def history(
        self,
        channel: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[Frame]:
        """A page of messages in ascending seq, in their current state."""
        frame: Frame = {"op": "history", "channel": channel}
        for key, value in (("before", before), ("after", after), ("limit", limit)):
            if value is not None:
                frame[key] = value
        ok: Frame = await self._request(frame)
        messages: list[Frame] = ok.get("messages") or []
        return messages

    async def typing(self, channel: str) -> None:
        """Show the typing indicator (best effort: nothing is sent while offline)."""
        if self._ws is not None and self._welcomed:
            await self._request({"op": "typing", "channel": channel})

    async def read(self, channel: str, seq: int) -> int:
        """Mark the channel read up to `seq`; returns the stored position."""
        ok: Frame = await self._request({"op": "read", "channel": channel, "seq": seq})
        stored: int = ok["seq"]
        return stored

    async def presence(self, channel: str) -> list[str]:
        """The users present in the channel (sorted ids)."""
        ok: Frame = await self._request({"op": "presence", "channel": channel})
        users: list[str] = ok.get("users") or []
        return users

    async def read_notifications(self, ids: list[str] | None = None, *, all: bool = False) -> Frame:
        """Mark notifications read (`ids`, or `all=True`); returns {marked, unread}."""
        frame: Frame = {"op": "read_notifications"}
        if all:
            frame["all"] = True
        else:
            frame["ids"] = ids or []
        ok: Frame = await self._request(frame)
        return {"marked": ok.get("marked"), "unread": ok.get("unread")}

    async def ping(self) -> int:
        """Round trip to the server; returns its time in Unix ms."""
        pong: Frame = await self._request({"op": "ping"})
        server_time: int = pong["server_time"]
        return server_time


def _consume(future: asyncio.Future[Any]) -> None:
    """A rejoin nobody awaits: a refusal is reported as an `error` event by _join_refused."""
    if not future.cancelled():
        future.exception()


async def _awaited(result: Awaitable[Any]) -> None:
    try:
        await result
    except Exception:
        log.exception("switchboard_client: callback failed")
