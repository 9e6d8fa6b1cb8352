"""SMS delivery through a Twilio-shaped Messages API: one POST per job to
`{SMS_BASE_URL}/2010-04-01/Accounts/{SID}/Messages.json` (form To, From, Body; HTTP basic auth
with the account SID and auth token), at most SMS_CONCURRENCY at once per worker.

201 is sent (its `sid` is the provider id); a 400 is our request refused for good (21211: the
number is invalid, 21610: the recipient texted STOP), so the job fails without a retry; a 429
pauses scope 'sms' for every worker until Retry-After (as a project-wide FCM 429 pauses push);
5xx, timeouts and connection errors are retried with backoff. Numbers are masked in every log
line outside dev mode, and message bodies are never logged."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import socket
from urllib.parse import quote

import aiohttp
import asyncpg

from kernel.logs import EventLog
from workers.delivery.outbox import Failed, Held, Job, Outcome, Retry, Sent, Skipped, pause_channel
from workers.delivery.push import parse_retry_after

log = EventLog("workers.delivery.sms")

# Twilio's longest Body (longer ones are refused with 21617).
MAX_BODY = 1600
# A 429 that names no Retry-After still slows every worker down this long.
RATE_LIMIT_DELAY_S = 60.0
# What Twilio's error codes mean, for last_error; the provider's own message is not kept, as it
# may quote the number.
KNOWN_CODES = {
    21211: "invalid 'To' phone number",
    21610: "recipient unsubscribed (replied STOP)",
    21614: "'To' number is not a mobile number",
    21408: "no permission to send to this region",
    21617: "message body too long",
}


def mask_phone(phone: str) -> str:
    """`+998901234567` -> `+9*********67`: enough to tell numbers apart in a log, not to dial."""
    if len(phone) <= 4:
        return "*" * len(phone)
    return phone[:2] + "*" * (len(phone) - 4) + phone[-2:]


def sms_body(job: Job) -> str:
    """The text: title, message and link of the notification, at most MAX_BODY characters."""
    parts = [p.strip() for p in (job.title, job.message, job.action_url) if p and p.strip()]
    body = "\n".join(parts) or (job.notification_type or "notification").replace("_", " ")
    return body if len(body) <= MAX_BODY else body[: MAX_BODY - 1] + "…"


def _error_code(text: str) -> int | None:
    try:
        body = json.loads(text)
    except (TypeError, ValueError):
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def _sid(text: str) -> str | None:
    try:
        body = json.loads(text)
    except (TypeError, ValueError):
        return None
    sid = body.get("sid") if isinstance(body, dict) else None
    return str(sid) if sid else None


class SmsSender:
    """The 'sms' channel; `await aclose()` it after use. `concurrency` requests at once (one
    pooled aiohttp session per worker), and as many SMS jobs in flight per worker.
    `reveal_numbers` (dev mode) logs numbers in full; otherwise they are masked."""

    channel = "sms"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        base_url: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        concurrency: int = 16,
        timeout_s: float = 10.0,
        reveal_numbers: bool = False,
    ) -> None:
        self.pool = pool
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{quote(account_sid, safe='')}"
        self.url += "/Messages.json"
        self.sender = sender
        self.reveal_numbers = reveal_numbers
        basic = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {basic}"}
        self._session: aiohttp.ClientSession | None = None
        self._sends = asyncio.Semaphore(self.concurrency)
        self._paused_until: dt.datetime | None = None  # scope 'sms', as this process knows it
        self._me = f"{socket.gethostname()}:{os.getpid()}"

    def _shown(self, phone: str) -> str:
        return phone if self.reveal_numbers else mask_phone(phone)

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the worker's event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=self.concurrency),
            )
        return self._session

    async def aclose(self) -> None:
        """Close the HTTP connections (after the jobs in hand are finished)."""
        if self._session is not None:
            await self._session.close()

    def paused_until(self, now: dt.datetime) -> dt.datetime | None:
        """The end of the provider's pause as this process knows it, if it has not passed."""
        until = self._paused_until
        return until if until is not None and now < until else None

    async def deliver(self, job: Job, now: dt.datetime) -> Outcome:
        until = self.paused_until(now)
        if until is not None:
            return Held(until, "SMS provider asked us to slow down")
        if not job.user_active:
            return Skipped("user is inactive or deleted")
        if job.notification_read:
            return Skipped("read in-app before the SMS went out")
        if not job.phone:
            return Skipped("no phone number")
        form = {"To": job.phone, "From": self.sender, "Body": sms_body(job)}
        async with self._sends:
            # A 429 answered while this job waited for a free send holds it too.
            until = self.paused_until(now)
            if until is not None:
                return Held(until, "SMS provider asked us to slow down")
            try:
                async with self._client().post(self.url, data=form, headers=self._headers) as reply:
                    status, text = reply.status, await reply.text()
                    retry_after = reply.headers.get("Retry-After")
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                return Retry(f"SMS provider unreachable: {type(exc).__name__}")
        return await self._conclude(job, status, text, retry_after, now)

    async def _conclude(
        self, job: Job, status: int, text: str, retry_after: str | None, now: dt.datetime
    ) -> Outcome:
        wait = parse_retry_after(retry_after) if retry_after is not None else None
        if 200 <= status < 300:
            return Sent(provider_message_id=_sid(text))
        if status == 429:
            wait = wait if wait is not None else RATE_LIMIT_DELAY_S
            detail = f"SMS provider 429, Retry-After {wait:g} s"
            await self._pause(now + dt.timedelta(seconds=wait), detail)
            return Retry(detail, after_s=wait)
        if status >= 500:
            detail = f"SMS provider {status}" + (
                "" if wait is None else f", Retry-After {wait:g} s"
            )
            if wait is not None:  # overloaded, and it said for how long: for everyone
                await self._pause(now + dt.timedelta(seconds=wait), detail)
            return Retry(detail, after_s=wait)
        if status == 401:
            return Retry("SMS provider 401: account SID or auth token refused")
        code = _error_code(text)
        meaning = KNOWN_CODES.get(code or 0, "request refused")
        log.warning(
            "sms_refused", job=job.id, to=self._shown(job.phone or ""), status=status, code=code
        )
        return Failed(f"SMS provider {status} code {code}: {meaning}")

    async def _pause(self, until: dt.datetime, reason: str) -> None:
        """Hold this process's SMS and tell every worker (gateway.delivery_pauses, scope 'sms')
        that none claims SMS before `until`; a shorter pause never shortens a longer one."""
        if self._paused_until is not None and until <= self._paused_until:
            return
        self._paused_until = until
        log.warning("sms_paused", until=until.isoformat(), reason=reason)
        try:
            await pause_channel(self.pool, "sms", until, reason, self._me)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.error("sms_pause_not_shared", error=repr(exc))  # this process still holds
