"""Locust load test of the aichat realm on a running stack: users talking with the assistant
in their conversations (a prompt, the streamed reply), stopping replies, reading history.

Seed first (`python -m loadtests.seed_aichat ...`), start the stack (`make run`; without
AICHAT_OPENAI_* the labelled offline provider answers, paced by AICHAT_LOCAL_DELAY_MS), then:

    locust -f loadtests/locust_aichat.py --headless -u 200 -r 50 -t 60s \\
        --host http://127.0.0.1:8080 --aichat-gateway-url ws://127.0.0.1:8765/ws \\
        --csv loadtests/results/locust_aichat

`--host` is the REST API. Every option is prefixed `--aichat-`, so this file runs alongside
the others (`-f loadtests/locustfile.py,loadtests/locust_aichat.py`). AichatUser logs in over
REST (/v1/aichat/auth/login, refreshing its access token before it expires), holds one
WebSocket, joins one of its seeded conversations, and every `--aichat-wait-min`..
`--aichat-wait-max` seconds mostly asks the assistant something and waits for the whole
reply; now and then it stops a reply after its first piece (`cancel`), reads history over
the socket or REST, looks at its month's usage, or opens a new conversation over REST.

Measurements (request type "WS"): `connect`, `join`, `send (ack)`, `send-to-receive (own
echo)`, `first delta (send-to-first-token)`, `reply (send-to-committed)` (the assistant's
committed message), `cancel`, `cancelled reply (cancel-to-committed)`, `history`, `refresh`;
failures `reply failed` (the provider's `reply_failed`), `connection lost`.
"""

from __future__ import annotations

import random
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import gevent
from gevent.event import AsyncResult
from locust import task

from loadtests.credential_pools import Credential, CredentialPools, Option, SeededCredentials
from loadtests.realm_users import WS_ERRORS, SocketUser
from loadtests.ws_user import ChatSocket, Frame, WsRefused, _decode

DEFAULT_CREDENTIALS = Path(__file__).resolve().parent / "results" / "aichat_credentials.csv"
PROMPTS = (
    "What is a good first book about astronomy?",
    "Explain recursion with a short example.",
    "Summarise the plot of Hamlet in three sentences.",
    "How do I keep basil alive indoors?",
    "Give me three names for a grey cat.",
    "What is the difference between TCP and UDP?",
    "Suggest a 20-minute workout without equipment.",
)
LONG_PROMPT = "Write a long essay about the history of the printing press, in detail."


def _options(option: Option) -> None:
    option("--aichat-gateway-url", "ws://127.0.0.1:8765/ws", "the gateway's WebSocket URL")
    option("--aichat-credentials", str(DEFAULT_CREDENTIALS), "CSV from loadtests.seed_aichat")
    option("--aichat-wait-min", 3.0, "seconds between a user's actions, at least", float)
    option("--aichat-wait-max", 10.0, "seconds between a user's actions, at most", float)
    option("--aichat-ws-timeout", 10.0, "seconds to wait for a WebSocket reply", float)
    option("--aichat-reply-timeout", 60.0, "seconds to wait for a whole streamed reply", float)
    option("--aichat-conversations", 5, "conversations a user keeps open at most", int)


def _pools(rows: list[Credential], worker_index: int) -> CredentialPools:
    """The seeded users, shuffled per worker process."""
    random.Random(3000 + worker_index).shuffle(rows)
    return CredentialPools({"user": rows}, "the aichat credentials file has no {pool}s")


SEEDED = SeededCredentials(
    "aichat_credentials", DEFAULT_CREDENTIALS, "python -m loadtests.seed_aichat", _pools
)
SEEDED.register(_options)


class StreamedReply:
    """What the socket has seen of the reply to one prompt (keyed by the prompt's id)."""

    __slots__ = ("deltas", "done", "first", "first_at", "reply_id")

    def __init__(self) -> None:
        self.deltas = 0
        self.first_at: float | None = None  # perf_counter of the first delta
        self.reply_id = ""
        self.first: AsyncResult[str] = AsyncResult()  # the reply id, at the first delta
        self.done: AsyncResult[Frame] = AsyncResult()  # the committed msg, or reply_failed


