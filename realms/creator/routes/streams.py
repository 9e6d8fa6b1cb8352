"""/v1/creator/streams: a creator creates and schedules live streams, edits them, issues their
stream key (shown once), starts and ends them (or cancels a scheduled one); anyone lists the
live and upcoming ones and reads one; a viewer buys access to a premium stream (a
`stream_access` payment). The rules are realms/creator/streams.py's; the room is
`creator.live:<id>` (realms/creator/live.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel.errors import BadRequest
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.creator import billing, streams
from realms.creator.accounts import current_account, verified_account
from realms.creator.streams import Stream, StreamKey

routes = web.RouteTableDef()

TAG = "creator streams"
NO_NUL = r"^[^\x00]*$"

Title = Annotated[str, Meta(min_length=1, max_length=255, pattern=NO_NUL)]
Description = Annotated[str, Meta(max_length=5000, pattern=NO_NUL)]
When = Annotated[
    datetime,
    Meta(tz=True, description="with a time zone; in the future, at most 366 days ahead"),
]
Price = Annotated[
    int,
    Meta(ge=1, le=100_000_000, description="minor units (cents), above zero; null: free"),
]
Token = Annotated[
    str, Meta(min_length=1, max_length=200, description="the processor's payment token")
]


class StreamIn(Struct, forbid_unknown_fields=True, kw_only=True):
    title: Title
    description: Description | None = None
    scheduled_at: When | None = None
    price: Price | None = None
    chat_enabled: bool = True


class StreamPatch(Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields given change. While live: title, description, chat_enabled only."""

    title: Title | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    scheduled_at: When | UnsetType | None = UNSET
    price: Price | UnsetType | None = UNSET
    chat_enabled: bool | UnsetType = UNSET


class PublicQuery(PageQuery, kw_only=True):
    status: Literal["live", "scheduled"] = "live"
    creator_id: uuid.UUID | None = None


class OwnQuery(PageQuery, kw_only=True):
    status: Literal["scheduled", "live", "ended", "cancelled"] | None = None


class AccessBody(Struct, forbid_unknown_fields=True, kw_only=True):
    payment_method: billing.PaymentMethod = "card"
    payment_token: Token


class AccessOut(Struct, kw_only=True):
    payment: billing.Payment
    charged: bool
    stream_id: uuid.UUID


def _id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise BadRequest("stream id is not a UUID") from None


@endpoint(
    routes,
    "POST",
    "/v1/streams",
    summary="Create a live stream (creators; scheduled, premium when it has a price)",
    tag=TAG,
    body=StreamIn,
    response=Stream,
    status=201,
    errors=(400, 403),
)
async def create(request: web.Request, body: StreamIn) -> Stream:
    return await streams.create(
        request.app[POOL],
        await current_account(request),
        title=body.title,
        description=body.description,
        scheduled_at=body.scheduled_at,
        price=body.price,
        chat_enabled=body.chat_enabled,
    )


@endpoint(
    routes,
    "GET",
    "/v1/streams",
    summary="Live streams (latest first) or announced scheduled ones (soonest first)",
    tag=TAG,
    query=PublicQuery,
    response=Page[Stream],
    errors=(400,),
)
async def public_list(request: web.Request, query: PublicQuery) -> Page[Stream]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    items = await streams.public_page(
        request.app[POOL],
        who.user_id,
        status=query.status,
        creator_id=query.creator_id,
        after=after,
        limit=query.limit + 1,
    )
    if query.status == "live":
        return page_of(items, query.limit, lambda s: (_iso(s.started_at), str(s.id)))
    return page_of(items, query.limit, lambda s: (_iso(s.scheduled_at), str(s.id)))


@endpoint(
    routes,
    "GET",
    "/v1/me/streams",
    summary="The caller's own streams, newest first (every status)",
    tag=TAG,
    query=OwnQuery,
    response=Page[Stream],
    errors=(400,),
)
async def own_list(request: web.Request, query: OwnQuery) -> Page[Stream]:
    who = await caller(request)
    items = await streams.own_page(
        request.app[POOL],
        who.user_id,
        status=query.status,
        after=decode_cursor(query.cursor, datetime, uuid.UUID),
        limit=query.limit + 1,
    )
    return page_of(items, query.limit, lambda s: (_iso(s.created_at), str(s.id)))


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


@endpoint(
    routes,
    "GET",
    "/v1/streams/{id}",
    summary="One live stream (with the caller's access, if any)",
    tag=TAG,
    response=Stream,
    errors=(400, 404),
)
async def get_one(request: web.Request) -> Stream:
    stream_id = _id(request)
    return await streams.one(request.app[POOL], await current_account(request), stream_id)


@endpoint(
    routes,
    "PATCH",
    "/v1/streams/{id}",
    summary="Edit a stream (its creator; price and start time while scheduled only)",
    tag=TAG,
    body=StreamPatch,
    response=Stream,
    errors=(400, 403, 404, 409),
)
async def edit(request: web.Request, body: StreamPatch) -> Stream:
    stream_id = _id(request)
    changes: dict[str, Any] = {
        k: v for k, v in msgspec.structs.asdict(body).items() if v is not UNSET
    }
    return await streams.update(
        request.app[POOL], await current_account(request), stream_id, changes
    )


@endpoint(
    routes,
    "POST",
    "/v1/streams/{id}/key",
    summary="Issue (or rotate) the stream key: shown in this answer only, stored hashed",
    tag=TAG,
    response=StreamKey,
    status=201,
    errors=(400, 403, 404),
)
async def issue_key(request: web.Request) -> StreamKey:
    stream_id = _id(request)
    return await streams.issue_key(request.app[POOL], await current_account(request), stream_id)


@endpoint(
    routes,
    "POST",
    "/v1/streams/{id}/start",
    summary="Go live (scheduled -> live); followers and subscribers are notified",
    tag=TAG,
    response=Stream,
    errors=(400, 403, 404, 409),
)
async def start(request: web.Request) -> Stream:
    stream_id = _id(request)
    return await streams.start(request.app[POOL], await current_account(request), stream_id)


@endpoint(
    routes,
    "POST",
    "/v1/streams/{id}/end",
    summary="End a live stream (its creator or staff); every socket leaves its room",
    tag=TAG,
    response=Stream,
    errors=(400, 403, 404),
)
async def end(request: web.Request) -> Stream:
    stream_id = _id(request)
    return await streams.end(request.app[POOL], await current_account(request), stream_id)


@endpoint(
    routes,
    "POST",
    "/v1/streams/{id}/cancel",
    summary="Cancel a scheduled stream (not once access was sold)",
    tag=TAG,
    response=Stream,
    errors=(400, 403, 404, 409),
)
async def cancel(request: web.Request) -> Stream:
    stream_id = _id(request)
    return await streams.cancel(request.app[POOL], await current_account(request), stream_id)


@endpoint(
    routes,
    "POST",
    "/v1/streams/{id}/access",
    summary="Buy access to a premium stream (idempotent: never charged twice)",
    tag=TAG,
    body=AccessBody,
    response=AccessOut,
    errors=(400, 403, 404, 409),
)
async def buy_access(request: web.Request, body: AccessBody) -> AccessOut:
    stream_id = _id(request)
    buyer = await verified_account(request, "buying")
    payment, charged = await billing.buy_stream_access(
        request.app[POOL],
        request.app[billing.PROCESSOR],
        buyer=buyer.id,
        stream_id=stream_id,
        method=body.payment_method,
        token=body.payment_token,
    )
    if payment.status == "failed":
        raise billing.payment_failed(payment)
    return AccessOut(payment=payment, charged=charged, stream_id=stream_id)
