"""Push delivery through FCM HTTP v1 with pyfcm: one message per device of the user, in a
thread pool sized to FCM_CONCURRENCY (pyfcm blocks), each under a deadline.

How pyfcm 2.x sends (read in its baseapi.py) and what we change:
- it keeps one `requests.Session` per thread (`thread_local`), all mounting the adapter we
  pass, so the HTTP connection pool (keep-alive) is one for the whole process and reused;
- but each thread fetched an OAuth token of its own on its first send and then every 30 min
  (and refreshed it again on every session set-up): `FcmClient` makes every thread share one
  google-auth token, refreshed once when it is about to expire or FCM rejects it (401);
- requests, as pyfcm uses it, reads every proxy variable of the environment and ~/.netrc
  again on each request: the sessions read them once;
- it sleeps in its thread and POSTs again whenever a reply carries Retry-After (forever for a
  429, and for a 200 too), and its default adapter retries 502/503 POSTs by itself:
  `OwnRetryAdapter` never retries and ends 401, 429 and 5xx replies (with their body and
  Retry-After) before pyfcm sees them. The outbox's policy decides what happens next.

A 429 is read the way FCM documents it: a device's message-rate quota (the reply's QuotaFailure
or message names the device) pauses that token only; anything else (the project's quota,
overload) pauses the whole project. A 5xx with Retry-After pauses the project too. A project
pause is written to gateway.delivery_pauses, so no worker claims pushes until it ends, and it
holds (without counting an attempt) the pushes this process already has in hand."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import asyncpg
import google.auth.transport.requests
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
from workers.delivery.outbox import (
    Failed,
    Held,
    Job,
    Outcome,
    Retry,
    Sent,
    Skipped,
    pause_channel,
)

log = EventLog("workers.delivery.push")

MAX_RETRY_AFTER_S = 3600.0
# FCM: "use exponential backoff with a minimum initial delay of 1 minute" after the project's
# message rate was exceeded; used when such a 429 names no Retry-After.
PROJECT_QUOTA_DELAY_S = 60.0
# Paused tokens remembered at most (expired ones are dropped first).
MAX_PAUSED_TOKENS = 100_000


class ProviderReply(Exception):
    """FCM answered `status` (401, 429, 5xx, or anything else with Retry-After); ended in the
    adapter, before pyfcm could sleep or retry on it."""

    def __init__(self, status: int, retry_after_s: float | None, body: str) -> None:
        wait = "" if retry_after_s is None else f", Retry-After {retry_after_s:g} s"
        super().__init__(f"FCM {status}{wait}")
        self.status = status
        self.retry_after_s = retry_after_s
        self.body = body


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
    """An adapter with no retries of its own that raises ProviderReply for 401, 429, 5xx and
    any error reply carrying Retry-After, and strips Retry-After from other replies (pyfcm
    would sleep on it and send the message again)."""

    def __init__(self, pool_maxsize: int) -> None:
        super().__init__(max_retries=0, pool_connections=1, pool_maxsize=pool_maxsize)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().send(request, *args, **kwargs)
        status = response.status_code
        retry_after = response.headers.get("Retry-After")
        if status in (401, 429) or status >= 500 or (status >= 400 and retry_after is not None):
            body = response.text[:8000]
            response.close()
            wait = parse_retry_after(retry_after) if retry_after is not None else None
            raise ProviderReply(status, wait, body)
        if retry_after is not None:
            del response.headers["Retry-After"]
        return response


class FcmClient(FCMNotification):  # type: ignore[misc]  # pyfcm has no type hints
    """pyfcm's FCMNotification with one OAuth token shared by every sending thread.

    pyfcm's own `requests_session` gives each thread a session whose Authorization header it
    refreshes every 30 minutes from a token fetched for that thread alone; here each thread's
    session (on the shared adapter, so one connection pool) carries the current shared token.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token_lock = threading.Lock()
        self._rejected_token: str | None = None
        self._auth_session = requests.Session()
        self.tokens_fetched = 0

    def _get_access_token(self) -> str:
        with self._token_lock:
            if self.credentials is None:
                self._initialize_credentials()
            credentials = self.credentials
            if not credentials.valid or credentials.token == self._rejected_token:
                try:
                    credentials.refresh(
                        google.auth.transport.requests.Request(session=self._auth_session)
                    )
                except Exception as exc:  # as pyfcm does: InvalidDataError without a body
                    raise InvalidDataError(exc) from exc
                self.tokens_fetched += 1
                self._rejected_token = None
            return str(credentials.token)

    def reject_token(self, authorization: str | None) -> None:
        """FCM answered 401 to a request carrying `authorization`: fetch a new token."""
        if authorization and authorization.startswith("Bearer "):
            with self._token_lock:
                self._rejected_token = authorization.removeprefix("Bearer ")

    @property
    def requests_session(self) -> requests.Session:
        local = self.thread_local
        session: requests.Session | None = getattr(local, "requests_session", None)
        if session is None:
            session = requests.Session()
            session.mount("http://", self.custom_adapter)
            session.mount("https://", self.custom_adapter)
            # requests reads every proxy variable of the environment (and ~/.netrc) again on
            # each request, most of a send's CPU: read them once here instead.
            session.trust_env = False
            session.proxies.update(requests.utils.get_environ_proxies(self.fcm_end_point))
            ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if ca_bundle:
                session.verify = ca_bundle
            local.requests_session = session
        authorization = "Bearer " + self._get_access_token()
        if session.headers.get("Authorization") != authorization:
            session.headers.update(
                {"Content-Type": "application/json", "Authorization": authorization}
            )
        return session

    def current_authorization(self) -> str | None:
        session: requests.Session | None = getattr(self.thread_local, "requests_session", None)
        value = session.headers.get("Authorization") if session is not None else None
        return str(value) if value is not None else None