class AssistantSocket(ChatSocket):
    """ChatSocket that also follows the replies streamed to this user's prompts: `delta`
    and `reply_failed` events and the assistant's committed `msg` (the reader greenlet
    records them; `ask` and `ask_and_cancel` wait on them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replies: dict[str, StreamedReply] = {}

    def _reply(self, prompt_id: str) -> StreamedReply:
        if len(self.replies) > 1000:  # leftovers of replies no one waits for any more
            self.replies.clear()
        return self.replies.setdefault(prompt_id, StreamedReply())

    def _on_message(self, payload: bytes) -> None:
        if payload.startswith(b'{"op":"event"') and (
            b'"kind":"delta"' in payload or b'"kind":"reply_failed"' in payload
        ):
            self.received += 1
            frame = _decode(payload)
            reply = self._reply(str(frame.get("reply_to")))
            if frame.get("kind") == "delta":
                reply.deltas += 1
                if reply.first_at is None:
                    reply.first_at = time.perf_counter()
                    reply.reply_id = str(frame.get("id"))
                    reply.first.set(reply.reply_id)
            elif reply.deltas == 0 and not reply.done.ready():
                reply.done.set(frame)  # nothing streamed: no message follows
            return
        if payload.startswith(b'{"op":"msg"') and b'"role":"assistant"' in payload:
            frame = _decode(payload)
            reply = self._reply(str(frame.get("reply_to")))
            if not reply.done.ready():
                reply.done.set(frame)
        super()._on_message(payload)

    def _wait(self, result: AsyncResult[Any], timeout: float, what: str) -> Any:
        try:
            return result.get(timeout=timeout)
        except gevent.Timeout:
            raise TimeoutError(f"no {what} within {timeout:g} s") from None

    def ask(self, channel: str, text: str, reply_timeout: float) -> Frame | None:
        """Send a prompt and wait for the whole reply; fires `first delta
        (send-to-first-token)` and `reply (send-to-committed)`, or `reply failed`."""
        started = time.perf_counter()
        ack = self.send_message(channel, text)
        prompt_id = str(ack["id"])
        reply = self._reply(prompt_id)
        try:
            done = self._wait(reply.done, reply_timeout, "reply")
        except TimeoutError as exc:
            self._fire("reply (send-to-committed)", started, exception=exc)
            return None
        finally:
            self.replies.pop(prompt_id, None)
        return self._report(done, reply, started)

    def _report(self, done: Frame, reply: StreamedReply, started: float) -> Frame | None:
        if done.get("op") == "event":  # reply_failed before any text
            failed = RuntimeError(str(done.get("message")))
            self._fire("reply failed", started, exception=failed)
            return None
        if reply.first_at is not None:
            self.fire(
                request_type="WS",
                name="first delta (send-to-first-token)",
                response_time=(reply.first_at - started) * 1000,
                response_length=0,
                exception=None,
                context={},
            )
        self._fire("reply (send-to-committed)", started, length=reply.deltas)
        return done

    def ask_and_cancel(self, channel: str, reply_timeout: float) -> Frame | None:
        """Send a prompt, `cancel` its reply at the first delta, and wait for the partial
        reply to be committed; fires `cancel` and `cancelled reply (cancel-to-committed)`."""
        ack = self.send_message(channel, LONG_PROMPT)
        prompt_id = str(ack["id"])
        reply = self._reply(prompt_id)
        asked = time.perf_counter()
        try:
            try:
                reply_id = self._wait(reply.first, reply_timeout, "first delta")
            except TimeoutError as exc:
                self._fire("first delta (send-to-first-token)", asked, exception=exc)
                raise
            started = time.perf_counter()
            try:
                self.request({"op": "cancel", "channel": channel, "id": reply_id}, "cancel")
            except WsRefused as refused:
                if refused.code != "conflict":  # conflict: it ended before the cancel came
                    raise
            done = self._wait(reply.done, reply_timeout, "cancelled reply")
        finally:
            self.replies.pop(prompt_id, None)
        self._fire("cancelled reply (cancel-to-committed)", started, length=reply.deltas)
        return dict(done)


class AichatUser(SocketUser):
    """One aichat user: a REST session (login, refresh) and one socket in a conversation."""

    host = "http://127.0.0.1:8080"
    seeded = SEEDED
    pool = "user"
    login_path = "/v1/aichat/auth/login"
    refresh_path = "/v1/aichat/auth/refresh"
    option_prefix = "aichat_"
    socket_class = AssistantSocket
    reports_overdue_echoes = False
    socket: AssistantSocket

    def wait_time(self) -> float:
        return random.uniform(self.options.aichat_wait_min, self.options.aichat_wait_max)

    def recv_sample(self) -> float:
        return 0.0  # the assistant's messages are timed as replies to their prompts

    def choose_channels(self) -> None:
        self.channels = list(self.cred.channels)  # the user's aichat.conv:<id> channels
        if not self.channels:
            self.open_conversation()
        self.channel = random.choice(self.channels)

    def channels_to_join(self) -> list[str]:
        return [self.channel]

    def open_conversation(self) -> None:
        response = self.client.post(
            "/v1/aichat/conversations",
            json={"model": "gpt-4o", "title": "Locust conversation"},
            headers=self.auth(),
            name="/v1/aichat/conversations (create)",
        )
        if response.status_code == 201:
            self.channels.append(response.json()["channel"])

    @task(10)
    def ask(self) -> None:
        if not self.ready():
            return
        try:
            self.socket.ask(self.channel, random.choice(PROMPTS), self.options.aichat_reply_timeout)
        except WsRefused as refused:
            if refused.code in ("rate_limited", "unavailable"):  # reported; honour the hint
                gevent.sleep(min(max(refused.retry_after_ms, 1000) / 1000, 60.0))
        except WS_ERRORS:
            pass

    @task(1)
    def ask_and_cancel(self) -> None:
        if self.ready():
            with suppress(*WS_ERRORS):
                self.socket.ask_and_cancel(self.channel, self.options.aichat_reply_timeout)

    @task(2)
    def history(self) -> None:
        if self.ready():
            with suppress(*WS_ERRORS):
                self.socket.history(self.channel, limit=random.choice((20, 50)))

    @task(1)
    def rest_history(self) -> None:
        conversation = self.channel.partition(":")[2]
        self.client.get(
            f"/v1/aichat/conversations/{conversation}/messages",
            headers=self.auth(),
            name="/v1/aichat/conversations/{id}/messages",
        )

    @task(1)
    def usage(self) -> None:
        self.client.get("/v1/aichat/usage", headers=self.auth(), name="/v1/aichat/usage")

    @task(1)
    def switch_conversation(self) -> None:
        """Move to another conversation, now and then a new one (up to the configured
        number), leaving the current one."""
        if len(self.channels) < self.options.aichat_conversations and random.random() < 0.5:
            self.open_conversation()
        if len(self.channels) < 2 or not self.ready() or not self.leave(self.channel):
            return
        self.channel = random.choice([c for c in self.channels if c != self.channel])
        self.ready()
