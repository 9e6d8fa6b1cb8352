"""Payouts (issue 21 item 3) over HTTP: the analyst's payout account and payouts, admins'
"pay out now" and list, and the payouts API's signed webhook. The flow itself (queue, send,
settle) is realms/analyst/payouts.py; the scheduled jobs run it daily and hourly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from kernel.logs import EventLog
from kernel.web.auth import Caller, admin, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL, SETTINGS
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.analyst import payouts
from realms.analyst.razorpay import signature_matches, webhook_secret, webhook_signature

routes = web.RouteTableDef()
log = EventLog("api.payouts")

FundAccount = Annotated[
    str, Meta(pattern=r"^fa_[A-Za-z0-9]{14}\Z", description="a RazorpayX fund account id")
]
PayoutStatus = Literal[
    "created",
    "queued",
    "pending",
    "processing",
    "processed",
    "reversed",
    "cancelled",
    "rejected",
    "failed",
]


class PayoutAccountBody(Struct, forbid_unknown_fields=True):
    fund_account_id: FundAccount


class PayoutAccountOut(Struct):
    """The analyst's payout account and where their share of captured payments stands."""

    fund_account_id: str | None
    due: int  # paise: captured shares not yet in a payout
    in_payout: int  # paise: in a payout not settled yet
    paid: int  # paise: paid out


class PayoutOut(Struct):
    """One payout: `amount` is the sum of its shares (payment_transactions.payout_amount).
    `payout_status` is 'created' until the payouts API accepted it, then the gateway's."""

    id: uuid.UUID
    analyst_id: uuid.UUID
    amount: int
    currency: str
    status: str
    payout_status: str
    razorpay_payout_id: str | None
    paid_out_at: datetime | None
    failure_reason: str | None
    shares: int
    created_at: datetime
    updated_at: datetime


class AdminPayoutsQuery(PageQuery, kw_only=True):
    payout_status: PayoutStatus | None = None
    analyst_id: uuid.UUID | None = None


class PayoutEntityIn(Struct):
    id: Annotated[str, Meta(min_length=1, max_length=255)]
    status: Annotated[str, Meta(max_length=50)] | None = None
    amount: int | None = None
    reference_id: Annotated[str, Meta(max_length=255)] | None = None
    failure_reason: Annotated[str, Meta(max_length=2000)] | None = None


class PayoutEnvelope(Struct):
    entity: PayoutEntityIn


class PayoutWebhookPayload(Struct):
    payout: PayoutEnvelope | None = None


class PayoutWebhookEvent(Struct):
    """A payouts webhook (payout.queued/.pending/.processed/.reversed/.failed/.rejected/
    .updated); only the fields read here."""

    event: Annotated[str, Meta(max_length=100)]
    payload: PayoutWebhookPayload = msgspec.field(default_factory=PayoutWebhookPayload)


class PayoutWebhookOut(Struct):
    status: Literal["processed", "duplicate", "ignored"]


_COLUMNS = (
    "t.id, t.analyst_id, t.amount, t.currency, t.status, t.payout_status,"
    " t.razorpay_payout_id, t.paid_out_at, t.failure_reason,"
    " coalesce((t.metadata ->> 'shares')::int, 0) AS shares, t.created_at, t.updated_at"
)
_SOURCES = "t.transaction_type IN ('subscription_payment', 'renewal')"


def _payout(row: asyncpg.Record) -> PayoutOut:
    return msgspec.convert(dict(row), PayoutOut)


async def _load(conn: asyncpg.Connection | asyncpg.Pool, payout_id: uuid.UUID) -> PayoutOut:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.payment_transactions t"
        " WHERE t.id = $1 AND t.transaction_type = 'payout'",
        payout_id,
    )
    if row is None:
        raise NotFound("no such payout")
    return _payout(row)


async def _analyst(request: web.Request) -> Caller:
    who = await caller(request)
    if who.user_type != "analyst":
        raise Forbidden("only analysts are paid out")
    return who


