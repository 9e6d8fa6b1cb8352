"""Socket helpers of the academy tests: a connected client of a real gateway process for an
academy user, and a matcher for the realm's `server` events."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from kernel.tokens import sign_access_token
from tests.gateway.harness import GatewayProcess, WsClient


async def connect(gw: GatewayProcess, secret: str, user: UUID, opened: list[WsClient]) -> WsClient:
    """A socket of `user` past its welcome and user-stream join; closed by the `sockets`
    fixture that owns `opened`."""
    return await connect_with(gw, sign_access_token(secret, str(user), "academy", 600), opened)


async def connect_with(gw: GatewayProcess, token: str, opened: list[WsClient]) -> WsClient:
    client = await WsClient.open(gw.url, token)
    opened.append(client)
    await client.expect("welcome")
    await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
    return client


def server_event(name: str, **fields: Any) -> Any:
    def match(f: dict[str, Any]) -> bool:
        data = f.get("data") or {}
        return (
            f.get("op") == "event"
            and f.get("kind") == "server"
            and f.get("name") == name
            and all(data.get(k) == v for k, v in fields.items())
        )

    return match
