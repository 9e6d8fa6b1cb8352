"""Locust load test of the creator realm on a running stack: fans messaging their creator in
their `creator.dm:` conversation, and viewers in live streams' rooms (`creator.live:`).

Seed first (`python -m loadtests.seed_creator ...`), start the stack (`make run` with the
creator realm enabled), then:

    locust -f loadtests/locust_creator.py --headless -u 300 -r 50 -t 60s \\
        --host http://127.0.0.1:8080 --creator-gateway-url ws://127.0.0.1:8765/ws \\
        --csv loadtests/results/locust_creator

`--host` is the REST API. Every option is prefixed `--creator-`, so this file runs alongside
loadtests/locustfile.py. Users (each logs in over REST at /v1/creator/auth/login, holds one
WebSocket, and logs in again when its access token is about to expire):

- CreatorFan (weight `--creator-fan-weight`): a fan with a seeded conversation; joins it and
  every `--creator-wait-min`..`--creator-wait-max` seconds mostly sends, now and then marks
  it read, loads its history (socket), or loads it over REST and looks at a locked premium
  message there: a `--creator-buy-share` of those looks buy it (POST
  /v1/creator/messages/{id}/purchase, the offline processor's succeeding test token); the
  others buy nothing.
- CreatorViewer (weight `--creator-viewer-weight`): a fan in the live stream the seed gave
  them; joins its room and every `--creator-viewer-wait-min`..`--creator-viewer-wait-max`
  seconds chats now and then (a low rate), otherwise just watches; sometimes leaves the room
  and comes back (the viewer count moves).

Measurements (request type "WS"): loadtests/ws_user.py's `connect`, `join`, `send (ack)`,
`send-to-receive (own echo)`, `msg received (commit-to-receive)` (a live stream's chat is
stamped when the gateway publishes it), `read`, `history`, `leave`, plus
`viewers event (interval)` (the time since the socket's previous `viewers` event, or since
its join; the size column is the count it showed) and
`message unlocked (purchase-to-receive)` (purchase request sent -> the `message_unlocked`
event on the fan's socket).
"""

from __future__ import annotations

import random
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import gevent
from locust import task

from loadtests.credential_pools import (
    Credential,
    CredentialPools,
    Option,
    SeededCredentials,
    shuffle_pools,
)
from loadtests.realm_users import WS_ERRORS, SocketUser
from loadtests.ws_user import ChatSocket, _decode

DEFAULT_CREDENTIALS = Path(__file__).resolve().parent / "results" / "creator_credentials.csv"
DM = "creator.dm:"
LIVE = "creator.live:"
PAYMENT_TOKEN = "tok_loadtest"  # the offline processor charges it successfully
DM_LINES = (
    "Hi! Loved the last set.",
    "When is the next live?",
    "That outfit was amazing",
    "Could you do a Q&A soon?",
    "Thanks for the reply!",
    "Good morning :)",
)
LIVE_LINES = (
    "hello from Lisbon!",
    "first time here",
    "this is so good",
    "can you say hi to me?",
    "love this song",
    "what camera do you use?",
    "lol",
)


def _options(option: Option) -> None:
    option("--creator-gateway-url", "ws://127.0.0.1:8765/ws", "the gateway's WebSocket URL")
    option("--creator-credentials", str(DEFAULT_CREDENTIALS), "CSV from loadtests.seed_creator")
    option("--creator-fan-weight", 5, "weight of CreatorFan", int)
    option("--creator-viewer-weight", 5, "weight of CreatorViewer", int)
    option("--creator-wait-min", 2.0, "seconds between a fan's actions, at least", float)
    option("--creator-wait-max", 6.0, "seconds between a fan's actions, at most", float)
    option("--creator-viewer-wait-min", 3.0, "seconds between a viewer's actions, at least", float)
    option("--creator-viewer-wait-max", 10.0, "seconds between a viewer's actions, at most", float)
    option("--creator-buy-share", 0.2, "share of a fan's premium looks that buy", float)
    option("--creator-ws-timeout", 10.0, "seconds to wait for a WebSocket reply or echo", float)
    option("--creator-recv-sample", 0.1, "share of others' messages timed", float)


def _configure(options: Any) -> None:
    CreatorFan.weight = max(0, options.creator_fan_weight)
    CreatorViewer.weight = max(0, options.creator_viewer_weight)


def _pools(rows: list[Credential], worker_index: int) -> CredentialPools:
    """The seeded fans: with a conversation, in a live room; shuffled per worker process."""
    fans = [r for r in rows if r.user_type == "fan"]
    pools = {"fan": [r for r in fans if r.of(DM)], "viewer": [r for r in fans if r.of(LIVE)]}
    shuffle_pools(pools, 6000 + 10 * worker_index)
    return CredentialPools(pools, "the creator credentials file has no {pool}s")


SEEDED = SeededCredentials(
    "creator_credentials", DEFAULT_CREDENTIALS, "python -m loadtests.seed_creator", _pools
)
SEEDED.register(_options, _configure)


