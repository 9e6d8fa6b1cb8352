"""A gevent WebSocket client for locust, and the Switchboard protocol on top of it.

Locust runs every user as a greenlet, so the socket is a gevent socket (no asyncio inside
gevent, no thread per connection): one reader greenlet per connection parses frames and
answers pings; the user's greenlet writes. It does exactly what a load generator needs (the
handshake, masked client frames, text/binary/continuation/ping/close frames in) and little
else, so one locust process holds thousands of sockets.

`ChatSocket` speaks the gateway protocol (docs/protocol.md): requests with a `ref` wait for
their reply, sends register their `client_id` so the sender's own echo can be timed, every
`msg` advances the channel's `seq` (for resume with `since`), and `notification` frames are
timed from the moment the post that caused them was requested. Each measurement is a locust
request event with request_type "WS".
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import os
import random
import re
import socket
import struct
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import gevent
import msgspec
from gevent import socket as gsocket
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore

from loadtests.wsclient import client_frame, frame_header

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RECV_CHUNK = 65536
Frame = dict[str, Any]
EventFire = Callable[..., Any]  # locust's events.request.fire


class WebSocketClosed(ConnectionError):
    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"socket closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class GeventWebSocket:
    """One client WebSocket on a gevent socket. `on_message(payload)` runs in the reader
    greenlet for every text or binary message; `on_close(code, reason)` once at the end."""

    def __init__(
        self,
        url: str,
        on_message: Callable[[bytes], None],
        on_close: Callable[[int | None, str], None],
        timeout: float = 10.0,
        subprotocol: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "ws":
            raise ValueError(f"only ws:// URLs are supported (use a TLS terminator): {url}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.on_message = on_message
        self.on_close = on_close
        self.timeout = timeout
        self.subprotocol = subprotocol
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = Event()
        self._sock: socket.socket | None = None
        self._send_lock = Semaphore()
        self._reader: gevent.Greenlet[Any, Any] | None = None
        self._closing = False  # a close frame was sent or received
        self.closed_by_client = False  # close() was called: the end is ours

    # --- opening and closing ------------------------------------------------------------------

    def connect(self) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        headers = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            f"Sec-WebSocket-Key: {key}",
            "User-Agent: switchboard-locust",
        ]
        if self.subprotocol:
            headers.append(f"Sec-WebSocket-Protocol: {self.subprotocol}")
        sock = gsocket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
            buf = bytearray()
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("connection closed during the WebSocket handshake")
                buf += chunk
                if len(buf) > 16384:
                    raise ConnectionError("oversized handshake response")
            head, _, rest = bytes(buf).partition(b"\r\n\r\n")
            status, *lines = head.decode("latin-1").split("\r\n")
            if " 101 " not in status + " ":
                raise ConnectionError(f"handshake refused: {status}")
            fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
            accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()  # noqa: S324 - RFC 6455 mandates SHA-1
            if fields.get("sec-websocket-accept") != accept:
                raise ConnectionError("handshake answered with a wrong Sec-WebSocket-Accept")
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._reader = gevent.spawn(self._read_loop, bytearray(rest))

    def close(self, code: int = 1000) -> None:
        """Close from our side (a close frame, then the TCP connection)."""
        self.closed_by_client = True
        if not self._closing:
            self._closing = True
            try:
                self._write(client_frame(struct.pack("!H", code), 0x8))
            except OSError:
                pass
        self._shutdown()
        if self._reader is not None and self._reader is not gevent.getcurrent():
            self._reader.join(timeout=self.timeout)
            if not self._reader.dead:
                self._reader.kill(block=False)

    def _shutdown(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()

    # --- writing ------------------------------------------------------------------------------

    def send_text(self, payload: bytes) -> None:
        if self.closed.is_set():
            raise WebSocketClosed(self.close_code, self.close_reason)
        self._write(client_frame(payload, 0x1))

    def _write(self, data: bytes) -> None:
        if self._sock is None:
            raise WebSocketClosed(None, "not connected")
        with self._send_lock:  # the reader greenlet writes pongs
            self._sock.sendall(data)

    # --- reading ------------------------------------------------------------------------------

    def _read_loop(self, buf: bytearray) -> None:
        assert self._sock is not None
        fragments: list[bytes] = []
        try:
            while True:
                pos = self._parse(buf, fragments)
                if pos:
                    del buf[:pos]
                if self.closed.is_set():
                    break
                chunk = self._sock.recv(RECV_CHUNK)
                if not chunk:
                    break
                buf += chunk
        except OSError as exc:
            if not self.closed.is_set() and not self.closed_by_client:
                self.close_reason = self.close_reason or repr(exc)
        finally:
            self._shutdown()
            if not self.closed.is_set():
                self.closed.set()
            self.on_close(self.close_code, self.close_reason)

    def _parse(self, buf: bytearray, fragments: list[bytes]) -> int:
        """Handle every complete frame in `buf`; return how many bytes were consumed."""
        pos, size = 0, len(buf)
        while (header := frame_header(buf, pos)) is not None:
            b0, start, n, masked = header
            mask = bytes(buf[start - 4 : start]) if masked else b""
            end = start + n
            if end > size:
                break
            payload = bytes(buf[start:end])
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            pos = end
            opcode = b0 & 0x0F
            fin = bool(b0 & 0x80)
            if opcode in (0x1, 0x2):
                if fin:
                    self.on_message(payload)
                else:
                    fragments[:] = [payload]
            elif opcode == 0x0:
                fragments.append(payload)
                if fin:
                    self.on_message(b"".join(fragments))
                    fragments.clear()
            elif opcode == 0x9:
                try:
                    self._write(client_frame(payload, 0xA))
                except OSError:
                    pass
            elif opcode == 0x8:
                self.close_code = struct.unpack_from("!H", payload)[0] if n >= 2 else None
                self.close_reason = payload[2:].decode(errors="replace")
                if not self._closing:
                    self._closing = True
                    try:
                        self._write(client_frame(payload[:2], 0x8))
                    except OSError:
                        pass
                self.closed.set()
                break
        return pos


# --- the Switchboard protocol -------------------------------------------------------------------


class WsRefused(Exception):
    """An `error` reply: its code and message."""

    def __init__(self, reply: Frame) -> None:
        super().__init__(f"{reply.get('code')}: {reply.get('message')}")
        self.code = str(reply.get("code"))
        self.retry_after_ms = int(reply.get("retry_after_ms") or 0)


# Posts requested by analyst users of this process, by the token in their title: token -> the
# time.time() of the request. Notifications carry the post's title (as `message`), so a
# receiver finds when the post was asked for; a post from another process falls back to the
# notification's created_at (same host or synchronised clocks).
POSTED: dict[str, float] = {}
POST_TOKEN = re.compile(r"\[lt:([0-9a-f]{12})\]")
_MSG_HEAD = re.compile(rb'^\{"op":"msg","channel":"([^"]+)","seq":(\d+),')
_decode = msgspec.json.decode
_encode = msgspec.json.encode


def add_option(parser: Any, name: str, default: Any, help_: str, type_: type = str) -> None:
    """A locust command-line option that may also come from LOCUST_<NAME> (every locust
    module of this folder declares its options with it)."""
    env = "LOCUST_" + name.lstrip("-").upper().replace("-", "_")
    parser.add_argument(name, type=type_, default=default, env_var=env, help=help_)


def new_post_token() -> str:
    """A token for a post's title; registered in POSTED with the current time."""
    token = os.urandom(6).hex()
    now = time.time()
    POSTED[token] = now
    if len(POSTED) > 10_000:  # forget posts older than 10 minutes
        for old in [k for k, t in POSTED.items() if now - t > 600]:
            del POSTED[old]
    return f"[lt:{token}]"


