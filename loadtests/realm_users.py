"""The locust users every realm module builds on: a seeded user logged in over REST (its access
token renewed before it expires), and one that also holds a ChatSocket, kept connected and
joined to its channels (resuming with `since` after a loss, backing off after a failure)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import gevent
from locust import FastHttpUser

from loadtests.credential_pools import SeededCredentials
from loadtests.ws_user import ChatSocket, WebSocketClosed, WsRefused

WS_ERRORS = (WsRefused, WebSocketClosed, TimeoutError, OSError)  # already reported as events


@contextmanager
def honouring_rate_limits() -> Iterator[None]:
    """Around a socket call: a `rate_limited` refusal is slept out as the server asks (a
    minute at most), any other failure passed over; locust has each as an event already."""
    try:
        yield
    except WsRefused as refused:
        if refused.code == "rate_limited":
            gevent.sleep(min(refused.retry_after_ms / 1000, 60.0))
    except WS_ERRORS:
        pass


class SeededUser(FastHttpUser):
    """A seeded user of a realm's REST API. It takes the next credential of its `pool` from its
    module's `seeded` credentials and logs in at `login_path`; `fresh_token` renews the access
    token once 80 % of its lifetime has passed: at `refresh_path` where the realm has refresh
    tokens, else by logging in again."""

    abstract = True
    seeded: ClassVar[SeededCredentials]
    pool = ""
    login_path = ""
    login_field = "email"  # the body field the e-mail address goes in
    refresh_path = ""

    @property
    def options(self) -> Any:
        return self.environment.parsed_options

    def on_start(self) -> None:
        self.cred = self.seeded.take(self.environment, self.pool)
        self.access_token = ""
        self.refresh_token = ""
        self.renew_at = 0.0
        self.login()

    def login(self) -> None:
        """Log in, retrying with backoff (each failure is reported by locust)."""
        body = {self.login_field: self.cred.email, "password": self.cred.password}
        delay = 1.0
        while True:
            response = self.client.post(self.login_path, json=body, name=self.login_path)
            if response.status_code == 200:
                self.take_session(response.json())
                return
            gevent.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 30.0)

    def take_session(self, answer: dict[str, Any]) -> None:
        """Keep what a login or a refresh answered: the access token, and a refresh token
        where the answer has one (a login's; some realms' refreshes answer with a new one)."""
        self.access_token = answer["access_token"]
        self.refresh_token = answer.get("refresh_token", self.refresh_token)
        self.renew_at = time.monotonic() + 0.8 * float(answer["expires_in"])

    def fresh_token(self, force: bool = False) -> bool:
        """Renew the access token when 80 % of its lifetime has passed (or when `force`);
        True if it did."""
        if not force and time.monotonic() < self.renew_at:
            return False
        if self.refresh_path:
            response = self.client.post(
                self.refresh_path,
                json={"refresh_token": self.refresh_token},
                name=self.refresh_path,
            )
            if response.status_code == 200:
                self.take_session(response.json())
                return True
        self.login()
        return True

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class SocketUser(SeededUser):
    """A seeded user with one socket (a `socket_class` to the module's gateway) that `ready()`
    keeps joined to `channels_to_join()`. The module's options are named with
    `option_prefix`: `<prefix>gateway_url`, `<prefix>ws_timeout`, `<prefix>recv_sample`."""

    abstract = True
    socket_class: ClassVar[type[ChatSocket]] = ChatSocket
    option_prefix = ""
    reports_overdue_echoes = True  # ready() reports sends whose own echo is overdue

    def on_start(self) -> None:
        super().on_start()
        self.retry_at = 0.0
        self.backoff = 1.0
        self.connected_before = False
        self.socket = self.new_socket()
        self.choose_channels()
        self.ready()

    def on_stop(self) -> None:
        if hasattr(self, "socket"):
            self.socket.close()

    def new_socket(self) -> ChatSocket:
        prefix = self.option_prefix
        return self.socket_class(
            getattr(self.options, f"{prefix}gateway_url"),
            self.environment.events.request.fire,
            timeout=getattr(self.options, f"{prefix}ws_timeout"),
            recv_sample=self.recv_sample(),
        )

    def recv_sample(self) -> float:
        """The share of others' messages the socket times."""
        return float(getattr(self.options, f"{self.option_prefix}recv_sample"))

    def choose_channels(self) -> None:
        """Pick the channels to hold, from `self.cred` (logged in; the socket not open yet)."""
        raise NotImplementedError

    def channels_to_join(self) -> list[str]:
        """The channels `ready()` keeps the socket joined to."""
        raise NotImplementedError

    def connect_name(self) -> str:
        """The event a connection is reported under: every one after the first is a
        reconnect, whatever the socket saw before it was lost."""
        return "reconnect" if self.connected_before else "connect"

    def join(self, channel: str) -> None:
        """Join `channel`, resuming with `since` where the socket has seen it before."""
        since = self.socket.last_seq.get(channel)
        self.socket.join(channel, since, name="join" if since is None else "resume (join since)")

    def ready(self) -> bool:
        """A connected socket joined to every channel of `channels_to_join()`, with a fresh
        token; reconnects (resuming with `since`) after the server ended it. False while
        backing off after a failure."""
        socket = self.socket
        if self.reports_overdue_echoes:
            socket.check_overdue()
        if self.fresh_token(force=socket.token_expired) and socket.alive:
            try:
                socket.refresh(self.access_token)
            except WS_ERRORS:
                pass
        wanted = list(self.channels_to_join())  # a copy: `join` may drop a channel
        if socket.alive and all(c in socket.joined for c in wanted):
            return True
        if time.monotonic() < self.retry_at:
            return False
        try:
            if not socket.alive:
                socket.connect(self.access_token, name=self.connect_name())
                self.connected_before = True
            for channel in wanted:
                if channel not in socket.joined:
                    self.join(channel)
        except WS_ERRORS:
            self.retry_at = time.monotonic() + self.backoff * random.uniform(0.5, 1.5)
            self.backoff = min(self.backoff * 2, 30.0)
            return False
        self.backoff = 1.0
        return True

    def say(self, channel: str, text: str) -> None:
        """Send `text` to `channel` once the socket is ready (a rate limit is slept out)."""
        if self.ready():
            with honouring_rate_limits():
                self.socket.send_message(channel, text)

    def leave(self, channel: str) -> bool:
        """Leave `channel` (event "leave"); False if that failed."""
        try:
            self.socket.request({"op": "leave", "channel": channel}, "leave")
        except WS_ERRORS:
            return False
        self.socket.joined.pop(channel, None)
        return True
