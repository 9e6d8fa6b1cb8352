"""What the session and the in-app relay need from their gateway process, as Protocols, so
that they depend on these narrow views and not on the runtime that builds them (which
imports both): runtime → session → ports, never back."""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Protocol

import asyncpg

from gateway.fanout import Hub
from gateway.metrics import GatewayMetrics
from gateway.presence import PresenceLedger
from gateway.ratelimit import ChatRateLimiter
from kernel.config import Settings
from kernel.conversation import NamespaceRegistry
from kernel.messages import Event
from kernel.realms import Realms


class SessionHost(Protocol):
    """The services of one gateway process that a session uses."""

    settings: Settings
    realms: Realms
    pool: asyncpg.Pool
    namespaces: NamespaceRegistry
    hub: Hub
    presence: PresenceLedger
    chat_limiter: ChatRateLimiter
    metrics: GatewayMetrics

    @property
    def draining(self) -> bool: ...

    def announce(self, event: Event) -> None:
        """Publish an unsequenced event to its channel in the background."""
        ...


class RelayHost(Protocol):
    """What the in-app notification relay reads: whose sockets are here, and the hub."""

    settings: Settings
    realms: Realms
    pool: asyncpg.Pool
    hub: Hub

    @property
    def sessions(self) -> Mapping[str, Set[object]]: ...
