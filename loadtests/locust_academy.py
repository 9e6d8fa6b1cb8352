"""Locust load test of the academy realm's live sessions on a running stack: learners in a live
session's room (join, chat, leave and come back), and the sessions' hosts.

Seed first (`python -m loadtests.seed_academy ...`), start the stack (`make run`), then:

    locust -f loadtests/locust_academy.py --headless -u 200 -r 50 -t 60s \\
        --host http://127.0.0.1:8080 --academy-gateway-url ws://127.0.0.1:8765/ws \\
        --csv loadtests/results/locust_academy

`--host` is the REST API. Every option is prefixed `--academy-`, so this file runs alongside
loadtests/locustfile.py (`-f loadtests/locustfile.py,loadtests/locust_academy.py`). Users:

- AcademyLearner (weight `--academy-learner-weight`): logs in over REST
  (/v1/academy/auth/login), holds one WebSocket, joins the live session it is registered
  for, then every `--academy-wait-min`..`--academy-wait-max` seconds mostly chats, now and
  then reads history or the session over REST, or leaves the room and joins it again (the
  attendance ledger and the live count move each time).
- AcademyHost (exactly `--academy-hosts`, session 1's host first): in their own room as its
  owner, chatting at the same pace.

Measurements (request type "WS", from loadtests/ws_user.py): `connect`, `join`, `send (ack)`,
`send-to-receive (own echo)`, `msg received (commit-to-receive)`, `history`, `leave`; failures
`connection lost` / `removed from channel`. Academy issues no refresh tokens: a user logs in
again when its access token expires.
"""

from __future__ import annotations

import csv
import functools
import itertools
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.ws_user import ChatSocket, WebSocketClosed, WsRefused, add_option

DEFAULT_CREDENTIALS = Path(__file__).resolve().parent / "results" / "academy_credentials.csv"
WS_ERRORS = (WsRefused, WebSocketClosed, TimeoutError, OSError)  # already reported as events
LINES = (
    "can you show the daily chart again?",
    "that wick looks like a rejection to me",
    "what stop would you use here?",
    "thanks, this is really clear",
    "is volume confirming the breakout?",
    "how do you size the position for this setup?",
    "I marked the same support level",
    "could you repeat the last point?",
    "good session so far",
)


def _options(parser: Any) -> None:
    option = functools.partial(add_option, parser)
    option("--academy-gateway-url", "ws://127.0.0.1:8765/ws", "the gateway's WebSocket URL")
    option("--academy-credentials", str(DEFAULT_CREDENTIALS), "CSV from loadtests.seed_academy")
    option("--academy-learner-weight", 10, "weight of AcademyLearner", int)
    option("--academy-hosts", 1, "number of AcademyHosts (fixed count, at least 1)", int)
    option("--academy-wait-min", 3.0, "seconds between a user's actions, at least", float)
    option("--academy-wait-max", 10.0, "seconds between a user's actions, at most", float)
    option("--academy-ws-timeout", 10.0, "seconds to wait for a WebSocket reply or echo", float)
    option("--academy-recv-sample", 0.1, "share of others' messages timed", float)


def _configure(environment: Environment, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    if not Path(options.academy_credentials).is_file():
        sys.exit(
            f"{options.academy_credentials} does not exist: seed first"
            " (python -m loadtests.seed_academy)"
        )
    AcademyLearner.weight = max(0, options.academy_learner_weight)
    AcademyHost.fixed_count = max(1, options.academy_hosts)


events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]
events.init.add_listener(_configure)  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Credential:
    email: str
    password: str
    user_type: str  # host or learner
    user_id: str
    channel: str  # the academy.session:<id> room the seed registered the user for (or hosts)


class Credentials:
    """The seeded users by role; each new locust user takes the next of its pool. Learners are
    shuffled per worker process; hosts stay in seed order (session 1's host first)."""

    def __init__(self, path: Path, worker_index: int = 0) -> None:
        with path.open(newline="") as f:
            rows = [
                Credential(r["email"], r["password"], r["user_type"], r["user_id"], r["channels"])
                for r in csv.DictReader(f)
            ]
        learners = [r for r in rows if r.user_type == "learner"]
        random.Random(2000 + worker_index).shuffle(learners)
        self.pools = {"learner": learners, "host": [r for r in rows if r.user_type == "host"]}
        self._next = {name: itertools.count() for name in self.pools}
        self._next["host"] = itertools.count(worker_index)

    def take(self, pool: str) -> Credential:
        rows = self.pools[pool]
        if not rows:
            raise SystemExit(f"the academy credentials file has no {pool}s")
        return rows[next(self._next[pool]) % len(rows)]