async def _account(conn: asyncpg.Connection, analyst_id: uuid.UUID) -> PayoutAccountOut:
    row = await conn.fetchrow(
        "SELECT p.razorpay_fund_account_id,"
        " coalesce(sum(t.payout_amount) FILTER (WHERE t.payout_status = 'pending'"
        "     AND t.status = 'captured'), 0) AS due,"
        " coalesce(sum(t.payout_amount) FILTER (WHERE t.payout_status = 'in_payout'), 0)"
        "     AS in_payout,"
        " coalesce(sum(t.payout_amount) FILTER (WHERE t.payout_status = 'paid'), 0) AS paid"
        " FROM analyst.analyst_profiles p"
        f" LEFT JOIN analyst.payment_transactions t ON t.analyst_id = p.user_id AND {_SOURCES}"
        " WHERE p.user_id = $1 AND p.deleted_at IS NULL GROUP BY p.razorpay_fund_account_id",
        analyst_id,
    )
    if row is None:
        raise NotFound("you have no analyst profile")
    return PayoutAccountOut(
        fund_account_id=row["razorpay_fund_account_id"],
        due=int(row["due"]),
        in_payout=int(row["in_payout"]),
        paid=int(row["paid"]),
    )


# --- the payouts API's webhook (static path first) -------------------------------------------


async def _signed_by_razorpay(request: web.Request) -> None:
    secret = webhook_secret(request.app[SETTINGS])
    given = request.headers.get("X-Razorpay-Signature", "")
    if not given or not signature_matches(webhook_signature(secret, await request.read()), given):
        raise Unauthorized("X-Razorpay-Signature does not match the body")


@endpoint(
    routes,
    "POST",
    "/v1/payouts/webhook",
    summary="Payouts webhook (signed with X-Razorpay-Signature): payout.* status changes,"
    " each applied once",
    tag="payouts",
    body=PayoutWebhookEvent,
    response=PayoutWebhookOut,
    auth=False,
    verify=_signed_by_razorpay,
    errors=(401, 503),
)
async def payout_webhook(request: web.Request, body: PayoutWebhookEvent) -> PayoutWebhookOut:
    """The payout is found by the gateway's payout id, or by its reference_id (our payout id)
    when the answer to the send was lost. Statuses only move forward (a late 'processing'
    after 'processed' is ignored); a replayed event (X-Razorpay-Event-Id, else event and
    payout id) is a duplicate."""
    if not body.event.startswith("payout.") or body.payload.payout is None:
        return PayoutWebhookOut("ignored")
    entity = body.payload.payout.entity
    status = entity.status or body.event.removeprefix("payout.")
    key = request.headers.get("X-Razorpay-Event-Id") or f"{body.event}:{entity.id}:{status}"
    try:
        reference = uuid.UUID(entity.reference_id or "")
    except ValueError:
        reference = None
    async with request.app[POOL].acquire() as conn, conn.transaction():
        payout = await conn.fetchrow(
            "SELECT id, amount, payout_status, razorpay_payout_id, metadata"
            " FROM analyst.payment_transactions WHERE transaction_type = 'payout'"
            " AND (razorpay_payout_id = $1 OR id = $2)"
            " ORDER BY razorpay_payout_id = $1 DESC NULLS LAST LIMIT 1 FOR UPDATE",
            entity.id,
            reference,
        )
        if payout is None or payout["razorpay_payout_id"] not in (None, entity.id):
            log.info("payout_webhook_ignored", reason="unknown_payout", key=key)
            return PayoutWebhookOut("ignored")
        if payouts.metadata_with_event(payout["metadata"], key):
            return PayoutWebhookOut("duplicate")
        if entity.amount is not None and entity.amount != payout["amount"]:
            log.warning("payout_webhook_ignored", reason="amount_mismatch", key=key)
            return PayoutWebhookOut("ignored")
        current = payout["payout_status"]
        outcome: Literal["processed", "duplicate", "ignored"]
        if status == current:
            outcome = "duplicate"
        elif await payouts.apply_status(
            conn,
            payout["id"],
            status,
            failure_reason=entity.failure_reason,
            razorpay_payout_id=entity.id,
            now=datetime.now(UTC),
        ):
            outcome = "processed"
        else:
            log.info("payout_webhook_ignored", reason="stale", key=key, status=status)
            outcome = "ignored"
        await conn.execute(
            "UPDATE analyst.payment_transactions"
            " SET metadata = jsonb_set(coalesce(metadata, '{}'), '{webhook_events}',"
            "   coalesce(metadata -> 'webhook_events', '[]') || to_jsonb($2::text))"
            " WHERE id = $1",
            payout["id"],
            key,
        )
    return PayoutWebhookOut(outcome)


