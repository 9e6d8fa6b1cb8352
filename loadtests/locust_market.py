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

import itertools
import random
from contextlib import suppress
from pathlib import Path
from typing import Any

from locust import constant_pacing, task

from loadtests.credential_pools import (
    Credential,
    CredentialPools,
    Option,
    SeededCredentials,
    shuffle_pools,
)
from loadtests.realm_users import WS_ERRORS, SocketUser, honouring_rate_limits
from loadtests.ws_user import ChatSocket, _decode, _iso_age_ms

DEFAULT_CREDENTIALS = Path(__file__).resolve().parent / "results" / "market_credentials.csv"
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


def _options(option: Option) -> None:
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


def _configure(options: Any) -> None:
    MarketChatter.weight = max(0, options.market_chatter_weight)
    MarketCourier.weight = max(0, options.market_courier_weight)
    MarketWatcher.weight = max(0, options.market_watcher_weight)


def _pools(rows: list[Credential], worker_index: int) -> CredentialPools:
    """The seeded users by pool, shuffled per worker process."""
    chat, order = "market.chat:", "market.order:"
    pools = {
        "chatter": [r for r in rows if r.user_type in ("buyer", "seller") and r.of(chat)],
        "courier": [r for r in rows if r.user_type == "courier" and r.of(order)],
        "watcher": [r for r in rows if r.user_type == "buyer" and r.of(order)],
    }
    shuffle_pools(pools, 4000 + 10 * worker_index)
    return CredentialPools(pools, "the market credentials file has no {pool}s")


SEEDED = SeededCredentials(
    "market_credentials", DEFAULT_CREDENTIALS, "python -m loadtests.seed_market", _pools
)
SEEDED.register(_options, _configure)


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


class MarketUser(SocketUser):
    """One market user: a REST login and one socket joined to `self.channels`."""

    abstract = True
    seeded = SEEDED
    login_path = "/v1/market/auth/login"
    option_prefix = "market_"
    socket_class = TrackingSocket

    def pick(self, cred: Credential) -> list[str]:
        raise NotImplementedError

    def choose_channels(self) -> None:
        self.channels = self.pick(self.cred)

    def channels_to_join(self) -> list[str]:
        return self.channels


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
        self.say(self.channels[0], random.choice(LINES))

    @task(3)
    def read(self) -> None:
        if self.ready():
            with suppress(*WS_ERRORS):
                self.socket.read(self.channels[0])

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
        with honouring_rate_limits():
            self.socket.request(frame, "position (ack)")


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
