"""The server API, for trusted backends only: publish an event to a channel, disconnect a
user, list a channel's presence, revoke a membership. Authenticated by SERVER_API_KEY in the
X-Api-Key header, never by a user token. Gateways hear publish and disconnect on
LISTEN sb_server, revocations on sb_membership."""

from __future__ import annotations

import hmac
import uuid
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Forbidden, TooLarge, Unauthorized, Unavailable
from kernel.revocation import revoke_tokens
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL, REALMS, SETTINGS

routes = web.RouteTableDef()

SERVER_CHANNEL = "sb_server"
MAX_DATA_BYTES = 4096  # a NOTIFY payload holds at most 8000 bytes
_KEY: dict[str, Any] = {"security": [{"serverKey": []}]}

Channel = Annotated[
    str,
    Meta(
        pattern=r"^[a-z][a-z0-9.]{0,31}:[a-z0-9-]{1,64}$",
        max_length=100,
        description="a channel in its canonical (lower-case) spelling",
    ),
]
RealmName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9]{1,30}$")]
UserId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9-]{1,64}$")]


class PublishIn(Struct, kw_only=True, forbid_unknown_fields=True):
    channel: Channel
    name: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_.]{0,62}$", description="event name")]
    data: dict[str, Any] | None = None


class DisconnectIn(Struct, kw_only=True, forbid_unknown_fields=True):
    realm: RealmName
    user_id: UserId
    session_id: Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")] | None = None


class RevokeIn(Struct, kw_only=True, forbid_unknown_fields=True):
    realm: RealmName
    user_id: UserId
    channel: Channel


class PresenceQuery(Struct, kw_only=True):
    channel: Channel


class Accepted(Struct):
    """The gateways were told (delivery to sockets follows within moments)."""

    notified: bool


class Revoked(Struct):
    """`removed`: a stored membership (a conversation's) was deleted as well."""

    notified: bool
    removed: bool


class PresenceOut(Struct):
    channel: str
    users: list[str]


def _require_key(request: web.Request) -> None:
    key = request.app[SETTINGS].server_api_key
    if key is None:  # not mounted without a key; kept as a guard
        raise Unavailable("the server API is disabled: set SERVER_API_KEY")
    given = request.headers.get("X-Api-Key", "")
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        raise Forbidden("the server API takes the server key in X-Api-Key, not a user token")
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise Unauthorized("send the server API key in X-Api-Key")


def _realm_of(request: web.Request, name: str) -> None:
    if name not in request.app[REALMS]:
        raise BadRequest(f"realm {name!r} is not served here")


async def _notify(request: web.Request, channel: str, payload: dict[str, Any]) -> None:
    await request.app[POOL].execute(
        "SELECT pg_notify($1, $2)", channel, msgspec.json.encode(payload).decode()
    )


@endpoint(
    routes,
    "POST",
    "/v1/server/publish",
    summary="Publish an event to every socket joined to a channel, on every gateway (server key)",
    tag="server",
    body=PublishIn,
    response=Accepted,
    status=202,
    auth=False,
    errors=(401, 403, 413, 503),
    extra=_KEY,
)
async def publish(request: web.Request, body: PublishIn) -> Accepted:
    _require_key(request)
    if body.data is not None and len(msgspec.json.encode(body.data)) > MAX_DATA_BYTES:
        raise TooLarge(f"data is over {MAX_DATA_BYTES} bytes once encoded")
    await _notify(
        request,
        SERVER_CHANNEL,
        {"op": "publish", "channel": body.channel, "name": body.name, "data": body.data},
    )
    return Accepted(notified=True)


@endpoint(
    routes,
    "POST",
    "/v1/server/disconnect",
    summary="Close a user's sockets (all, or one session) on every gateway with 4003",
    tag="server",
    body=DisconnectIn,
    response=Accepted,
    status=202,
    auth=False,
    errors=(401, 403, 503),
    extra=_KEY,
)
async def disconnect(request: web.Request, body: DisconnectIn) -> Accepted:
    _require_key(request)
    _realm_of(request, body.realm)
    await _notify(
        request,
        SERVER_CHANNEL,
        {
            "op": "disconnect",
            "realm": body.realm,
            "user_id": body.user_id,
            "session_id": body.session_id,
        },
    )
    return Accepted(notified=True)


@endpoint(
    routes,
    "GET",
    "/v1/server/presence",
    summary="The users present in a channel (live members of live gateways)",
    tag="server",
    query=PresenceQuery,
    response=PresenceOut,
    auth=False,
    errors=(401, 403, 503),
    extra=_KEY,
)
async def presence(request: web.Request, query: PresenceQuery) -> PresenceOut:
    _require_key(request)
    rows = await request.app[POOL].fetch(
        "SELECT DISTINCT lm.user_id FROM gateway.live_members lm"
        " JOIN gateway.nodes n USING (node_id)"
        " WHERE lm.channel = $1 AND n.heartbeat_at > now() - interval '30 seconds'"
        " ORDER BY lm.user_id",
        query.channel,
    )
    return PresenceOut(channel=query.channel, users=[str(r["user_id"]) for r in rows])


@endpoint(
    routes,
    "POST",
    "/v1/server/revoke",
    summary="Remove a user from a channel on every gateway (and from a conversation's members)",
    tag="server",
    body=RevokeIn,
    response=Revoked,
    status=202,
    auth=False,
    errors=(401, 403, 503),
    extra=_KEY,
)
async def revoke(request: web.Request, body: RevokeIn) -> Revoked:
    """A conversation's member row is deleted (its trigger tells the gateways); for any other
    channel the user's sockets leave it now, and the realm's own gates decide a later join."""
    _require_key(request)
    _realm_of(request, body.realm)
    namespace, _, key = body.channel.partition(":")
    removed = False
    if namespace.rpartition(".")[2] in ("direct", "group", "support"):
        try:
            conversation = uuid.UUID(key)
        except ValueError:
            raise BadRequest("a conversation's key is a UUID") from None
        status = await request.app[POOL].execute(
            "DELETE FROM gateway.conversation_members m USING gateway.conversations c"
            " WHERE c.id = m.conversation_id AND c.id = $1 AND c.realm = $2 AND m.user_id = $3",
            conversation,
            body.realm,
            body.user_id,
        )
        removed = not status.endswith(" 0")
    await _notify(
        request,
        "sb_membership",
        {"kind": "revoke", "realm": body.realm, "user_id": body.user_id, "channel": body.channel},
    )
    return Revoked(notified=True, removed=removed)


class RevokeTokensIn(Struct, kw_only=True, forbid_unknown_fields=True):
    realm: RealmName
    user_id: UserId


class TokensRevoked(Struct):
    """Tokens issued before `valid_from` (Unix seconds) are refused from now on."""

    valid_from: int


@endpoint(
    routes,
    "POST",
    "/v1/server/revoke-tokens",
    summary="Revoke every token a user holds: refused everywhere, their sockets close (4004)",
    tag="server",
    body=RevokeTokensIn,
    response=TokensRevoked,
    auth=False,
    errors=(401, 403, 503),
    extra=_KEY,
)
async def revoke_user_tokens(request: web.Request, body: RevokeTokensIn) -> TokensRevoked:
    _require_key(request)
    _realm_of(request, body.realm)
    return TokensRevoked(
        valid_from=await revoke_tokens(request.app[POOL], body.realm, body.user_id)
    )
