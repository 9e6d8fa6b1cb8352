"""What the academy realm tells the gateways: live events on its channels (the community
feed, a session room, a user's own stream), sent with NOTIFY sb_server in the caller's
transaction, so a gateway hears an event only once what it announces is committed.

Every gateway LISTENs on sb_server and delivers an `event` of kind `server` (with `name` and
`data`) to its local sockets joined to the channel (docs/protocol.md §13.2). NOTIFY payloads
are limited to 8000 bytes: events carry ids, titles and counts, never whole post bodies.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec

COMMUNITY_CHANNEL = "academy.community:all"
EXCERPT = 280


def session_channel(session_id: uuid.UUID | str) -> str:
    return f"academy.session:{session_id}"


def user_channel(user_id: uuid.UUID | str) -> str:
    return f"academy.user:{user_id}"


def excerpt(text: str | None) -> str | None:
    return None if text is None else text[:EXCERPT]


async def publish(conn: asyncpg.Connection, channel: str, name: str, data: dict[str, Any]) -> None:
    """Have every gateway deliver event `name` with `data` to `channel` at commit."""
    payload = msgspec.json.encode(
        {"op": "publish", "channel": channel, "name": name, "data": data}
    ).decode()
    await conn.execute("SELECT pg_notify('sb_server', $1)", payload)


async def revoke(conn: asyncpg.Connection, channel: str, user_id: uuid.UUID) -> None:
    """At commit, every socket of `user_id` joined to `channel` is removed from it."""
    payload = msgspec.json.encode(
        {"kind": "revoke", "realm": "academy", "user_id": str(user_id), "channel": channel}
    ).decode()
    await conn.execute("SELECT pg_notify('sb_membership', $1)", payload)


async def session_changed(conn: asyncpg.Connection, session_id: uuid.UUID) -> None:
    """At commit, every gateway re-checks the sockets joined to the session's room (it ended,
    was cancelled): those no longer allowed are removed with the reason."""
    payload = msgspec.json.encode(
        {"kind": "academy_session", "session_id": str(session_id)}
    ).decode()
    await conn.execute("SELECT pg_notify('sb_membership', $1)", payload)
