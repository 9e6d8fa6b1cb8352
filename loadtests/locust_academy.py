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

import random
from contextlib import suppress
from pathlib import Path
from typing import Any

import gevent
from locust import task

from loadtests.credential_pools import Credential, CredentialPools, Option, SeededCredentials
from loadtests.realm_users import WS_ERRORS, SocketUser

DEFAULT_CREDENTIALS = Path(__file__).resolve().parent / "results" / "academy_credentials.csv"
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


def _options(option: Option) -> None:
    option("--academy-gateway-url", "ws://127.0.0.1:8765/ws", "the gateway's WebSocket URL")
    option("--academy-credentials", str(DEFAULT_CREDENTIALS), "CSV from loadtests.seed_academy")
    option("--academy-learner-weight", 10, "weight of AcademyLearner", int)
    option("--academy-hosts", 1, "number of AcademyHosts (fixed count, at least 1)", int)
    option("--academy-wait-min", 3.0, "seconds between a user's actions, at least", float)
    option("--academy-wait-max", 10.0, "seconds between a user's actions, at most", float)
    option("--academy-ws-timeout", 10.0, "seconds to wait for a WebSocket reply or echo", float)
    option("--academy-recv-sample", 0.1, "share of others' messages timed", float)


def _configure(options: Any) -> None:
    AcademyLearner.weight = max(0, options.academy_learner_weight)
    AcademyHost.fixed_count = max(1, options.academy_hosts)


def _pools(rows: list[Credential], worker_index: int) -> CredentialPools:
    """Learners shuffled per worker process; hosts in seed order (session 1's host first)."""
    learners = [r for r in rows if r.user_type == "learner"]
    random.Random(2000 + worker_index).shuffle(learners)
    hosts = [r for r in rows if r.user_type == "host"]
    return CredentialPools(
        {"learner": learners, "host": hosts},
        "the academy credentials file has no {pool}s",
        starts={"host": worker_index},
    )


SEEDED = SeededCredentials(
    "academy_credentials", DEFAULT_CREDENTIALS, "python -m loadtests.seed_academy", _pools
)
SEEDED.register(_options, _configure)


class LiveSessionUser(SocketUser):
    """One academy user in one live session's room: a REST login and one socket. Academy
    issues no refresh tokens: the user logs in again at 80 % of its token's lifetime."""

    abstract = True
    host = "http://127.0.0.1:8080"
    seeded = SEEDED
    login_path = "/v1/academy/auth/login"
    option_prefix = "academy_"

    def wait_time(self) -> float:
        return random.uniform(self.options.academy_wait_min, self.options.academy_wait_max)

    def choose_channels(self) -> None:
        # The academy.session:<id> room the seed registered the user for (or hosts).
        self.channel = self.cred.channels[0]

    def channels_to_join(self) -> list[str]:
        return [self.channel]

    @task(10)
    def chat(self) -> None:
        self.say(self.channel, random.choice(LINES))

    @task(1)
    def history(self) -> None:
        if self.ready():
            with suppress(*WS_ERRORS):
                self.socket.history(self.channel, limit=random.choice((20, 50)))

    @task(1)
    def session(self) -> None:
        session_id = self.channel.partition(":")[2]
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
        if self.ready() and self.leave(self.channel):
            gevent.sleep(random.uniform(0.2, 1.0))
            self.ready()


class AcademyHost(LiveSessionUser):
    """A session's host in their own room."""

    fixed_count = 1
    pool = "host"
