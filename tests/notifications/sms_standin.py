"""A stand-in for a Twilio-shaped SMS provider, on loopback in the test's event loop:
`POST /2010-04-01/Accounts/{sid}/Messages.json` with form To, From, Body and HTTP basic auth.
It answers as Twilio does: 201 with the message resource (`sid`), 400 with an error object
(`code` 21211 for a number it calls invalid, 21610 for one that texted STOP), 401 for wrong
credentials, and whatever a test scripts per number (429 with Retry-After, 500)."""

from __future__ import annotations

import base64
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "standin-auth-token"
FROM = "+15005550006"
# Twilio's magic test numbers: this one is "invalid", answered with 400 / 21211.
INVALID_NUMBER = "+15005550001"


@dataclass(frozen=True)
class SmsReply:
    """One scripted answer: status, JSON body, headers."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def twilio_error(status: int, code: int, message: str) -> SmsReply:
    more = f"https://www.twilio.com/docs/errors/{code}"
    return SmsReply(status, {"code": code, "message": message, "more_info": more, "status": status})


def rate_limited(retry_after: int | None) -> SmsReply:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    too_many = twilio_error(429, 20429, "Too Many Requests")
    return SmsReply(429, too_many.body, headers)


def server_error() -> SmsReply:
    return twilio_error(500, 20500, "Internal Server Error")


def unsubscribed() -> SmsReply:
    return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")


class SmsStandIn:
    """The provider. `script[number]` is a queue of replies for messages to that number (then
    201). `requests` holds every request's form (answered or not), `sent` the accepted ones."""

    def __init__(self) -> None:
        self.script: dict[str, deque[SmsReply]] = {}
        self.requests: list[dict[str, str]] = []
        self.sent: list[dict[str, str]] = []
        self.base_url = ""
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    def reply(self, number: str, *replies: SmsReply) -> None:
        self.script.setdefault(number, deque()).extend(replies)

    def to(self, number: str) -> list[dict[str, str]]:
        """The accepted messages to `number`."""
        return [m for m in self.sent if m["To"] == number]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _create(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if (
            request.match_info["sid"] != ACCOUNT_SID
            or request.headers.get("Authorization") != f"Basic {expected}"
        ):
            return _json(twilio_error(401, 20003, "Authenticate"))
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(form)
        to = form.get("To", "")
        if not form.get("Body"):
            return _json(twilio_error(400, 21602, "Message body is required."))
        queued = self.script.get(to)
        if queued:
            return _json(queued.popleft())
        if to == INVALID_NUMBER or not to.startswith("+"):
            return _json(
                twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
            )
        sid = f"SM{next(self._ids):032x}"
        self.sent.append({**form, "sid": sid})
        resource = {
            "sid": sid,
            "account_sid": ACCOUNT_SID,
            "to": to,
            "from": form.get("From"),
            "body": form["Body"],
            "status": "queued",
            "api_version": "2010-04-01",
            "error_code": None,
        }
        return _json(SmsReply(201, resource))


def _json(reply: SmsReply) -> web.Response:
    return web.json_response(reply.body, status=reply.status, headers=reply.headers)