# --- analysts ---------------------------------------------------------------------------------


@endpoint(
    routes,
    "PUT",
    "/v1/me/payout-account",
    summary="Set where the caller's earnings are paid: a RazorpayX fund account (analysts)",
    tag="payouts",
    body=PayoutAccountBody,
    response=PayoutAccountOut,
    errors=(403, 404),
)
async def set_payout_account(request: web.Request, body: PayoutAccountBody) -> PayoutAccountOut:
    """Payouts not yet sent go to the new account; sent ones are already on their way."""
    who = await _analyst(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if (
            await conn.execute(
                "UPDATE analyst.analyst_profiles SET razorpay_fund_account_id = $2"
                " WHERE user_id = $1 AND deleted_at IS NULL",
                who.user_id,
                body.fund_account_id,
            )
            == "UPDATE 0"
        ):
            raise NotFound("you have no analyst profile")
        return await _account(conn, who.user_id)


@endpoint(
    routes,
    "GET",
    "/v1/me/payout-account",
    summary="The caller's payout account and earnings due, in payout and paid (analysts)",
    tag="payouts",
    response=PayoutAccountOut,
    errors=(403, 404),
)
async def get_payout_account(request: web.Request) -> PayoutAccountOut:
    who = await _analyst(request)
    async with request.app[POOL].acquire() as conn:
        return await _account(conn, who.user_id)


async def _page(
    request: web.Request, query: PageQuery, where: str, *args: object
) -> Page[PayoutOut]:
    """Payouts matching `where` (parameters from $4), newest first."""
    after = decode_cursor(query.cursor, datetime, uuid.UUID) or (None, None)
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM analyst.payment_transactions t"
        f" WHERE t.transaction_type = 'payout' AND {where}"
        " AND ($1::timestamptz IS NULL OR (t.created_at, t.id) < ($1, $2::uuid))"
        " ORDER BY t.created_at DESC, t.id DESC LIMIT $3",
        *after,
        query.limit + 1,
        *args,
    )
    return page_of([_payout(r) for r in rows], query.limit, lambda p: (p.created_at, p.id))


@endpoint(
    routes,
    "GET",
    "/v1/me/payouts",
    summary="The caller's payouts, newest first (analysts)",
    tag="payouts",
    query=PageQuery,
    response=Page[PayoutOut],
    errors=(403,),
)
async def my_payouts(request: web.Request, query: PageQuery) -> Page[PayoutOut]:
    who = await _analyst(request)
    return await _page(request, query, "t.analyst_id = $4", who.user_id)


@endpoint(
    routes,
    "GET",
    "/v1/payouts/{id}",
    summary="One payout (its analyst or an admin)",
    tag="payouts",
    response=PayoutOut,
    errors=(404,),
)
async def get_payout(request: web.Request) -> PayoutOut:
    who = await caller(request)
    payout = await _load(request.app[POOL], path_uuid(request))
    if not (who.is_admin or payout.analyst_id == who.user_id):
        raise NotFound("no such payout")
    return payout