def _replayed(reply: Frame) -> int:
    return int(reply.get("replayed") or 0)


def _wait(result: AsyncResult[Frame], timeout: float, what: str) -> Frame:
    """The result, or TimeoutError (not gevent.Timeout, a BaseException) after `timeout`."""
    try:
        reply: Frame = result.get(timeout=timeout)
    except gevent.Timeout:
        raise TimeoutError(f"no reply to {what} within {timeout:g} s") from None
    return reply


def _iso_age_ms(created_at: str | None) -> float | None:
    if not created_at:
        return None
    try:
        then = datetime.fromisoformat(created_at).timestamp()
    except ValueError:
        return None
    return max(0.0, (time.time() - then) * 1000)


class ChatSocket:
    """A gateway connection for one locust user: connect, join, send, history, read, resume.

    Every measurement is fired through `fire` (locust's `events.request.fire`) with
    request_type "WS". Blocking calls wait at most `timeout` seconds for their reply.
    """

    _tags = itertools.count(1)

    def __init__(
        self,
        url: str,
        fire: EventFire,
        *,
        timeout: float = 10.0,
        recv_sample: float = 0.1,
    ) -> None:
        self.url = url
        self.fire = fire
        self.timeout = timeout
        self.recv_sample = recv_sample
        # client_ids are "<tag>.<n>": the tag is unique per ChatSocket in this process and
        # random across processes, so own echoes are found by a substring test.
        self.tag = f"lt{os.urandom(3).hex()}{next(self._tags)}"
        self._tag_bytes = f'"client_id":"{self.tag}.'.encode()
        self._sends = itertools.count(1)
        self._refs = itertools.count(1)
        self.ws: GeventWebSocket | None = None
        self.user_id = ""
        self.expires_at = 0.0
        self.joined: dict[str, str] = {}  # channel -> role
        self.last_seq: dict[str, int] = {}
        self.token_expired = False
        self.lost: Exception | None = None  # set when the server ended the connection
        self._waiting: dict[int, AsyncResult[Frame]] = {}
        self._welcome: AsyncResult[Frame] = AsyncResult()
        self._echoes: dict[str, tuple[float, str]] = {}  # client_id -> (perf_counter, channel)
        self._welcome_frame: Frame = {}
        self.received = 0

    # --- connection -----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.ws is not None and not self.ws.closed.is_set()

    def connect(self, token: str, name: str = "connect") -> None:
        """Open the socket with `?token=`, wait for the welcome and the user-stream ok."""
        self.lost = None
        self.joined.clear()
        self._welcome = AsyncResult()
        self._welcome_frame = {}
        sep = "&" if "?" in self.url else "?"
        ws = GeventWebSocket(
            f"{self.url}{sep}token={token}", self._on_message, lambda *_: None, self.timeout
        )
        ws.on_close = functools.partial(self._on_close, ws)
        self.ws = ws
        started = time.perf_counter()
        try:
            ws.connect()
            welcome = _wait(self._welcome, self.timeout, "welcome")
        except Exception as exc:
            ws.close()
            self._fire(name, started, exception=exc)
            raise
        self.user_id = str(welcome.get("user_id", ""))
        self.expires_at = float(welcome.get("expires_at") or 0)
        self.token_expired = False
        self._fire(name, started)

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        self._fail_waiting(WebSocketClosed(1000, "closed by the client"))
        self._echoes.clear()

    def _on_close(self, ws: GeventWebSocket, code: int | None, reason: str) -> None:
        if ws is not self.ws and self.ws is not None:
            return  # an earlier socket of this user
        closed = WebSocketClosed(code, reason)
        self.joined.clear()
        self._echoes.clear()  # their sockets are gone; the loss is reported once, here
        if not ws.closed_by_client and self._welcome.ready():  # else `connect` reports it
            self.lost = closed
            self.fire(
                request_type="WS",
                name="connection lost",
                response_time=0,
                response_length=0,
                exception=closed,
                context={},
            )
        self._fail_waiting(closed)
        if not self._welcome.ready():
            self._welcome.set_exception(closed)

    def _fail_waiting(self, exc: Exception) -> None:
        waiting, self._waiting = self._waiting, {}
        for result in waiting.values():
            if not result.ready():
                result.set_exception(exc)

    # --- requests -------------------------------------------------------------------------------

    def request(
        self, frame: Frame, name: str | None, size: Callable[[Frame], int] | None = None
    ) -> Frame:
        """Send `frame` with a fresh ref and return its `ok` reply; fires `name` (None: the
        caller fires) with `size(reply)` as the response length (default: 0). Raises
        WsRefused for an `error` reply, WebSocketClosed or TimeoutError."""
        ref = next(self._refs)
        frame["ref"] = ref
        result: AsyncResult[Frame] = AsyncResult()
        self._waiting[ref] = result
        started = time.perf_counter()
        try:
            if self.ws is None:
                raise WebSocketClosed(None, "not connected")
            payload = _encode(frame)
            self.ws.send_text(payload)
            reply = _wait(result, self.timeout, str(frame["op"]))
            if reply.get("op") == "error":
                raise WsRefused(reply)
        except Exception as exc:
            if name:
                self._fire(name, started, exception=exc)
            raise
        finally:
            self._waiting.pop(ref, None)
        if name:
            self._fire(name, started, length=size(reply) if size else 0)
        return reply

    def join(self, channel: str, since: int | None = None, name: str = "join") -> Frame:
        frame: Frame = {"op": "join", "channel": channel}
        if since is not None:
            frame["since"] = since
        reply = self.request(frame, name, _replayed)
        self.joined[channel] = str(reply.get("role", "member"))
        last = reply.get("last_seq")
        if isinstance(last, int) and since is None:
            self.last_seq[channel] = max(self.last_seq.get(channel, 0), last)
        elif isinstance(last, int) and last < self.last_seq.get(channel, 0):
            self.last_seq[channel] = last  # the server is behind us: start again from it
        return reply

    def send_message(self, channel: str, text: str) -> Frame:
        """Send and wait for the ack ("send (ack)"); the echo is timed when it arrives
        ("send-to-receive (own echo)"), or reported overdue by check_overdue()."""
        client_id = f"{self.tag}.{next(self._sends)}"
        self._echoes[client_id] = (time.perf_counter(), channel)
        try:
            return self.request(
                {"op": "send", "channel": channel, "text": text, "client_id": client_id},
                "send (ack)",
            )
        except Exception:
            self._echoes.pop(client_id, None)
            raise

    def typing(self, channel: str) -> None:
        """A typing indicator without ref: no reply, fanned out to the room."""
        if self.ws is not None:
            self.ws.send_text(_encode({"op": "typing", "channel": channel}))

    def history(self, channel: str, limit: int = 50) -> Frame:
        return self.request(
            {"op": "history", "channel": channel, "limit": limit},
            "history",
            lambda reply: len(reply.get("messages") or ()),
        )

    def read(self, channel: str) -> Frame | None:
        seq = self.last_seq.get(channel, 0)
        if seq < 1:
            return None
        return self.request({"op": "read", "channel": channel, "seq": seq}, "read")

    def presence(self, channel: str) -> Frame:
        return self.request({"op": "presence", "channel": channel}, "presence")

    def refresh(self, token: str) -> None:
        reply = self.request({"op": "refresh", "token": token}, "refresh")
        self.expires_at = float(reply.get("expires_at") or self.expires_at)
        self.token_expired = False

    def resume(self, token: str, channels: list[str]) -> int:
        """Reconnect and rejoin `channels`, with `since` = the last seq seen where there is
        one; return the number of messages replayed. Fires "reconnect" and
        "resume (join since)" (or "join" for a channel never joined before)."""
        self.close()
        self.connect(token, name="reconnect")
        replayed = 0
        for channel in channels:
            since = self.last_seq.get(channel)
            name = "join" if since is None else "resume (join since)"
            replayed += int(self.join(channel, since, name=name).get("replayed") or 0)
        return replayed

    def check_overdue(self) -> None:
        """Report sends whose own echo did not arrive within `timeout` as failures."""
        if not self._echoes:
            return
        now = time.perf_counter()
        for client_id, (sent, channel) in list(self._echoes.items()):
            if now - sent > self.timeout:
                del self._echoes[client_id]
                self.fire(
                    request_type="WS",
                    name="send-to-receive (own echo)",
                    response_time=(now - sent) * 1000,
                    response_length=0,
                    exception=TimeoutError(f"no echo in {channel} within {self.timeout:.0f} s"),
                    context={},
                )

    # --- incoming frames (reader greenlet) ------------------------------------------------------

    def _on_message(self, payload: bytes) -> None:
        self.received += 1
        if payload.startswith(b'{"op":"msg"'):
            self._on_msg(payload)
            return
        if payload.startswith(b'{"op":"event"') and b'"kind":"token_expired"' not in payload:
            if b'"kind":"removed"' in payload:
                frame = _decode(payload)
                self.joined.pop(str(frame.get("channel")), None)
                self.fire(
                    request_type="WS",
                    name="removed from channel",
                    response_time=0,
                    response_length=len(payload),
                    exception=RuntimeError(str(frame.get("reason"))),
                    context={},
                )
            return  # joined/left/typing/read/edited...: nothing to measure
        frame = _decode(payload)
        op = frame.get("op")
        if op in ("ok", "error", "pong"):
            ref = frame.get("ref")
            if ref is None and op == "ok" and frame.get("role") == "self":
                if not self._welcome.ready():
                    self._welcome.set(self._welcome_frame)
                return
            waiting = self._waiting.get(ref) if isinstance(ref, int) else None
            if waiting is not None and not waiting.ready():
                waiting.set(frame)
            if op == "ok" and frame.get("messages"):
                for m in frame["messages"]:
                    self._advance(str(m.get("channel")), int(m.get("seq") or 0))
        elif op == "welcome":
            self._welcome_frame = frame
        elif op == "notification":
            self._on_notification(frame, len(payload))
        elif op == "event" and frame.get("kind") == "token_expired":
            self.token_expired = True

    def _advance(self, channel: str, seq: int) -> None:
        if seq > self.last_seq.get(channel, 0):
            self.last_seq[channel] = seq

    def _on_msg(self, payload: bytes) -> None:
        head = _MSG_HEAD.match(payload)
        if head is not None:
            self._advance(head.group(1).decode(), int(head.group(2)))
        if self._tag_bytes in payload:
            frame = _decode(payload)
            sent = self._echoes.pop(str(frame.get("client_id")), None)
            if sent is not None:
                self.fire(
                    request_type="WS",
                    name="send-to-receive (own echo)",
                    response_time=(time.perf_counter() - sent[0]) * 1000,
                    response_length=len(payload),
                    exception=None,
                    context={},
                )
            return
        if head is None:  # not the usual layout: decode to keep seq tracking right
            frame = _decode(payload)
            self._advance(str(frame.get("channel")), int(frame.get("seq") or 0))
        if self.recv_sample >= 1 or random.random() < self.recv_sample:
            frame = _decode(payload)
            age = _iso_age_ms(frame.get("created_at"))
            if age is not None:
                self.fire(
                    request_type="WS",
                    name="msg received (commit-to-receive)",
                    response_time=age,
                    response_length=len(payload),
                    exception=None,
                    context={},
                )

    def _on_notification(self, frame: Frame, length: int) -> None:
        found = POST_TOKEN.search(str(frame.get("message") or ""))
        posted = POSTED.get(found.group(1)) if found else None
        age = (
            max(0.0, (time.time() - posted) * 1000)
            if posted is not None
            else _iso_age_ms(frame.get("created_at"))
        )
        # A notification replayed on connect (`missed`: it was created while this user had no
        # socket) measures how long the user was away, not delivery: it gets its own row.
        kind = "notification (missed, on connect)" if frame.get("missed") else "notification"
        self.fire(
            request_type="WS",
            name=f"{kind} {frame.get('notification_type')}",
            response_time=age or 0.0,
            response_length=length,
            exception=None,
            context={},
        )

    def _fire(
        self, name: str, started: float, length: int = 0, exception: Exception | None = None
    ) -> None:
        self.fire(
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )
