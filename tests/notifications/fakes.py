"""Stand-ins for the providers, on loopback in the test's event loop: an FCM HTTP v1 server
with its OAuth token endpoint (the real google-auth service-account flow signs a JWT with a
generated key and trades it here), a real aiosmtpd SMTP server, and a settable clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class FakeClock:
    """A clock the test moves by hand. It starts at the real time when first read (so rows
    the test wrote with the database's now() are due) and then stands still."""

    def __init__(self) -> None:
        self._now: dt.datetime | None = None

    def __call__(self) -> dt.datetime:
        if self._now is None:
            self._now = dt.datetime.now(dt.UTC)
        return self._now

    def advance(self, seconds: float) -> None:
        self._now = self() + dt.timedelta(seconds=seconds)

    def set(self, when: dt.datetime) -> None:
        self._now = when

    def catch_up(self) -> None:
        """Move to the real time if that is later (rows written since are due)."""
        self._now = max(self(), dt.datetime.now(dt.UTC))


# --- FCM ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FcmReply:
    """What the fake answers one send: an HTTP status, a JSON body, headers; `hang` never
    answers (until the server stops)."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


def fcm_error(code: int, status: str, message: str, **detail: Any) -> dict[str, Any]:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", **detail}]
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


UNREGISTERED = FcmReply(
    404, fcm_error(404, "NOT_FOUND", "Requested entity was not found.", errorCode="UNREGISTERED")
)
INVALID_TOKEN = FcmReply(
    400,
    fcm_error(
        400,
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
        errorCode="INVALID_ARGUMENT",
    ),
)
INVALID_PAYLOAD = FcmReply(
    400,
    {
        "error": {
            "code": 400,
            "message": 'Invalid JSON payload received. Unknown name "colour"',
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": "message.android.colour"}],
                }
            ],
        }
    },
)


def rate_limited(retry_after: int) -> FcmReply:
    body = fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", errorCode="QUOTA_EXCEEDED")
    return FcmReply(429, body, {"Retry-After": str(retry_after)})


def device_rate_limited(retry_after: int | None = None) -> FcmReply:
    """A 429 for one device's message rate (FCM: QUOTA_EXCEEDED, with a QuotaFailure naming
    the device)."""
    body = fcm_error(
        429, "RESOURCE_EXHAUSTED", "Device message rate exceeded.", errorCode="QUOTA_EXCEEDED"
    )
    body["error"]["details"].append(
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"subject": "device", "description": "Device message rate exceeded."}],
        }
    )
    return FcmReply(429, body, {"Retry-After": str(retry_after)} if retry_after else {})


def project_rate_limited(retry_after: int | None = None) -> FcmReply:
    """A 429 for the project's send quota, as FCM answers it (google.rpc.ErrorInfo)."""
    body = {
        "error": {
            "code": 429,
            "message": "Quota exceeded for quota metric 'Send requests' and limit 'Send requests"
            " per minute' of service 'fcm.googleapis.com' for consumer 'project_number:1'.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "RATE_LIMIT_EXCEEDED",
                    "domain": "googleapis.com",
                    "metadata": {
                        "quota_metric": "fcm.googleapis.com/send_requests",
                        "quota_unit": "1/min/{project}",
                        "quota_limit": "SendsPerMinutePerProject",
                    },
                }
            ],
        }
    }
    return FcmReply(429, body, {"Retry-After": str(retry_after)} if retry_after else {})


def unavailable(retry_after: int | None = None) -> FcmReply:
    body = fcm_error(503, "UNAVAILABLE", "The service is unavailable", errorCode="UNAVAILABLE")
    return FcmReply(503, body, {"Retry-After": str(retry_after)} if retry_after else {})


class FakeFcm:
    """FCM HTTP v1 (`POST /v1/projects/<p>/messages:send`) and the OAuth token endpoint.

    `script[token]` is a queue of replies for sends to that token (then 200 for good).
    `sent` holds every accepted message body; `requests` every send, answered or not.
    `fail_first_every = k` answers 503 (no Retry-After) to the first send to every k-th token
    (by CRC-32; the benchmark's retries). `hold(n)` makes sends wait until n are waiting at
    once (proof of concurrency; `in_flight_max` is the most seen at once).
    """

    PROJECT = "switchboard-test"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.script: dict[str, deque[FcmReply]] = {}
        self.sent: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.tokens_issued = 0
        self.auth_headers: list[str] = []
        self.fail_first_every = 0
        self._seen: set[str] = set()
        self._gate: asyncio.Event | None = None
        self._gate_at = 0
        self.in_flight = 0
        self.in_flight_max = 0
        self._arrived = asyncio.Condition()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base = ""
        self.credentials_file = ""

    def reply(self, token: str, *replies: FcmReply) -> None:
        self.script.setdefault(token, deque()).extend(replies)

    def hold(self, count: int) -> None:
        """Hold every send until `count` sends are waiting at once, then answer them all."""
        self._gate = asyncio.Event()
        self._gate_at = count

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"
        self.credentials_file = str(self._write_service_account())

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def fcm_base_url(self) -> str:
        return f"{self.base}/v1/projects"

    def _write_service_account(self) -> Path:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info = {
            "type": "service_account",
            "project_id": self.PROJECT,
            "private_key_id": uuid.uuid4().hex,
            "private_key": pem,
            "client_email": f"pusher@{self.PROJECT}.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": f"{self.base}/token",
        }
        path = self.workdir / "fcm-service-account.json"
        path.write_text(json.dumps(info))
        return path

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if not str(form.get("assertion", "")).count(".") == 2:
            return web.json_response({"error": "invalid_grant"}, status=400)
        self.tokens_issued += 1
        token = f"ya29.fake-{self.tokens_issued}"
        return web.json_response(
            {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
        )

    async def _send(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ya29.fake-"):
            return web.json_response(fcm_error(401, "UNAUTHENTICATED", "no token"), status=401)
        body = await request.json()
        message = body["message"]
        async with self._arrived:
            self.requests.append(message)
            self.auth_headers.append(auth)
            self._arrived.notify_all()
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        try:
            if self._gate is not None:
                if self.in_flight >= self._gate_at:
                    self._gate.set()
                await self._gate.wait()
            return await self._answer(request, message)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, message: dict[str, Any]) -> web.StreamResponse:
        token = message.get("token", "")
        queue = self.script.get(token)
        reply = queue.popleft() if queue else FcmReply()
        if self.fail_first_every and token not in self._seen:
            self._seen.add(token)
            if zlib.crc32(token.encode()) % self.fail_first_every == 0:
                reply = unavailable()
        if reply.hang:
            await self._release.wait()
            return web.json_response({}, status=503)
        if reply.status == 200:
            async with self._arrived:
                self.sent.append(message)
                self._arrived.notify_all()
            name = f"projects/{request.match_info['project']}/messages/{len(self.sent)}"
            return web.json_response({"name": name})
        return web.json_response(reply.body or {}, status=reply.status, headers=reply.headers)

    async def wait_sent(self, count: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.sent) >= count)

    async def wait_requests(self, count: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)


# --- SMTP ---------------------------------------------------------------------------------------


class _CountingSMTP(SMTP):
    """aiosmtpd's SMTP session, counted by its sink (connections opened, open at once)."""

    def __init__(self, sink: SmtpSink, **kwargs: Any) -> None:
        super().__init__(sink, **kwargs)
        self.sink = sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sink._opened(transport)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink._closed(self.transport)
        super().connection_lost(exc)


class SmtpSink:
    """A real aiosmtpd server. `rcpt_replies`/`data_replies` queue replies to give instead of
    250 (e.g. "450 4.2.1 Busy"); `rcpt_replies_for[domain]` the same for one recipient domain;
    a data reply of "hang" holds the DATA reply until `release()`. `messages` are the accepted
    ones, parsed (`parse=False`: only counted in `accepted`). `sessions` counts connections
    opened, `open_max` the most open at once; `hold(n)` makes DATA wait until n messages are
    in DATA at once; `drop_connections()` closes every open connection from the server side."""

    def __init__(self, *, parse: bool = True) -> None:
        self.parse = parse
        self.rcpt_replies: deque[str] = deque()
        self.rcpt_replies_for: dict[str, deque[str]] = {}
        self.data_replies: deque[str] = deque()
        self.messages: list[EmailMessage] = []
        self.accepted = 0
        self.rcpts: list[str] = []
        self.data_started = asyncio.Event()
        self.sessions = 0
        self.open_max = 0
        self.in_data_max = 0
        self._in_data = 0
        self._open: set[asyncio.BaseTransport] = set()
        self._gate: asyncio.Event | None = None
        self._gate_at = 0
        self._release = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _CountingSMTP(self, hostname="sink.test", loop=loop), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._release.set()
        if self._gate is not None:
            self._gate.set()
        if self._server is not None:
            self._server.close()
        self.drop_connections()

    def release(self) -> None:
        self._release.set()

    def hold(self, count: int) -> None:
        """Hold every DATA reply until `count` messages are in DATA at once."""
        self._gate = asyncio.Event()
        self._gate_at = count

    def drop_connections(self) -> None:
        for transport in list(self._open):
            transport.close()

    @property
    def open_now(self) -> int:
        return len(self._open)

    def _opened(self, transport: asyncio.BaseTransport) -> None:
        self.sessions += 1
        self._open.add(transport)
        self.open_max = max(self.open_max, len(self._open))

    def _closed(self, transport: asyncio.BaseTransport | None) -> None:
        if transport is not None:
            self._open.discard(transport)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        scripted = self.rcpt_replies_for.get(address.rpartition("@")[2].lower())
        if scripted:
            return scripted.popleft()
        if self.rcpt_replies:
            return self.rcpt_replies.popleft()
        envelope.rcpt_tos.append(address)
        self.rcpts.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self._in_data += 1
        self.in_data_max = max(self.in_data_max, self._in_data)
        try:
            if self._gate is not None:
                if self._in_data >= self._gate_at:
                    self._gate.set()
                await self._gate.wait()
            return await self._data_reply(envelope)
        finally:
            self._in_data -= 1

    async def _data_reply(self, envelope: Envelope) -> str:
        reply = self.data_replies.popleft() if self.data_replies else "250 2.0.0 OK queued"
        if reply == "hang":
            self.data_started.set()
            await self._release.wait()
            return "451 4.3.0 Released"
        if not reply.startswith("250"):
            return reply
        self.accepted += 1
        if not self.parse:
            return f"{reply} as m{self.accepted}"
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        async with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        return f"{reply} as m{len(self.messages)}"

    async def wait_messages(self, count: int, timeout: float = 10) -> list[EmailMessage]:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.messages) >= count)
        return list(self.messages)