class CreatorSocket(ChatSocket):
    """A ChatSocket that also times `viewers` events of live rooms and `message_unlocked`
    events of the user stream."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.viewers_seen: dict[str, float] = {}  # channel -> perf_counter of the last event
        self.viewers: dict[str, int] = {}  # channel -> the last count shown
        self.buying: dict[str, float] = {}  # message id -> perf_counter of the purchase

    def watching(self, channel: str) -> None:
        """Start the interval clock of `channel`'s `viewers` events (call after joining)."""
        self.viewers_seen[channel] = time.perf_counter()

    def _on_message(self, payload: bytes) -> None:
        if payload.startswith(b'{"op":"event"'):
            if b'"kind":"viewers"' in payload:
                self._on_viewers(payload)
                return
            if b'"kind":"message_unlocked"' in payload:
                self._on_unlocked(payload)
                return
        super()._on_message(payload)

    def _on_viewers(self, payload: bytes) -> None:
        self.received += 1
        frame = _decode(payload)
        channel = str(frame.get("channel"))
        current = int((frame.get("data") or {}).get("current") or 0)
        now = time.perf_counter()
        since = self.viewers_seen.get(channel)
        self.viewers_seen[channel] = now
        self.viewers[channel] = current
        self.fire(
            request_type="WS",
            name="viewers event (interval)",
            response_time=(now - since) * 1000 if since is not None else 0.0,
            response_length=current,
            exception=None,
            context={},
        )

    def _on_unlocked(self, payload: bytes) -> None:
        self.received += 1
        frame = _decode(payload)
        message = (frame.get("data") or {}).get("message") or {}
        message_id = str(message.get("id") or frame.get("id"))
        started = self.buying.pop(message_id, None)
        if started is not None:
            self.fire(
                request_type="WS",
                name="message unlocked (purchase-to-receive)",
                response_time=(time.perf_counter() - started) * 1000,
                response_length=len(payload),
                exception=None,
                context={},
            )


class CreatorUser(SocketUser):
    """One seeded fan: a REST login and one socket joined to `self.channel`."""

    abstract = True
    seeded = SEEDED
    login_path = "/v1/creator/auth/login"
    login_field = "login"
    option_prefix = "creator_"
    socket_class = CreatorSocket
    channel_prefix = ""
    socket: CreatorSocket

    def choose_channels(self) -> None:
        self.channel = self.cred.of(self.channel_prefix)[0]

    def channels_to_join(self) -> list[str]:
        return [self.channel]


class CreatorFan(CreatorUser):
    """A fan in their conversation with a creator."""

    weight = 5
    pool = "fan"
    channel_prefix = DM

    def wait_time(self) -> float:
        return random.uniform(self.options.creator_wait_min, self.options.creator_wait_max)

    @task(10)
    def send(self) -> None:
        self.say(self.channel, random.choice(DM_LINES))

    @task(3)
    def read(self) -> None:
        if self.ready():
            with suppress(*WS_ERRORS):
                self.socket.read(self.channel)

    @task(2)
    def history(self) -> None:
        if self.ready():
            with suppress(*WS_ERRORS):
                self.socket.history(self.channel, limit=20)

    @task(1)
    def premium(self) -> None:
        """Read the conversation's first page over REST (where the seed put its premium
        message); buy a locked message there now and then."""
        conversation = self.channel.partition(":")[2]
        with self.client.get(
            f"/v1/creator/conversations/{conversation}/messages?after=0&limit=20",
            headers=self.auth(),
            name="/v1/creator/conversations/{id}/messages",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text}")
                return
            locked = [m for m in response.json() if m.get("locked")]
        if not locked or random.random() >= self.options.creator_buy_share:
            return  # buys nothing
        message_id = str(locked[0]["id"])
        self.socket.buying[message_id] = time.perf_counter()
        with self.client.post(
            f"/v1/creator/messages/{message_id}/purchase",
            json={"payment_method": "card", "payment_token": PAYMENT_TOKEN},
            headers=self.auth(),
            name="/v1/creator/messages/{id}/purchase",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                self.socket.buying.pop(message_id, None)
                response.failure(f"{response.status_code}: {response.text}")
            elif not response.json().get("charged"):
                self.socket.buying.pop(message_id, None)  # bought before: nothing is sent


class CreatorViewer(CreatorUser):
    """A fan watching a live stream: chats now and then, sometimes steps out and back."""

    weight = 5
    pool = "viewer"
    channel_prefix = LIVE

    def wait_time(self) -> float:
        return random.uniform(
            self.options.creator_viewer_wait_min, self.options.creator_viewer_wait_max
        )

    def join(self, channel: str) -> None:
        self.socket.join(channel, None, name="join")  # a live room has no seq to resume
        self.socket.watching(channel)

    @task(6)
    def watch(self) -> None:
        self.ready()  # chat and `viewers` events arrive on the socket meanwhile

    @task(3)
    def chat(self) -> None:
        self.say(self.channel, random.choice(LIVE_LINES))

    @task(1)
    def leave_and_return(self) -> None:
        """Leave the room (the viewer count drops at the next tick), then join again."""
        if self.ready() and self.leave(self.channel):
            gevent.sleep(random.uniform(0.5, 2.0))
            self.ready()
