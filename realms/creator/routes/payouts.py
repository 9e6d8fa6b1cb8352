"""/v1/creator/payouts: a creator's balance of available net earnings, payout requests (never
more than available, safe under concurrent requests), their own payouts, cancelling a pending
one; staff list payouts and move them (processing, completed, failed, cancelled)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Forbidden
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Cursor, Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.creator import payouts
from realms.creator.accounts import Account, staff_account, verified_account

routes = web.RouteTableDef()

TAG = "creator payouts"
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]


class PayoutBody(Struct, forbid_unknown_fields=True, kw_only=True):
    amount: Annotated[int, Meta(ge=1, le=2**53, description="minor units (cents)")]
    currency: Currency | None = None
    payment_method: payouts.PayoutMethod = "bank_transfer"
    idempotency_key: Annotated[str, Meta(min_length=1, max_length=100)] | None = None


class Requested(Struct, kw_only=True):
    payout: payouts.Payout
    created: bool


class MoveBody(Struct, forbid_unknown_fields=True, kw_only=True):
    # a failed payout says why
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "if": {"required": ["status"], "properties": {"status": {"const": "failed"}}},
            "then": {
                "required": ["failure_reason"],
                "properties": {"failure_reason": {"not": {"type": "null"}}},
            },
        },
    )
    status: payouts.PayoutStatus
    failure_code: (
        Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[^\x00]*$")] | None
    ) = None
    failure_reason: (
        Annotated[str, Meta(min_length=1, max_length=1000, pattern=r"^[^\x00]*$")] | None
    ) = None
    processor_transaction_id: (
        Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*$")] | None
    ) = None


class StaffQuery(Struct, kw_only=True):
    status: Literal["pending", "processing", "completed", "failed", "cancelled"] | None = None
    creator_id: uuid.UUID | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 20
    cursor: Cursor | None = None


async def _creator(request: web.Request) -> Account:
    account = await verified_account(request, "a payout")
    if not account.is_creator:
        raise Forbidden("only creators have earnings to pay out")
    return account


_PAGE = (
    f"SELECT {payouts.PAYOUT_COLUMNS} FROM creator.transactions"
    " WHERE transaction_type = 'payout' AND ($1::uuid IS NULL OR creator_id = $1)"
    " AND ($2::text IS NULL OR status = $2)"
    " AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))"
    " ORDER BY created_at DESC, id DESC LIMIT $5"
)


async def _page(
    request: web.Request,
    creator: uuid.UUID | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> Page[payouts.Payout]:
    after = decode_cursor(cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        _PAGE,
        creator,
        status,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )
    items = [payouts.Payout(**dict(r)) for r in rows]
    return page_of(items, limit, lambda p: (p.created_at.isoformat(), str(p.id)))


@endpoint(
    routes,
    "GET",
    "/v1/payouts/balance",
    summary="The calling creator's earnings, payouts and available balance, per currency",
    tag=TAG,
    response=list[payouts.Balance],
    errors=(403,),
)
async def balance(request: web.Request) -> list[payouts.Balance]:
    me = await _creator(request)
    return await payouts.balances(request.app[POOL], me.id)


@endpoint(
    routes,
    "POST",
    "/v1/payouts",
    summary="Request a payout of available net earnings (409 beyond the available balance;"
    " a retry with the same idempotency_key answers the first payout, created=false)",
    tag=TAG,
    body=PayoutBody,
    response=Requested,
    status=201,
    errors=(400, 403, 409),
)
async def request_payout(request: web.Request, body: PayoutBody) -> Requested:
    me = await _creator(request)
    async with request.app[POOL].acquire() as conn:
        payout, created = await payouts.request_payout(
            conn,
            creator=me.id,
            amount=body.amount,
            currency=body.currency,
            method=body.payment_method,
            idempotency_key=body.idempotency_key,
            request=request,
        )
    return Requested(payout=payout, created=created)


@endpoint(
    routes,
    "GET",
    "/v1/payouts",
    summary="The calling creator's payouts, newest first",
    tag=TAG,
    query=PageQuery,
    response=Page[payouts.Payout],
    errors=(400, 403),
)
async def my_payouts(request: web.Request, query: PageQuery) -> Page[payouts.Payout]:
    me = await _creator(request)
    return await _page(request, me.id, None, query.cursor, query.limit)


@endpoint(
    routes,
    "POST",
    "/v1/payouts/{id}/cancel",
    summary="Cancel one's own payout while it is pending",
    tag=TAG,
    response=payouts.Payout,
    errors=(400, 403, 404, 409),
)
async def cancel_payout(request: web.Request) -> payouts.Payout:
    me = await _creator(request)
    payout_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn:
        return await payouts.move(
            conn,
            actor=me.id,
            payout_id=payout_id,
            status="cancelled",
            owner=me.id,
            request=request,
        )


@endpoint(
    routes,
    "GET",
    "/v1/staff/payouts",
    summary="Payouts of every creator, newest first (staff); filter by status and creator",
    tag=TAG,
    query=StaffQuery,
    response=Page[payouts.Payout],
    errors=(400, 403),
)
async def all_payouts(request: web.Request, query: StaffQuery) -> Page[payouts.Payout]:
    await staff_account(request)
    return await _page(request, query.creator_id, query.status, query.cursor, query.limit)


@endpoint(
    routes,
    "POST",
    "/v1/staff/payouts/{id}/status",
    summary="Move a payout on (staff): pending -> processing -> completed | failed | cancelled",
    tag=TAG,
    body=MoveBody,
    response=payouts.Payout,
    errors=(400, 403, 404, 409),
)
async def move_payout(request: web.Request, body: MoveBody) -> payouts.Payout:
    me = await staff_account(request)
    payout_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn:
        return await payouts.move(
            conn,
            actor=me.id,
            payout_id=payout_id,
            status=body.status,
            failure_code=body.failure_code,
            failure_reason=body.failure_reason,
            processor_transaction_id=body.processor_transaction_id,
            request=request,
        )