# --- one device ---------------------------------------------------------------------------------

Verdict = Literal["sent", "dead", "retry", "failed", "held"]
Scope = Literal["device", "project"]


@dataclass(frozen=True, slots=True)
class DeviceResult:
    device_id: uuid.UUID
    verdict: Verdict
    detail: str  # the FCM message name when sent, else why not
    retry_after_s: float | None = None
    # What a retry-after applies to: this device's token, or every push of the project.
    scope: Scope | None = None
    until: dt.datetime | None = None  # held: the token's pause ends then


class ProjectPaused(Exception):
    """Not sent: the project is paused (checked in the sending thread, just before the POST)."""


class Classified(Exception):
    """A failed send, classified in its thread; `paused_project` is the project's new pause
    end when this reply set or extended it."""

    def __init__(self, result: DeviceResult, paused_project: dt.datetime | None) -> None:
        super().__init__(result.detail)
        self.result = result
        self.paused_project = paused_project


def _fcm_error(text: str) -> dict[str, Any] | None:
    try:
        body = json.loads(text)
    except (TypeError, ValueError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in error.get("details", []) if isinstance(d, dict)]


def token_is_dead(error: dict[str, Any]) -> bool:
    """Whether a 400 body blames the registration token (FCM uses INVALID_ARGUMENT for a bad
    token and for a bad payload alike; the field violation or the message tells them apart)."""
    details = _details(error)
    codes = {d.get("errorCode") for d in details}
    if "UNREGISTERED" in codes:
        return True
    if "INVALID_ARGUMENT" not in codes and error.get("status") != "INVALID_ARGUMENT":
        return False
    fields = {
        v.get("field") for d in details for v in d.get("fieldViolations", []) if isinstance(v, dict)
    }
    return "message.token" in fields or "registration token" in str(error.get("message", ""))


