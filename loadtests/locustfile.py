"""Locust load test of a running Switchboard stack: chat clients on WebSockets, analysts
posting calls, and inbox readers on REST.

Seed first (`python -m loadtests.seed ...`, see docs/loadtesting.md), start the stack
(`make run`), then for example:

    locust -f loadtests/locustfile.py --headless -u 200 -r 50 -t 60s \\
        --host http://127.0.0.1:8080 --gateway-url ws://127.0.0.1:8765/ws \\
        --csv loadtests/results/locust --html loadtests/results/locust.html

`--host` is the REST API; `--gateway-url` the gateway's WebSocket endpoint. Users:

- ChatUser (weight `--chat-weight`): logs in over REST, holds one WebSocket, joins up to
  `--chat-channels` of the channels the seed says it may join, then every
  `--chat-wait-min`..`--chat-wait-max` seconds does one thing: mostly send a message
  (sometimes after a typing indicator), now and then read history, mark read, ask presence,
  or drop the socket and resume with `since`. It refreshes its token before it expires.
- AnalystUser (exactly `--analyst-users` of them, hottest analysts first): posts calls and
  commentary every `--post-wait-min`..`--post-wait-max` seconds, `--urgent-ratio` of the
  calls urgent; every post notifies the analyst's subscribers.
- InboxUser (weight `--inbox-weight`): REST only: unread count, notifications, mark read,
  feed.

Custom metrics (request type "WS"): `connect`, `join`, `send (ack)`,
`send-to-receive (own echo)` (a send until the sender's own copy arrives, matched by
client_id), `msg received (commit-to-receive)` (sampled, `--ws-recv-sample`),
`notification new_post` / `notification urgent_post` (post requested until the notification
frame arrives; frames replayed on connect, `missed`, count under `notification (missed, on
connect) …` instead), `history`, `read`, `presence`, `reconnect`, `resume (join since)`, `refresh`,
and failures `connection lost` / `removed from channel`.
"""

from __future__ import annotations

import random
from contextlib import suppress
from pathlib import Path
from typing import Any

from locust import task

from loadtests.credential_pools import Credential, CredentialPools, Option, SeededCredentials
from loadtests.realm_users import WS_ERRORS, SeededUser, SocketUser, honouring_rate_limits
from loadtests.ws_user import WsRefused, new_post_token

DEFAULT_CREDENTIALS = Path(__file__).resolve().parent / "results" / "credentials.csv"


def _options(option: Option) -> None:
    option("--gateway-url", "ws://127.0.0.1:8765/ws", "the gateway's WebSocket URL")
    option("--credentials", str(DEFAULT_CREDENTIALS), "credentials CSV from loadtests.seed")
    option("--chat-weight", 10, "weight of ChatUser", int)
    option("--inbox-weight", 1, "weight of InboxUser", int)
    option("--analyst-users", 2, "number of AnalystUsers (fixed count, at least 1)", int)
    option("--chat-channels", 3, "channels each chat user joins, at most", int)
    option("--chat-wait-min", 5.0, "seconds between a chat user's actions, at least", float)
    option("--chat-wait-max", 15.0, "seconds between a chat user's actions, at most", float)
    option("--post-wait-min", 20.0, "seconds between an analyst's actions, at least", float)
    option("--post-wait-max", 60.0, "seconds between an analyst's actions, at most", float)
    option("--urgent-ratio", 0.2, "share of calls posted as urgent", float)
    option("--inbox-wait-min", 5.0, "seconds between an inbox reader's requests, at least", float)
    option("--inbox-wait-max", 15.0, "seconds between an inbox reader's requests, at most", float)
    option("--ws-timeout", 10.0, "seconds to wait for a WebSocket reply or echo", float)
    option("--ws-recv-sample", 0.1, "share of others' messages timed commit-to-receive", float)


def _configure(options: Any) -> None:
    ChatUser.weight = max(0, options.chat_weight)
    InboxUser.weight = max(0, options.inbox_weight)
    AnalystUser.fixed_count = max(1, options.analyst_users)


