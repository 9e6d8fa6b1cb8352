"""The socket layer: handshake, authentication, the read loop, token expiry, close codes.

It reads a frame, hands it to the Session, writes the reply; nothing else. HTTP paths on
the same port: /healthz and /metrics. Close codes (docs/protocol.md): 1001 going away,
1008 policy violation, 1009 frame over the hard limit, 1011 internal error, 4001
unauthorized, 4002 token expired, 4008 slow consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import asyncpg
from redis.exceptions import RedisError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from gateway import protocol as p
from gateway.fanout import CLOSE_SLOW_CONSUMER, Client
from gateway.keepalive import Keepalive
from gateway.ratelimit import FrameBudget
from gateway.replies import OrderedReplies
from gateway.runtime import Gateway
from gateway.session import Session
from kernel.conversation import Principal
from kernel.errors import BadRequest, SwitchboardError, TooLarge, Unauthorized
from kernel.logs import EventLog
from kernel.revocation import check_not_revoked
from kernel.tokens import AccessClaims, verify_access_token

log = EventLog("gateway.server")
# Stands in for every socket's handshake request once it has been read (websockets only
# checks that there is one): the real one, headers and all, is then freed.
_HANDSHAKE_DONE = Request("/ws", Headers())


def _lighten(ws: ServerConnection) -> None:
    """Drops what a socket holds only for its handshake, about 4 KiB of each idle socket's
    memory (docs/benchmarks.md, "Idle sockets and memory"): the request and response with
    their headers and the URL with its token, and the deque websockets keeps for writers
    waiting on a full buffer (a list does the same three things, append/iterate/remove,
    for 56 bytes instead of 624)."""
    ws.request, ws.response = _HANDSHAKE_DONE, None
    ws.drain_waiters = []  # type: ignore[assignment]


CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_UNAUTHORIZED = 4001
CLOSE_TOKEN_EXPIRED = 4002
HARD_MAX_FRAME = 1 << 20
STRIKES_BEFORE_CLOSE = 50
RETRY_AFTER_UNAVAILABLE_MS = 1000
DRAIN_REPLIES_S = 10.0  # at most this long for the last acks at shutdown


def _text(status: HTTPStatus, body: bytes, content_type: str = "text/plain") -> Response:
    return Response(status, status.phrase, Headers({"Content-Type": content_type}), body)


class GatewayServer:
    """Serves one Gateway on a host and port until `stop` resolves, then drains."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self._server: Server | None = None
        self._replies: set[OrderedReplies] = set()  # of every open socket
        self._keepalive = Keepalive(self.settings.gateway_ping_interval_s)

    def _process_request(self, _conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/healthz":
            if self.gateway.draining:
                return _text(HTTPStatus.SERVICE_UNAVAILABLE, b"draining\n")
            # Degraded is still 200: sends are acknowledged and delivered (docs/protocol.md §14).
            degraded = self.gateway.degraded()
            if degraded:
                lines = "".join(f"{name}: degraded ({parts})\n" for name, parts in degraded.items())
                return _text(HTTPStatus.OK, b"degraded\n" + lines.encode())
            return _text(HTTPStatus.OK, b"ok\n")
        if path == "/metrics":
            return _text(HTTPStatus.OK, self.gateway.metrics.render(), "text/plain; version=0.0.4")
        if path not in ("/ws", "/"):
            return _text(HTTPStatus.NOT_FOUND, b"not found: WebSockets are served at /ws\n")
        return self._check_origin(request)

    def _check_origin(self, request: Request) -> Response | None:
        """403 before the upgrade for a browser page whose Origin is not in GATEWAY_ORIGINS
        (when set); requests without an Origin (not from a browser) pass."""
        allowed = self.settings.gateway_origins
        if not allowed:
            return None
        origins = request.headers.get_all("Origin")
        if not origins or (len(origins) == 1 and origins[0].lower() in allowed):
            return None
        self.gateway.metrics.origins_refused.inc()
        log.warning("origin_refused", origin=", ".join(origins)[:200], path=request.path[:200])
        return _text(HTTPStatus.FORBIDDEN, b"forbidden: this Origin may not open WebSockets\n")

    @staticmethod
    def _select_subprotocol(
        _conn: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        for name in (p.MSGPACK_SUBPROTOCOL, p.JSON_SUBPROTOCOL):
            if name in offered:
                return Subprotocol(name)
        return None

    async def start(self, *, reuse_port: bool = False) -> None:
        s = self.settings
        self._server = await serve(
            self._handle,
            s.gateway_host,
            s.gateway_port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            compression=None,
            max_size=HARD_MAX_FRAME,
            ping_interval=None,  # one task pings every socket: gateway/keepalive.py
            close_timeout=5,
            reuse_port=reuse_port,
            backlog=4096,
        )
        self._keepalive.start()
        log.info("listening", host=s.gateway_host, port=s.gateway_port)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Graceful shutdown: refuse new sends, commit and ack accepted ones, then close every
        socket with 1001 (clients reconnect and resume with `since`)."""
        await self.gateway.drain()
        # Pipelined sends accepted before the drain began may still be on their way to the
        # store, and acks are written by each socket's reply writer: let them all go out.
        pending = [replies.settled() for replies in self._replies]
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pending), DRAIN_REPLIES_S)
        await self._keepalive.stop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- one connection -------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        binary = ws.subprotocol == p.MSGPACK_SUBPROTOCOL
        try:
            claims = await self._authenticate(ws)
            principal = await self._principal(claims)
        except SwitchboardError as exc:
            await self._refuse(ws, binary, exc)
            return
        except ConnectionClosed:
            return
        finally:
            _lighten(ws)
        session_id = uuid.uuid4().hex
        client = Client(
            ws.transport,
            ws.protocol,
            binary,
            principal.user_id,
            on_slow=functools.partial(self._close_slow, ws),
        )
        session = Session(self.gateway, principal, client, session_id, claims.exp)
        session.token_session = claims.sid
        del claims  # the decoded token is not needed for the socket's life
        self.gateway.register(session)
        expiry = _ExpiryWatch(ws, session, self.settings.gateway_refresh_grace_s)
        session.on_refresh.append(expiry.arm)
        session.kick = functools.partial(self._kick, ws)
        self._keepalive.add(ws)
        try:
            s = self.settings
            session.write(
                p.Welcome(
                    session_id=session_id,
                    user_id=principal.user_id,
                    realm=principal.realm,
                    expires_at=session.expires_at,
                    server_time=int(time.time() * 1000),
                    max_frame_bytes=s.gateway_max_frame_bytes,
                    frames_per_second=s.gateway_frames_per_second,
                )
            )
            joined = await session.join(session.user_stream, None)
            missed: list[p.Notification] = []
            if session.realm.in_app_inbox:
                joined.unread, missed = await self.gateway.notifications.missed(
                    principal.user_id, session.realm
                )
                joined.missed = len(missed)
            session.write(joined)
            for notification in missed:
                session.write(notification)
            expiry.arm()
            await self._read_loop(ws, session)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("session_failed", session=session_id, user=principal.user_id)
            await ws.close(CLOSE_INTERNAL, "internal error")
        finally:
            self._keepalive.discard(ws)
            expiry.cancel()
            self.gateway.unregister(session)
            await session.close()

    async def _authenticate(self, ws: ServerConnection) -> AccessClaims:
        assert ws.request is not None
        token = parse_qs(urlsplit(ws.request.path).query).get("token", [None])[0]
        if token is None:
            try:
                data = await asyncio.wait_for(ws.recv(), self.settings.gateway_auth_timeout_s)
            except TimeoutError:
                raise Unauthorized(
                    f"no `auth` frame within {self.settings.gateway_auth_timeout_s:g} s"
                ) from None
            try:
                frame = p.decode_client_frame(data, binary=isinstance(data, bytes))
            except BadRequest as exc:
                raise Unauthorized(f"the first frame must be `auth` ({exc.message})") from None
            if not isinstance(frame, p.Auth):
                raise Unauthorized("the first frame must be `auth`")
            token = frame.token
        return verify_access_token(
            self.settings.secret, token, max_ttl_s=self.settings.access_token_max_ttl_s
        )

    async def _principal(self, claims: AccessClaims) -> Principal:
        realm = self.gateway.realms.for_token(claims.realm)
        if realm.user_lookup_sql is None:
            raise Unauthorized(f"realm {realm.name!r} has no users that can connect yet")
        user_id = realm.parse_user_id(claims.sub)
        try:
            row = await self.gateway.pool.fetchrow(
                realm.user_lookup_sql, realm.user_id_value(user_id)
            )
        except asyncpg.PostgresError:
            log.exception("user_lookup_failed", user=claims.sub)
            raise
        if row is None:
            raise Unauthorized("user does not exist")
        if not row["active"]:
            raise Unauthorized("user is not active")
        await check_not_revoked(self.gateway.pool, realm.name, user_id, claims.iat, claims.sid)
        return Principal(user_id=user_id, realm=realm.name, user_type=row["user_type"])

    async def _refuse(self, ws: ServerConnection, binary: bool, exc: SwitchboardError) -> None:
        self.gateway.metrics.errors.labels(exc.code).inc()
        payload = p.encode(p.Error(code=exc.code, message=exc.message), binary=binary)
        try:
            await ws.send(payload if binary else payload.decode())
            await ws.close(CLOSE_UNAUTHORIZED, exc.message[:120])
        except ConnectionClosed:
            pass

    async def _read_loop(self, ws: ServerConnection, session: Session) -> None:
        """Sends are pipelined (up to GATEWAY_SEND_PIPELINE in flight, acks in order); any
        other frame first waits until every earlier reply is out, then runs alone."""
        s = self.settings
        metrics = self.gateway.metrics
        budget = FrameBudget(s.gateway_frames_per_second, s.gateway_frame_burst)
        replies = OrderedReplies(session.write, s.gateway_send_pipeline)
        self._replies.add(replies)
        strikes = 0
        try:
            async for data in ws:
                ref: p.Ref = None
                try:
                    size = len(data) if isinstance(data, bytes) else len(data.encode())
                    if size > s.gateway_max_frame_bytes:
                        ref = p.probe_ref(data, binary=isinstance(data, bytes))
                        raise TooLarge(
                            f"frame of {size} bytes is over the limit of"
                            f" {s.gateway_max_frame_bytes}"
                        )
                    wait_ms = budget.take()
                    if wait_ms:
                        strikes += 1
                        metrics.rate_limited.labels("frames").inc()
                        if strikes > STRIKES_BEFORE_CLOSE:
                            await ws.close(CLOSE_POLICY, "too many frames")
                            return
                        await replies.ready(
                            p.Error(
                                code="rate_limited",
                                retry_after_ms=wait_ms,
                                ref=p.probe_ref(data, binary=isinstance(data, bytes)),
                                message=f"over {s.gateway_frames_per_second} frames per second",
                            )
                        )
                        continue
                    strikes = 0
                    frame = p.decode_client_frame(data, binary=isinstance(data, bytes))
                except SwitchboardError as exc:
                    await replies.ready(self._error(session, exc, ref))
                    continue
                metrics.frames_in.labels(type(frame).__name__.lower()).inc()
                if isinstance(frame, p.Send):
                    await replies.pipelined(self._answer(session, frame))
                else:
                    await replies.settled()
                    await replies.ready(await self._answer(session, frame))
        finally:
            self._replies.discard(replies)
            await replies.close()

    async def _answer(self, session: Session, frame: p.AnyClientFrame) -> p.ServerFrame | None:
        """The reply to one frame: its result, or the error it ends in (never raises)."""
        try:
            return await session.handle(frame)
        except Exception as exc:
            return self._error(session, exc, frame.ref)

    def _error(self, session: Session, exc: Exception, ref: p.Ref) -> p.Error:
        metrics = self.gateway.metrics
        if isinstance(exc, SwitchboardError):
            metrics.errors.labels(exc.code).inc()
            return p.Error(
                code=exc.code,
                message=exc.message,
                ref=ref if ref is not None else exc.details.get("ref"),
                retry_after_ms=exc.details.get("retry_after_ms"),
            )
        if isinstance(exc, asyncpg.DataError):  # the request's data, refused by Postgres
            metrics.errors.labels("bad_request").inc()
            return p.Error(code="bad_request", message=f"refused by storage: {exc}"[:300], ref=ref)
        metrics.errors.labels("unavailable").inc()
        if isinstance(exc, OSError | asyncpg.PostgresError | asyncpg.InterfaceError | RedisError):
            log.error("frame_failed", session=session.session_id, error=repr(exc))
            message = "storage is unavailable; retry (sends with their client_id)"
        else:  # a defect, not the client's fault: this frame fails, not the socket
            log.error("frame_crashed", session=session.session_id, error=repr(exc))
            message = "the server failed on this frame; retry"
        return p.Error(
            code="unavailable", message=message, ref=ref, retry_after_ms=RETRY_AFTER_UNAVAILABLE_MS
        )

    def _kick(self, ws: ServerConnection, code: int, reason: str) -> None:
        asyncio.get_running_loop().create_task(ws.close(code, reason))

    def _close_slow(self, ws: ServerConnection) -> None:
        self.gateway.metrics.slow_consumers.inc()
        log.info("slow_consumer", remote=str(ws.remote_address))
        asyncio.get_running_loop().create_task(
            ws.close(CLOSE_SLOW_CONSUMER, "slow consumer: resume with since")
        )


class _ExpiryWatch:
    """Warns the user stream when the token expires; closes 4002 if no refresh in the grace."""

    __slots__ = ("_grace_s", "_session", "_timer", "_ws")

    def __init__(self, ws: ServerConnection, session: Session, grace_s: float) -> None:
        self._ws = ws
        self._session = session
        self._grace_s = grace_s
        self._timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        self.cancel()
        delay = max(0.0, self._session.expires_at - time.time())
        self._timer = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        self._session.write(
            p.Event(
                channel=self._session.user_stream,
                kind="token_expired",
                expires_in_ms=int(self._grace_s * 1000),
            )
        )
        self._timer = asyncio.get_running_loop().call_later(self._grace_s, self._close)

    def _close(self) -> None:
        asyncio.get_running_loop().create_task(self._ws.close(CLOSE_TOKEN_EXPIRED, "token expired"))

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
