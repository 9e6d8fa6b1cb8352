"""Push delivery through FCM HTTP v1 with pyfcm: one message per device of the user, in a
bounded thread pool (pyfcm blocks), each under a deadline. The retry policy is ours: pyfcm's
HTTP adapter is replaced by one that never retries and ends a call that carries Retry-After
(pyfcm would sleep in its thread and POST again, forever for a 429). Tokens FCM calls dead
are deleted; a project-wide 429 pauses every push until its Retry-After has passed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import json
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import asyncpg
import requests
from pyfcm import FCMNotification
from pyfcm.errors import (
    FCMError,
    FCMNotRegisteredError,
    FCMSenderIdMismatchError,
    InvalidDataError,
)
from requests.adapters import HTTPAdapter

from kernel.logs import EventLog
from workers.delivery.outbox import Failed, Held, Job, Outcome, Retry, Sent, Skipped

log = EventLog("workers.delivery.push")

MAX_RETRY_AFTER_S = 3600.0


class RetryAfterReply(Exception):
    """FCM answered `status` with Retry-After: try again no sooner than `delay_s`."""

    def __init__(self, status: int, delay_s: float) -> None:
        super().__init__(f"FCM {status}, Retry-After {delay_s:g} s")
        self.status = status
        self.delay_s = delay_s


def parse_retry_after(value: str, now: dt.datetime | None = None) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), within [0, 1 h]."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 0.0
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class OwnRetryAdapter(HTTPAdapter):
    """An adapter with no retries of its own that raises RetryAfterReply for an error reply
    carrying Retry-After, before pyfcm can see (and sleep on) it."""

    def __init__(self, pool_maxsize: int) -> None:
        super().__init__(max_retries=0, pool_connections=1, pool_maxsize=pool_maxsize)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().send(request, *args, **kwargs)
        retry_after = response.headers.get("Retry-After")
        if response.status_code >= 400 and retry_after is not None:
            response.close()
            raise RetryAfterReply(response.status_code, parse_retry_after(retry_after))
        return response


# --- one device ---------------------------------------------------------------------------------

Verdict = Literal["sent", "dead", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class DeviceResult:
    device_id: uuid.UUID
    verdict: Verdict
    detail: str  # the FCM message name when sent, else why not
    retry_after_s: float | None = None
    project_wide: bool = False  # a 429: the quota of the whole project


def _fcm_error(text: str) -> dict[str, Any] | None:
    try:
        body = json.loads(text)
    except (TypeError, ValueError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def token_is_dead(error: dict[str, Any]) -> bool:
    """Whether a 400 body blames the registration token (FCM uses INVALID_ARGUMENT for a bad
    token and for a bad payload alike; the field violation or the message tells them apart)."""
    details = [d for d in error.get("details", []) if isinstance(d, dict)]
    codes = {d.get("errorCode") for d in details}
    if "UNREGISTERED" in codes:
        return True
    if "INVALID_ARGUMENT" not in codes and error.get("status") != "INVALID_ARGUMENT":
        return False
    fields = {
        v.get("field") for d in details for v in d.get("fieldViolations", []) if isinstance(v, dict)
    }
    return "message.token" in fields or "registration token" in str(error.get("message", ""))


def classify(device_id: uuid.UUID, exc: BaseException) -> DeviceResult:
    """What a failed send means for this device and this job."""
    match exc:
        case RetryAfterReply():
            return DeviceResult(
                device_id, "retry", str(exc), exc.delay_s, project_wide=exc.status == 429
            )
        case FCMNotRegisteredError():
            return DeviceResult(device_id, "dead", "FCM 404 UNREGISTERED")
        case FCMSenderIdMismatchError():
            return DeviceResult(device_id, "dead", "FCM 403 SENDER_ID_MISMATCH")
        case InvalidDataError():
            error = _fcm_error(str(exc))
            if error is None:  # not an FCM reply: the OAuth token could not be fetched
                return DeviceResult(device_id, "retry", f"FCM credentials: {exc}"[:500])
            if token_is_dead(error):
                return DeviceResult(device_id, "dead", "FCM 400 INVALID_ARGUMENT (token)")
            return DeviceResult(device_id, "failed", f"FCM 400 {error.get('message', '')}"[:500])
        case FCMError() | requests.RequestException() | OSError() | TimeoutError():
            return DeviceResult(device_id, "retry", f"{type(exc).__name__}: {exc}"[:500])
    raise exc


def fcm_message(job: Job) -> dict[str, Any]:
    """pyfcm.notify keyword arguments for this job's notification (without the token). The
    collapse keys make a duplicate send (after a lost reply) replace the first on the device."""
    urgent = job.priority in ("high", "urgent")
    data = {
        "notification_id": str(job.notification_id),
        "notification_type": job.notification_type or "",
        "priority": job.priority,
    }
    if job.action_url:
        data["action_url"] = job.action_url
    collapse = str(job.notification_id)
    return {
        "notification_title": job.title or "",
        "notification_body": job.message or "",
        "data_payload": data,
        "android_config": {"priority": "high" if urgent else "normal", "collapse_key": collapse},
        "apns_config": {
            "headers": {"apns-priority": "10" if urgent else "5", "apns-collapse-id": collapse}
        },
        "webpush_config": {"headers": {"Topic": collapse.replace("-", "")}},
    }


# --- the channel ------------------------------------------------------------------------------


class PushSender:
    """The 'push' channel; `close()` it after use."""

    channel = "push"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        credentials_file: str,
        project_id: str | None,
        base_url: str,
        deadline_s: float = 10.0,
        threads: int = 16,
    ) -> None:
        self.pool = pool
        self.deadline_s = deadline_s
        self._fcm: Any = FCMNotification(
            service_account_file=credentials_file,
            project_id=project_id,
            adapter=OwnRetryAdapter(pool_maxsize=threads),
        )
        # Read when the endpoint is first built (and cached): set before any send.
        self._fcm.FCM_END_POINT_BASE = base_url.rstrip("/")
        # Building the endpoint loads the service account (a file, no network). Done here,
        # once: pyfcm's lazy load races when several threads send first.
        self.endpoint: str = self._fcm.fcm_end_point
        self._executor = concurrent.futures.ThreadPoolExecutor(threads, "fcm")
        self._paused_until: dt.datetime | None = None

    def close(self) -> None:
        """Stop the threads (a send still running finishes within its deadline)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def deliver(self, job: Job, now: dt.datetime) -> Outcome:
        if self._paused_until is not None and now < self._paused_until:
            return Held(self._paused_until, "FCM asked to slow down")
        if not job.user_active:
            return Skipped("user is inactive or deleted")
        if job.notification_read:
            return Skipped("read in-app before the push went out")
        devices = await self.pool.fetch(
            """SELECT id, token FROM gateway.push_devices
                WHERE user_id = $1 AND NOT (id = ANY ($2::uuid[])) ORDER BY created_at""",
            job.user_id,
            list(job.sent_device_ids),
        )
        if not devices:
            if job.sent_device_ids:
                return Sent(sent_device_ids=job.sent_device_ids)
            return Skipped("no push devices")
        message = fcm_message(job)
        results = await asyncio.gather(*(self._send(r["id"], r["token"], message) for r in devices))
        return await self._conclude(job, list(results), now)

    async def _send(
        self, device_id: uuid.UUID, token: str, message: dict[str, Any]
    ) -> DeviceResult:
        call = functools.partial(
            self._fcm.notify, fcm_token=token, timeout=self.deadline_s, **message
        )
        future = asyncio.get_running_loop().run_in_executor(self._executor, call)
        try:
            # requests' own timeout is per read; this bounds the whole call. A call abandoned
            # here ends in its thread within the requests timeout.
            reply = await asyncio.wait_for(future, self.deadline_s + 1.0)
        except TimeoutError:
            return DeviceResult(device_id, "retry", f"no FCM reply within {self.deadline_s:g} s")
        except Exception as exc:
            return classify(device_id, exc)
        return DeviceResult(device_id, "sent", str(reply.get("name", "")))

    async def _conclude(self, job: Job, results: list[DeviceResult], now: dt.datetime) -> Outcome:
        dead = [r.device_id for r in results if r.verdict == "dead"]
        if dead:
            await self.pool.execute(
                "DELETE FROM gateway.push_devices WHERE id = ANY ($1::uuid[])", dead
            )
            log.info("dead_tokens_deleted", job=job.id, user=job.user_id, count=len(dead))
        sent = [r for r in results if r.verdict == "sent"]
        sent_ids = [*job.sent_device_ids, *(r.device_id for r in sent)]
        retries = [r for r in results if r.verdict == "retry"]
        failures = [r for r in results if r.verdict == "failed"]
        if retries:
            waits = [r.retry_after_s for r in retries if r.retry_after_s is not None]
            if any(r.project_wide for r in retries) and waits:
                self._paused_until = now + dt.timedelta(seconds=max(waits))
            return Retry(
                "; ".join(r.detail for r in retries),
                after_s=max(waits) if waits else None,
                sent_device_ids=sent_ids,
            )
        if sent_ids:
            name = sent[0].detail if sent else None
            return Sent(provider_message_id=name, sent_device_ids=sent_ids)
        if failures:
            return Failed(failures[0].detail)
        return Skipped("every device token was dead (deleted)")