# --- admins -----------------------------------------------------------------------------------


@endpoint(
    routes,
    "GET",
    "/v1/admin/payouts",
    summary="Every payout, newest first, by status or analyst (admins)",
    tag="payouts",
    query=AdminPayoutsQuery,
    response=Page[PayoutOut],
    errors=(403,),
)
async def all_payouts(request: web.Request, query: AdminPayoutsQuery) -> Page[PayoutOut]:
    await admin(request)
    return await _page(
        request,
        query,
        "($4::text IS NULL OR t.payout_status = $4) AND ($5::uuid IS NULL OR t.analyst_id = $5)",
        query.payout_status,
        query.analyst_id,
    )


@endpoint(
    routes,
    "POST",
    "/v1/admin/analysts/{analyst_id}/payouts",
    summary="Pay an analyst's earnings due now, without waiting for the daily batch (admins)",
    tag="payouts",
    response=PayoutOut,
    status=201,
    errors=(400, 403, 404, 409, 503),
)
async def pay_out_now(request: web.Request) -> PayoutOut:
    """Queues one payout of everything due to the analyst and sends it. 409 when there is
    nothing to pay out (already in a payout, or less than 100 paise due) or no payout
    account; 400 for a user who is not an analyst; 503 when payouts are not configured.
    Unlike the batch, it also pays suspended or deleted accounts what they are owed. If the
    payouts API cannot be reached, the payout stays `created` and the hourly job sends it."""
    await admin(request)
    config = payouts.payouts_config(request.app[SETTINGS])
    analyst_id = path_uuid(request, "analyst_id")
    async with request.app[POOL].acquire() as conn:
        async with conn.transaction():
            user_type = await conn.fetchval(
                "SELECT user_type FROM analyst.users WHERE id = $1", analyst_id
            )
            if user_type is None:
                raise NotFound("no such user")
            if user_type != "analyst":
                raise BadRequest(f"analyst_id: this user is a {user_type}, not an analyst")
            fund = await conn.fetchrow(
                "SELECT razorpay_fund_account_id FROM analyst.analyst_profiles WHERE user_id = $1",
                analyst_id,
            )
            if fund is None:
                raise NotFound("the analyst has no profile")
            if fund["razorpay_fund_account_id"] is None:
                raise Conflict("the analyst has no payout account (PUT /v1/me/payout-account)")
            queued = await payouts.queue_payouts(conn, analyst_id=analyst_id, inactive=True)
            if not queued:
                await _nothing_due(conn, analyst_id)
        async with payouts.PayoutsClient(config) as client:
            await payouts.send_payout(conn, client, queued[0], datetime.now(UTC))
        return await _load(conn, queued[0])


async def _nothing_due(conn: asyncpg.Connection, analyst_id: uuid.UUID) -> None:
    """Raise the Conflict that explains why nothing could be queued."""
    row = await conn.fetchrow(
        "SELECT coalesce(sum(t.payout_amount) FILTER (WHERE t.payout_status = 'pending'"
        "     AND t.status = 'captured'), 0) AS due,"
        " coalesce(array_agg(DISTINCT t.payout_transaction_id::text)"
        "     FILTER (WHERE t.payout_status = 'in_payout'), '{}') AS open"
        f" FROM analyst.payment_transactions t WHERE t.analyst_id = $1 AND {_SOURCES}",
        analyst_id,
    )
    due, open_payouts = int(row["due"]), list(row["open"])
    if due >= payouts.MINIMUM_PAYOUT:  # due, but its shares are being queued right now
        raise Conflict("a payout of these earnings is being prepared; try again shortly")
    raise Conflict(
        "nothing to pay out: "
        + (f"earnings are already in payout(s) {', '.join(open_payouts)}; " if open_payouts else "")
        + f"{due} paise due (at least {payouts.MINIMUM_PAYOUT} are needed for a payout)",
        details={"due": due, "in_payout": open_payouts},
    )