_credentials: Credentials | None = None


def credentials(environment: Environment) -> Credentials:
    global _credentials
    if _credentials is None:
        runner = environment.runner
        index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        options = environment.parsed_options
        path = Path(options.academy_credentials) if options else DEFAULT_CREDENTIALS
        _credentials = Credentials(path, worker_index=index)
    return _credentials


class LiveSessionUser(FastHttpUser):
    """One academy user in one live session's room: a REST login and one socket."""

    abstract = True
    host = "http://127.0.0.1:8080"
    pool = ""

    @property
    def options(self) -> Any:
        return self.environment.parsed_options

    def wait_time(self) -> float:
        return random.uniform(self.options.academy_wait_min, self.options.academy_wait_max)

    def on_start(self) -> None:
        self.cred = credentials(self.environment).take(self.pool)
        self.access_token = ""
        self.login_at = 0.0
        self.retry_at = 0.0
        self.backoff = 1.0
        self.login()
        self.socket = ChatSocket(
            self.options.academy_gateway_url,
            self.environment.events.request.fire,
            timeout=self.options.academy_ws_timeout,
            recv_sample=self.options.academy_recv_sample,
        )
        self.in_room()

    def on_stop(self) -> None:
        if hasattr(self, "socket"):
            self.socket.close()

    def login(self) -> None:
        """Log in, retrying with backoff (each failure is reported by locust)."""
        delay = 1.0
        while True:
            body = {"email": self.cred.email, "password": self.cred.password}
            response = self.client.post(
                "/v1/academy/auth/login", json=body, name="/v1/academy/auth/login"
            )
            if response.status_code == 200:
                session = response.json()
                self.access_token = session["access_token"]
                # No refresh tokens in this realm: log in again at 80 % of the lifetime.
                self.login_at = time.monotonic() + 0.8 * float(session["expires_in"])
                return
            gevent.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 30.0)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def in_room(self) -> bool:
        """A connected socket joined to the room (resuming with `since` after a loss), with a
        fresh token. False while backing off after a failure."""
        socket = self.socket
        socket.check_overdue()
        if socket.token_expired or time.monotonic() > self.login_at:
            self.login()
            if socket.alive:
                try:
                    socket.refresh(self.access_token)
                except WS_ERRORS:
                    pass
        if socket.alive and self.cred.channel in socket.joined:
            return True
        if time.monotonic() < self.retry_at:
            return False
        try:
            if not socket.alive:
                socket.connect(
                    self.access_token, name="reconnect" if socket.last_seq else "connect"
                )
            since = socket.last_seq.get(self.cred.channel)
            socket.join(
                self.cred.channel, since, name="join" if since is None else "resume (join since)"
            )
        except WS_ERRORS:
            self.retry_at = time.monotonic() + self.backoff * random.uniform(0.5, 1.5)
            self.backoff = min(self.backoff * 2, 30.0)
            return False
        self.backoff = 1.0
        return True

    @task(10)
    def chat(self) -> None:
        if not self.in_room():
            return
        try:
            self.socket.send_message(self.cred.channel, random.choice(LINES))
        except WsRefused as refused:
            if refused.code == "rate_limited":  # reported; honour it, then carry on
                gevent.sleep(min(refused.retry_after_ms / 1000, 60.0))
        except WS_ERRORS:
            pass

    @task(1)
    def history(self) -> None:
        if self.in_room():
            try:
                self.socket.history(self.cred.channel, limit=random.choice((20, 50)))
            except WS_ERRORS:
                pass

    @task(1)
    def session(self) -> None:
        session_id = self.cred.channel.partition(":")[2]
        self.client.get(
            f"/v1/academy/sessions/{session_id}",
            headers=self.auth(),
            name="/v1/academy/sessions/{id}",
        )


class AcademyLearner(LiveSessionUser):
    """A registered learner in the live session: chats, and now and then steps out and back."""

    weight = 10
    pool = "learner"

    @task(2)
    def leave_and_return(self) -> None:
        """Leave the room (left_at is set, the live count drops), then join again."""
        if not self.in_room():
            return
        try:
            self.socket.request({"op": "leave", "channel": self.cred.channel}, "leave")
        except WS_ERRORS:
            return
        self.socket.joined.pop(self.cred.channel, None)
        gevent.sleep(random.uniform(0.2, 1.0))
        self.in_room()


class AcademyHost(LiveSessionUser):
    """A session's host in their own room."""

    fixed_count = 1
    pool = "host"