def quota_scope(body: str) -> Scope:
    """Whose quota a 429 is about. FCM answers QUOTA_EXCEEDED for the project's message rate,
    a device's message rate and a topic's alike; the QuotaFailure violations and the message
    say which. Only a reply that names the device is scoped to its token: anything else (the
    project's quota, overload, an unreadable body) slows the whole project."""
    error = _fcm_error(body)
    if error is None:
        return "project"
    words = [str(error.get("message", ""))]
    for detail in _details(error):
        if str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            for v in detail.get("violations", []):
                if isinstance(v, dict):
                    words += [str(v.get("subject", "")), str(v.get("description", ""))]
    text = " ".join(words).lower()
    return "device" if "device" in text else "project"


def classify(device_id: uuid.UUID, exc: BaseException) -> DeviceResult:
    """What a failed send means for this device and this job."""
    match exc:
        case ProviderReply(status=429):
            scope = quota_scope(exc.body)
            wait = exc.retry_after_s
            if wait is None and scope == "project":
                wait = PROJECT_QUOTA_DELAY_S
            detail = f"{exc} ({'device' if scope == 'device' else 'project'} quota)"
            return DeviceResult(device_id, "retry", detail, wait, scope)
        case ProviderReply(status=401):
            return DeviceResult(device_id, "retry", "FCM 401: access token refused (renewed)")
        case ProviderReply():
            # 5xx: overloaded or failing; with Retry-After, for everyone (FCM: honour it).
            paused: Scope | None = None
            if exc.retry_after_s is not None and exc.status >= 500:
                paused = "project"
            return DeviceResult(device_id, "retry", str(exc), exc.retry_after_s, paused)
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
    """The 'push' channel; `close()` it after use. `concurrency` sends (threads, pooled HTTP
    connections) at once, and as many push jobs in flight per worker."""

    channel = "push"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        credentials_file: str,
        project_id: str | None,
        base_url: str,
        deadline_s: float = 10.0,
        concurrency: int = 32,
    ) -> None:
        self.pool = pool
        self.deadline_s = deadline_s
        self.concurrency = max(1, concurrency)
        self._fcm = FcmClient(
            service_account_file=credentials_file,
            project_id=project_id,
            adapter=OwnRetryAdapter(pool_maxsize=self.concurrency),
        )
        # Read when the endpoint is first built (and cached): set before any send.
        self._fcm.FCM_END_POINT_BASE = base_url.rstrip("/")
        # Building the endpoint loads the service account (a file, no network). Done here,
        # once: pyfcm's lazy load races when several threads send first.
        self.endpoint: str = self._fcm.fcm_end_point
        self._executor = concurrent.futures.ThreadPoolExecutor(self.concurrency, "fcm")
        self._sends = asyncio.Semaphore(self.concurrency)
        self._paused_until: dt.datetime | None = None  # the project, as this process knows it
        self._token_paused: dict[str, dt.datetime] = {}
        self._pause_lock = threading.Lock()
        self._me = f"{socket.gethostname()}:{os.getpid()}"

    @property
    def tokens_fetched(self) -> int:
        """OAuth tokens fetched so far (one per hour or so, whatever the thread count)."""
        return int(self._fcm.tokens_fetched)

    def close(self) -> None:
        """Stop the threads (a send still running finishes within its deadline)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def paused_until(self, now: dt.datetime) -> dt.datetime | None:
        """The end of the project's pause as this process knows it, if it has not passed."""
        until = self._paused_until
        return until if until is not None and now < until else None

    async def deliver(self, job: Job, now: dt.datetime) -> Outcome:
        until = self.paused_until(now)
        if until is not None:
            return Held(until, "FCM asked the project to slow down")
        if not job.user_active:
            return Skipped("user is inactive or deleted")
        if job.notification_read:
            return Skipped("read in-app before the push went out")
        if not job.devices:
            if job.sent_device_ids:
                return Sent(sent_device_ids=job.sent_device_ids)
            return Skipped("no push devices")
        message = fcm_message(job)
        results = await asyncio.gather(
            *(self._send(device, token, message, now) for device, token in job.devices)
        )
        return await self._conclude(job, list(results), now)

    async def _send(
        self, device_id: uuid.UUID, token: str, message: dict[str, Any], now: dt.datetime
    ) -> DeviceResult:
        token_until = self._token_paused.get(token)
        if token_until is not None and now < token_until:
            return DeviceResult(device_id, "held", "FCM device quota", until=token_until)
        fcm = self._fcm

        def call() -> Any:
            # In the thread, just before the POST: a pause set while this waited for a thread
            # holds it (hundreds may be queued behind the reply that set it).
            if self.paused_until(now) is not None:
                raise ProjectPaused
            try:
                return fcm.notify(fcm_token=token, timeout=self.deadline_s, **message)
            except Exception as exc:
                if isinstance(exc, ProviderReply) and exc.status == 401:
                    fcm.reject_token(fcm.current_authorization())
                result = classify(device_id, exc)  # re-raises what it does not know
                # Noted here, in the thread, so that no send that starts after this reply
                # (in any thread) misses the pause.
                raise Classified(result, self._pause_locally(token, result, now)) from exc

        try:
            async with self._sends:  # a thread is free: the deadline counts from here
                future = asyncio.get_running_loop().run_in_executor(self._executor, call)
                # requests' own timeout is per read; this bounds the whole call. A call
                # abandoned here ends in its thread within the requests timeout.
                reply = await asyncio.wait_for(future, self.deadline_s + 1.0)
        except TimeoutError:
            return DeviceResult(device_id, "retry", f"no FCM reply within {self.deadline_s:g} s")
        except ProjectPaused:
            until = self.paused_until(now) or now
            return DeviceResult(
                device_id, "held", "FCM asked the project to slow down", until=until
            )
        except Classified as classified:
            if classified.paused_project is not None:
                await self._share_pause(classified.paused_project, classified.result.detail)
            return classified.result
        except Exception as exc:
            return classify(device_id, exc)  # raised before the call ran (re-raises others)
        return DeviceResult(device_id, "sent", str(reply.get("name", "")))

    def _pause_locally(
        self, token: str, result: DeviceResult, now: dt.datetime
    ) -> dt.datetime | None:
        """Remember what a reply with a retry-after pauses: the token, or the project. Returns
        the project's new pause end when this reply extended it (for the other workers)."""
        if result.retry_after_s is None or result.scope is None:
            return None
        until = now + dt.timedelta(seconds=result.retry_after_s)
        with self._pause_lock:
            if result.scope == "device":
                if len(self._token_paused) >= MAX_PAUSED_TOKENS:
                    self._token_paused = {t: u for t, u in self._token_paused.items() if u > now}
                self._token_paused[token] = max(until, self._token_paused.get(token, until))
                return None
            if self._paused_until is not None and until <= self._paused_until:
                return None  # already paused as long (many replies of one burst say the same)
            self._paused_until = until
            return until

    async def _share_pause(self, until: dt.datetime, reason: str) -> None:
        """Tell every worker (gateway.delivery_pauses): none claims pushes before `until`."""
        log.warning("fcm_project_paused", until=until.isoformat(), reason=reason)
        try:
            await pause_channel(self.pool, "push", until, reason, self._me)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.error("fcm_pause_not_shared", error=repr(exc))  # this process still holds

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
        held = [r for r in results if r.verdict == "held"]
        failures = [r for r in results if r.verdict == "failed"]
        if retries:
            waits = [r.retry_after_s for r in retries if r.retry_after_s is not None]
            return Retry(
                "; ".join(r.detail for r in retries),
                after_s=max(waits) if waits else None,
                sent_device_ids=sent_ids,
            )
        if held:
            until = max(r.until or now for r in held)
            return Held(until, held[0].detail, sent_device_ids=sent_ids)
        if sent_ids:
            name = sent[0].detail if sent else None
            return Sent(provider_message_id=name, sent_device_ids=sent_ids)
        if failures:
            return Failed(failures[0].detail)
        return Skipped("every device token was dead (deleted)")