def _pools(rows: list[Credential], worker_index: int) -> CredentialPools:
    """The seeded users by role. Traders are shuffled (differently per worker process),
    analysts stay in rank order (the hottest first; worker n starts at rank n + 1)."""
    rng = random.Random(1000 + worker_index)
    traders = [r for r in rows if r.user_type == "trader"]
    chat = [r for r in traders if r.channels]
    inbox = traders[:]
    rng.shuffle(chat)
    rng.shuffle(inbox)
    return CredentialPools(
        {"chat": chat, "inbox": inbox, "analyst": [r for r in rows if r.user_type == "analyst"]},
        "the credentials file has no {pool} users",
        starts={"analyst": worker_index},
    )


SEEDED = SeededCredentials(
    "credentials", DEFAULT_CREDENTIALS, "python -m loadtests.seed, docs/loadtesting.md", _pools
)
SEEDED.register(_options, _configure)


class SwitchboardUser(SeededUser):
    """A logged-in user of the REST API; keeps its access token fresh."""

    abstract = True
    host = "http://127.0.0.1:8080"
    seeded = SEEDED
    login_path = "/v1/auth/login"
    refresh_path = "/v1/auth/refresh"

    def take_session(self, answer: dict[str, Any]) -> None:
        super().take_session(answer)
        self.user_id = answer["user"]["id"]

    def auth(self) -> dict[str, str]:
        self.fresh_token()
        return super().auth()


CHAT_LINES = (
    "NIFTY holding the support nicely",
    "anyone tracking BANKNIFTY options today?",
    "booked partial profits at target 1",
    "SL hit on the last one, waiting for the next setup",
    "what's the view on RELIANCE after results?",
    "volume looks weak, staying out for now",
    "thanks for the call, in at 1412",
    "is the 22500 CE still a buy here?",
    "gap up expected tomorrow?",
    "trailing my stop to cost",
    "IT stocks looking strong this week, INFY and TCS both breaking out of their ranges",
    "good morning all",
)


def chat_text() -> str:
    text = random.choice(CHAT_LINES)
    if random.random() < 0.15:  # a few long messages
        text = " ".join(random.choices(CHAT_LINES, k=random.randint(3, 8)))
    return text


class ChatUser(SocketUser, SwitchboardUser):
    """A trader with the app open: one socket, a few joined rooms, sending now and then."""

    weight = 10
    pool = "chat"

    def wait_time(self) -> float:
        return random.uniform(self.options.chat_wait_min, self.options.chat_wait_max)

    def recv_sample(self) -> float:
        return float(self.options.ws_recv_sample)

    def choose_channels(self) -> None:
        self.channels = list(self.cred.channels[: max(1, self.options.chat_channels)])

    def channels_to_join(self) -> list[str]:
        return self.channels

    def join(self, channel: str) -> None:
        try:
            super().join(channel)
        except WsRefused as refused:  # reported; this user cannot have it now
            if refused.code not in ("forbidden", "not_found"):
                raise
            self.channels.remove(channel)

    def channel(self) -> str | None:
        if not self.ready() or not self.socket.joined:
            return None
        return random.choice(list(self.socket.joined))

    @task(12)
    def send(self) -> None:
        channel = self.channel()
        if channel is None:
            return
        with honouring_rate_limits():
            if random.random() < 0.3:
                self.socket.typing(channel)
            self.socket.send_message(channel, chat_text())

    @task(1)
    def history(self) -> None:
        channel = self.channel()
        if channel is not None:
            with suppress(*WS_ERRORS):
                self.socket.history(channel, limit=random.choice((20, 50)))

    @task(2)
    def mark_read(self) -> None:
        channel = self.channel()
        if channel is not None:
            with suppress(*WS_ERRORS):
                self.socket.read(channel)

    @task(1)
    def presence(self) -> None:
        channel = self.channel()
        if channel is not None:
            with suppress(*WS_ERRORS):
                self.socket.presence(channel)

    @task(1)
    def reconnect_and_resume(self) -> None:
        """The app went to the background (or the network dropped): a new socket, and every
        channel rejoined with `since`, so missed messages are replayed."""
        if self.ready():
            with suppress(*WS_ERRORS):
                self.socket.resume(self.access_token, self.channels)


