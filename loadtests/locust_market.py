"""Locust load test of the market realm on a running stack: buyers and sellers chatting in
their direct chats, couriers sending positions about once a second on their orders'
tracking channels, and buyers watching their order move.

Seed first (`python -m loadtests.seed_market ...`), start the stack (`make run` with the
market realm enabled), then:

    locust -f loadtests/locust_market.py --headless -u 300 -r 50 -t 60s \\
        --host http://127.0.0.1:8080 --market-gateway-url ws://127.0.0.1:8765/ws \\
        --csv loadtests/results/locust_market

`--host` is the REST API. Every option is prefixed `--market-`, so this file runs alongside
loadtests/locustfile.py. Users (each logs in over REST at /v1/market/auth/login, holds one
WebSocket, and logs in again when its access token is about to expire):

- MarketChatter (weight `--market-chatter-weight`): a buyer or seller of a seeded direct
  chat; joins it and mostly sends text, now and then marks it read or loads its history
  over REST.
- MarketCourier (weight `--market-courier-weight`): a courier with seeded orders in
  transit; joins their `market.order:<id>` channels and sends one `location` position per
  `--market-position-interval` seconds (default 1), cycling over its orders.
- MarketWatcher (weight `--market-watcher-weight`): a buyer with an order in transit; joins
  its tracking channel, receives the positions, and now and then reads the order over REST.

Measurements (request type "WS"): loadtests/ws_user.py's `connect`, `join`, `send (ack)`,
`send-to-receive (own echo)`, `msg received (commit-to-receive)`, `read`, plus
`position (ack)` (the courier's send, acknowledged after the position is stored) and
`position received (server-to-receive)` (a watcher's delay from the event's server time
`at`).
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
from locust import FastHttpUser, constant_pacing, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.ws_user import (
    ChatSocket,
    WebSocketClosed,
    WsRefused,
    _decode,
    _iso_age_ms,
    add_option,
)

DEFAULT_CREDENTIALS = Path(__file__).resolve().parent / "results" / "market_credentials.csv"
WS_ERRORS = (WsRefused, WebSocketClosed, TimeoutError, OSError)  # already reported as events
LINES = (
    "Is this still available?",
    "Can you ship it today?",
    "Does it come in black?",
    "Yes, it ships within the hour.",
    "I can do a small discount for two.",
    "Thanks, ordering now.",
)
# The courier's route: a small loop around Tashkent centre.
ORIGIN = (41.2995, 69.2401)


def _options(parser: Any) -> None:
    option = functools.partial(add_option, parser)
    option("--market-gateway-url", "ws://127.0.0.1:8765/ws", "the gateway's WebSocket URL")
    option("--market-credentials", str(DEFAULT_CREDENTIALS), "CSV from loadtests.seed_market")
    option("--market-chatter-weight", 5, "weight of MarketChatter", int)
    option("--market-courier-weight", 3, "weight of MarketCourier", int)
    option("--market-watcher-weight", 3, "weight of MarketWatcher", int)
    option("--market-position-interval", 1.0, "seconds between a courier's positions", float)
    option("--market-wait-min", 2.0, "seconds between a chatter's actions, at least", float)
    option("--market-wait-max", 6.0, "seconds between a chatter's actions, at most", float)
    option("--market-ws-timeout", 10.0, "seconds to wait for a WebSocket reply or echo", float)
    option("--market-recv-sample", 0.1, "share of others' messages and positions timed", float)


def _configure(environment: Environment, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    if not Path(options.market_credentials).is_file():
        sys.exit(
            f"{options.market_credentials} does not exist: seed first"
            " (python -m loadtests.seed_market)"
        )
    MarketChatter.weight = max(0, options.market_chatter_weight)
    MarketCourier.weight = max(0, options.market_courier_weight)
    MarketWatcher.weight = max(0, options.market_watcher_weight)


events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]
events.init.add_listener(_configure)  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Credential:
    email: str
    password: str
    user_type: str  # buyer, seller or courier
    user_id: str
    channels: tuple[str, ...]

    def of(self, prefix: str) -> list[str]:
        return [c for c in self.channels if c.startswith(prefix)]


class Credentials:
    """The seeded users by pool; each new locust user takes the next of its pool (shuffled
    per worker process)."""

    def __init__(self, path: Path, worker_index: int = 0) -> None:
        with path.open(newline="") as f:
            rows = [
                Credential(
                    r["email"],
                    r["password"],
                    r["user_type"],
                    r["user_id"],
                    tuple(r["channels"].split()),
                )
                for r in csv.DictReader(f)
            ]
        chat, order = "market.chat:", "market.order:"
        self.pools = {
            "chatter": [r for r in rows if r.user_type in ("buyer", "seller") and r.of(chat)],
            "courier": [r for r in rows if r.user_type == "courier" and r.of(order)],
            "watcher": [r for r in rows if r.user_type == "buyer" and r.of(order)],
        }
        for number, pool in enumerate(self.pools.values()):
            random.Random(4000 + 10 * worker_index + number).shuffle(pool)
        self._next = {name: itertools.count() for name in self.pools}

    def take(self, pool: str) -> Credential:
        rows = self.pools[pool]
        if not rows:
            raise SystemExit(f"the market credentials file has no {pool}s")
        return rows[next(self._next[pool]) % len(rows)]


_credentials: Credentials | None = None


def credentials(environment: Environment) -> Credentials:
    global _credentials
    if _credentials is None:
        runner = environment.runner
        index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        options = environment.parsed_options
        path = Path(options.market_credentials) if options else DEFAULT_CREDENTIALS
        _credentials = Credentials(path, worker_index=index)
    return _credentials


class TrackingSocket(ChatSocket):
    """A ChatSocket that also times the `position` events of order channels."""

    def _on_message(self, payload: bytes) -> None:
        if payload.startswith(b'{"op":"event"') and b'"kind":"position"' in payload:
            self.received += 1
            if self.recv_sample >= 1 or random.random() < self.recv_sample:
                frame = _decode(payload)
                age = _iso_age_ms(frame.get("at"))
                self.fire(
                    request_type="WS",
                    name="position received (server-to-receive)",
                    response_time=age or 0.0,
                    response_length=len(payload),
                    exception=None,
                    context={},
                )
            return
        super()._on_message(payload)


class MarketUser(FastHttpUser):
    """One market user: a REST login and one socket joined to `self.channels`."""

    abstract = True
    pool = ""

    def on_start(self) -> None:
        self.options = self.environment.parsed_options
        self.cred = credentials(self.environment).take(self.pool)
        self.channels = self.pick(self.cred)
        self.access_token = ""
        self.login_at = 0.0
        self.retry_at = 0.0
        self.backoff = 1.0
        self.login()
        self.socket = TrackingSocket(
            self.options.market_gateway_url,
            self.environment.events.request.fire,
            timeout=self.options.market_ws_timeout,
            recv_sample=self.options.market_recv_sample,
        )
        self.ready()

    def pick(self, cred: Credential) -> list[str]:
        raise NotImplementedError

    def on_stop(self) -> None:
        if hasattr(self, "socket"):
            self.socket.close()

    def login(self) -> None:
        """Log in, retrying with backoff (each failure is reported by locust)."""
        delay = 1.0
        while True:
            body = {"email": self.cred.email, "password": self.cred.password}
            response = self.client.post(
                "/v1/market/auth/login", json=body, name="/v1/market/auth/login"
            )
            if response.status_code == 200:
                session = response.json()
                self.access_token = session["access_token"]
                self.login_at = time.monotonic() + 0.8 * float(session["expires_in"])
                return
            gevent.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 30.0)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def ready(self) -> bool:
        """A connected socket joined to every channel of this user, with a fresh token.
        False while backing off after a failure."""
        socket = self.socket
        socket.check_overdue()
        if socket.token_expired or time.monotonic() > self.login_at:
            self.login()
            if socket.alive:
                try:
                    socket.refresh(self.access_token)
                except WS_ERRORS:
                    pass
        if socket.alive and all(c in socket.joined for c in self.channels):
            return True
        if time.monotonic() < self.retry_at:
            return False
        try:
            if not socket.alive:
                socket.connect(self.access_token, name="reconnect" if socket.joined else "connect")
            for channel in self.channels:
                if channel not in socket.joined:
                    since = socket.last_seq.get(channel)
                    name = "join" if since is None else "resume (join since)"
                    socket.join(channel, since, name=name)
        except WS_ERRORS:
            self.retry_at = time.monotonic() + self.backoff * random.uniform(0.5, 1.5)
            self.backoff = min(self.backoff * 2, 30.0)
            return False
        self.backoff = 1.0
        return True


class MarketChatter(MarketUser):
    """A buyer or seller in their seeded direct chat."""

    weight = 5
    pool = "chatter"

    def wait_time(self) -> float:
        return random.uniform(self.options.market_wait_min, self.options.market_wait_max)

    def pick(self, cred: Credential) -> list[str]:
        return cred.of("market.chat:")[:1]

    @task(10)
    def chat(self) -> None:
        if not self.ready():
            return
        try:
            self.socket.send_message(self.channels[0], random.choice(LINES))
        except WsRefused as refused:
            if refused.code == "rate_limited":
                gevent.sleep(min(refused.retry_after_ms / 1000, 60.0))
        except WS_ERRORS:
            pass

    @task(3)
    def read(self) -> None:
        if self.ready():
            try:
                self.socket.read(self.channels[0])
            except WS_ERRORS:
                pass

    @task(1)
    def history(self) -> None:
        chat = self.channels[0].partition(":")[2]
        self.client.get(
            f"/v1/market/chats/{chat}/messages?limit=20",
            headers=self.auth(),
            name="/v1/market/chats/{id}/messages",
        )


class MarketCourier(MarketUser):
    """A courier driving their orders: one position per interval, cycling over the orders."""

    weight = 3
    pool = "courier"

    def wait_time(self) -> float:
        interval: float = self.options.market_position_interval
        return float(constant_pacing(interval)(self))

    def pick(self, cred: Credential) -> list[str]:
        return cred.of("market.order:")

    def on_start(self) -> None:
        self.step = itertools.count()
        super().on_start()

    @task
    def position(self) -> None:
        if not self.ready():
            return
        n = next(self.step)
        channel = self.channels[n % len(self.channels)]
        lat = round(ORIGIN[0] + 0.01 * ((n % 200) / 200), 6)
        lon = round(ORIGIN[1] + 0.01 * ((n % 130) / 130), 6)
        frame = {
            "op": "send",
            "channel": channel,
            "type": "location",
            "text": "position",
            "metadata": {"lat": lat, "lon": lon},
        }
        try:
            self.socket.request(frame, "position (ack)")
        except WsRefused as refused:
            if refused.code == "rate_limited":
                gevent.sleep(min(refused.retry_after_ms / 1000, 60.0))
        except WS_ERRORS:
            pass


class MarketWatcher(MarketUser):
    """A buyer watching their order in transit."""

    weight = 3
    pool = "watcher"

    def wait_time(self) -> float:
        return random.uniform(self.options.market_wait_min, self.options.market_wait_max)

    def pick(self, cred: Credential) -> list[str]:
        return cred.of("market.order:")[:1]

    @task(5)
    def watch(self) -> None:
        self.ready()  # positions arrive on the socket meanwhile

    @task(1)
    def order(self) -> None:
        order = self.channels[0].partition(":")[2]
        self.client.get(
            f"/v1/market/orders/{order}", headers=self.auth(), name="/v1/market/orders/{id}"
        )