SYMBOLS = ("RELIANCE", "TCS", "INFY", "HDFCBANK", "ICICIBANK", "SBIN", "ITC", "LT", "M&M")


class AnalystUser(SwitchboardUser):
    """An analyst publishing calls to their subscribers (the hottest analysts first)."""

    fixed_count = 2
    pool = "analyst"

    def wait_time(self) -> float:
        return random.uniform(self.options.post_wait_min, self.options.post_wait_max)

    def post(self, body: dict[str, Any], name: str) -> None:
        # A tier's posts_per_day (the seeded free tiers: 1) refuses later posts that reach it
        # with 429: a documented rule doing its job, not a failure of the run.
        with self.client.post(
            "/v1/posts", json=body, headers=self.auth(), name=name, catch_response=True
        ) as response:
            if response.status_code == 429:
                response.success()

    @task(4)
    def post_call(self) -> None:
        symbol = random.choice(SYMBOLS)
        side = random.choice(("BUY", "SELL"))
        entry = round(random.uniform(100, 3000), 2)
        up, down = round(entry * 1.06, 2), round(entry * 0.97, 2)
        urgent = random.random() < self.options.urgent_ratio
        body = {
            "post_type": "call",
            "title": f"{symbol} {side} {new_post_token()}",
            "content": f"{side} {symbol} around {entry}. Keep the stop loss strict.",
            "strategy_type": random.choice(("intraday", "swing", "positional")),
            "stock_symbol": symbol,
            "action": side,
            "entry_price": entry,
            "target_price": up if side == "BUY" else down,
            "stop_loss": down if side == "BUY" else up,
            "confidence_level": random.choice(("MEDIUM", "HIGH")),
            "is_urgent": urgent,
            "audience": "paid",  # calls are for subscribers; commentary reaches every tier
        }
        self.post(body, "/v1/posts (urgent call)" if urgent else "/v1/posts (call)")

    @task(1)
    def post_commentary(self) -> None:
        body = {
            "post_type": "commentary",
            "title": f"Market view {new_post_token()}",
            "content": " ".join(random.choices(CHAT_LINES, k=6)),
        }
        self.post(body, "/v1/posts (commentary)")

    @task(2)
    def timeline(self) -> None:
        self.client.get(
            f"/v1/analysts/{self.user_id}/posts?limit=20",
            headers=self.auth(),
            name="/v1/analysts/{id}/posts",
        )


class InboxUser(SwitchboardUser):
    """A trader reading notifications and the feed over REST (no socket)."""

    weight = 1
    pool = "inbox"

    def wait_time(self) -> float:
        return random.uniform(self.options.inbox_wait_min, self.options.inbox_wait_max)

    @task(4)
    def unread_count(self) -> None:
        self.client.get("/v1/inbox/unread-count", headers=self.auth())

    @task(3)
    def notifications(self) -> None:
        self.client.get(
            "/v1/inbox/notifications?limit=20", headers=self.auth(), name="/v1/inbox/notifications"
        )

    @task(2)
    def read_one(self) -> None:
        response = self.client.get(
            "/v1/inbox/notifications?unread=true&limit=5",
            headers=self.auth(),
            name="/v1/inbox/notifications?unread=true",
        )
        items = response.json().get("items", []) if response.status_code == 200 else []
        if items:
            self.client.post(
                f"/v1/inbox/notifications/{items[0]['id']}/read",
                headers=self.auth(),
                name="/v1/inbox/notifications/{id}/read",
            )

    @task(2)
    def feed(self) -> None:
        self.client.get("/v1/feed?limit=20", headers=self.auth(), name="/v1/feed")

    @task(1)
    def read_all(self) -> None:
        self.client.post("/v1/inbox/read-all", headers=self.auth())
