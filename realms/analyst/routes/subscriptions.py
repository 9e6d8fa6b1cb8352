"""Subscriptions: subscribing to a tier (invite and discount applied, an order opened, free
plans active at once), cancelling, auto-renewal and the lists; and the billing rules (retries,
grace period, suspension, renewals due) that payments and the scheduled jobs call."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.web.auth import Caller, admin, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid
from realms.analyst.razorpay import Order, create_order
from realms.analyst.routes.discounts import AppliedDiscount, TierPrice, apply_code, open_tier_price
from realms.analyst.routes.invites import Referral, claim_signup

routes = web.RouteTableDef()

RETRY_LIMIT = 3  # retries after the failed renewal charge
RETRY_SPACING = timedelta(days=2)  # retries land on days 2, 4 and 6 of the grace period
GRACE_PERIOD = timedelta(days=7)
_PERIOD = "CASE billing_cycle WHEN 'yearly' THEN interval '1 year' ELSE interval '1 month' END"

Status = Literal["active", "cancelled", "expired", "suspended", "pending_payment"]
CodeText = Annotated[str, Meta(min_length=1, max_length=50)]


class SubscribeBody(Struct, forbid_unknown_fields=True):
    tier_id: uuid.UUID
    billing_cycle: Literal["monthly", "yearly"] = "monthly"
    discount_code: CodeText | None = None
    invite_code: CodeText | None = None


class RenewalBody(Struct, forbid_unknown_fields=True):
    auto_renewal: bool


class TierTerms(Struct):
    """What the subscription's tier gives (its current terms; prices are the subscription's)."""

    tier_name: str
    features: list[str]
    posts_per_day: int | None  # the analyst's posts a day for this tier; null = unlimited
    chat_access: bool
    priority_support: bool
    is_free_tier: bool


class SubscriptionOut(Struct):
    id: uuid.UUID
    user_id: uuid.UUID
    analyst_id: uuid.UUID
    tier_id: uuid.UUID
    status: str
    billing_cycle: str
    currency: str
    price_paid: int | None
    discount_applied: int | None
    final_price: int | None
    start_date: datetime | None
    expires_at: datetime | None
    cancelled_at: datetime | None
    suspended_at: datetime | None
    auto_renewal: bool
    next_billing_date: datetime | None
    payment_retry_count: int
    last_payment_attempt: datetime | None
    grace_period_ends_at: datetime | None
    referred_by_invite_link: uuid.UUID | None
    discount_code_used: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    has_access: bool
    pending_order: Order | None = None
    tier: TierTerms | None = None


class MineQuery(PageQuery, kw_only=True):
    status: Status | None = None


class SubscribersQuery(PageQuery, kw_only=True):
    status: Status | None = None
    tier_id: uuid.UUID | None = None


class AllQuery(PageQuery, kw_only=True):
    status: Status | None = None
    user_id: uuid.UUID | None = None
    analyst_id: uuid.UUID | None = None


# --- billing rules --------------------------------------------------------------------------


class BillingState(Struct, frozen=True):
    status: str
    payment_retry_count: int
    grace_period_ends_at: datetime | None


def after_failure(state: BillingState, now: datetime) -> BillingState:
    """The state after a failed charge. On an active subscription the first failure opens a
    7-day grace period (access continues); each failed retry counts, and the third one, or any
    failure once the grace period is over, suspends. Other states only note the attempt."""
    if state.status != "active":
        return state
    if state.grace_period_ends_at is None:
        return BillingState("active", 0, now + GRACE_PERIOD)
    retries = min(state.payment_retry_count + 1, RETRY_LIMIT)
    if retries >= RETRY_LIMIT or now >= state.grace_period_ends_at:
        return BillingState("suspended", retries, state.grace_period_ends_at)
    return BillingState("active", retries, state.grace_period_ends_at)


def next_charge_at(
    state: BillingState, next_billing_date: datetime | None, last_payment_attempt: datetime | None
) -> datetime | None:
    """When an active, auto-renewing subscription is next charged: its billing date, or during
    a grace period the next retry (2 days after the last attempt, before the grace ends)."""
    if state.status != "active" or next_billing_date is None:
        return None
    if state.grace_period_ends_at is None:
        return next_billing_date
    if state.payment_retry_count >= RETRY_LIMIT or last_payment_attempt is None:
        return None
    due = last_payment_attempt + RETRY_SPACING
    return due if due < state.grace_period_ends_at else None


async def record_payment_failure(
    conn: asyncpg.Connection, subscription_id: uuid.UUID, now: datetime
) -> BillingState:
    """Apply `after_failure` to the subscription (locked); the grace period keeps expires_at
    at least at its end, suspension ends access at once. Run it in the caller's transaction."""
    row = await conn.fetchrow(
        "SELECT status, payment_retry_count, grace_period_ends_at FROM analyst.subscriptions"
        " WHERE id = $1 FOR UPDATE",
        subscription_id,
    )
    if row is None:
        raise LookupError(f"no subscription {subscription_id}")
    state = after_failure(BillingState(**dict(row)), now)
    await conn.execute(
        "UPDATE analyst.subscriptions SET status = $2::text, payment_retry_count = $3,"
        " grace_period_ends_at = $4::timestamptz, last_payment_attempt = $5::timestamptz,"
        " suspended_at = CASE WHEN $2::text = 'suspended' AND status <> 'suspended' THEN $5"
        "                     ELSE suspended_at END,"
        " expires_at = CASE WHEN $2::text = 'suspended' AND status <> 'suspended'"
        "                   THEN least(expires_at, $5)"
        "                   WHEN $2::text = 'active' THEN greatest(expires_at, $4)"
        "                   ELSE expires_at END"
        " WHERE id = $1",
        subscription_id,
        state.status,
        state.payment_retry_count,
        state.grace_period_ends_at,
        now,
    )
    return state


class RenewalDue(Struct, frozen=True):
    subscription_id: uuid.UUID
    user_id: uuid.UUID
    analyst_id: uuid.UUID
    amount: int
    currency: str
    retry: bool


async def renewal_due(
    conn: asyncpg.Connection, now: datetime, limit: int = 500
) -> list[RenewalDue]:
    """Subscriptions to charge now (`next_charge_at` <= now) that have no renewal order open.
    Renewals charge price_paid: the tier price at purchase, without the first period's
    discount. A deactivated or deleted tier is not renewed: its subscriptions run to their end.
    Open each one's order with `razorpay.create_order(conn, id, "renewal", amount)`."""
    rows = await conn.fetch(
        "SELECT s.id, s.user_id, s.analyst_id, coalesce(s.price_paid, s.final_price, 0) AS amount,"
        " s.currency, s.grace_period_ends_at IS NOT NULL AS retry"
        " FROM analyst.subscriptions s"
        " JOIN analyst.subscription_tiers t ON t.id = s.tier_id"
        " AND t.is_active AND t.deleted_at IS NULL"
        " WHERE s.status = 'active' AND s.auto_renewal AND s.deleted_at IS NULL"
        " AND s.next_billing_date <= $1 AND coalesce(s.price_paid, s.final_price, 0) > 0"
        " AND (s.grace_period_ends_at IS NULL"
        "      OR (s.payment_retry_count < $3 AND s.last_payment_attempt + $4 <= $1"
        "          AND s.last_payment_attempt + $4 < s.grace_period_ends_at))"
        " AND NOT EXISTS (SELECT 1 FROM analyst.payment_transactions t"
        "                  WHERE t.subscription_id = s.id AND t.transaction_type = 'renewal'"
        "                    AND t.status = 'pending')"
        " ORDER BY s.next_billing_date, s.id LIMIT $2",
        now,
        limit,
        RETRY_LIMIT,
        RETRY_SPACING,
    )
    return [RenewalDue(*r.values()) for r in rows]


async def suspend_lapsed(conn: asyncpg.Connection, now: datetime) -> int:
    """Suspend active subscriptions whose grace period is over without a payment; returns how
    many. Run it before analyst.expire_old_subscriptions(), which ignores grace periods."""
    status = await conn.execute(
        "UPDATE analyst.subscriptions SET status = 'suspended', suspended_at = $1,"
        " expires_at = least(expires_at, $1)"
        " WHERE status = 'active' AND grace_period_ends_at <= $1",
        now,
    )
    return int(status.split()[-1])


async def activate_paid(
    conn: asyncpg.Connection, subscription_id: uuid.UUID, now: datetime
) -> asyncpg.Record | None:
    """A payment was captured for the subscription: a renewal of an active one extends it from
    its billing date; a pending, suspended or expired one starts a period now. Returns the row,
    or None when it cannot be active (cancelled, or the user has another active subscription
    with the analyst). Retry state is cleared."""
    try:
        async with conn.transaction():
            return await conn.fetchrow(
                "UPDATE analyst.subscriptions s SET status = 'active',"
                " start_date = CASE WHEN s.status = 'active' THEN s.start_date ELSE $2 END,"
                " expires_at = n.ends, next_billing_date = n.ends, suspended_at = NULL,"
                " payment_retry_count = 0, grace_period_ends_at = NULL, last_payment_attempt = $2"
                " FROM (SELECT id, CASE WHEN status = 'active'"
                "                       THEN coalesce(next_billing_date, expires_at, $2)"
                f"                      ELSE $2 END + {_PERIOD} AS ends"
                "       FROM analyst.subscriptions WHERE id = $1) n"
                " WHERE s.id = n.id AND s.deleted_at IS NULL"
                " AND s.status IN ('pending_payment', 'active', 'suspended', 'expired')"
                " RETURNING s.id, s.user_id, s.analyst_id, s.expires_at, s.referred_by_invite_link",
                subscription_id,
                now,
            )
    except asyncpg.UniqueViolationError:
        return None


async def cancel(conn: asyncpg.Connection, subscription_id: uuid.UUID, now: datetime) -> None:
    """Cancel the subscription and its open orders. Access ends at once (it follows the status,
    see HAS_ACCESS); expires_at stays as the record of the period that was paid for."""
    await conn.execute(
        "UPDATE analyst.subscriptions SET status = 'cancelled', cancelled_at = $2,"
        " auto_renewal = false, next_billing_date = NULL, grace_period_ends_at = NULL"
        " WHERE id = $1",
        subscription_id,
        now,
    )
    await conn.execute(
        "UPDATE analyst.payment_transactions SET status = 'cancelled'"
        " WHERE subscription_id = $1 AND status = 'pending'",
        subscription_id,
    )


# --- reads ----------------------------------------------------------------------------------

# Whether subscription `s` gives access now: while active and unexpired. Cancelling ends access
# at once (the gateway removes the member from gated channels the moment the status leaves
# 'active'); to stop at the end of the paid period, turn auto_renewal off instead. Content,
# chat and notification audiences read the same rule.
HAS_ACCESS = (
    "(s.deleted_at IS NULL AND s.status = 'active'"
    " AND (s.expires_at IS NULL OR s.expires_at > clock_timestamp())) IS TRUE"
)
_SELECT = (
    "SELECT s.id, s.user_id, s.analyst_id, s.tier_id, s.status, s.billing_cycle, s.currency,"
    " s.price_paid, s.discount_applied, s.final_price, s.start_date, s.expires_at,"
    " s.cancelled_at, s.suspended_at, s.auto_renewal, s.next_billing_date,"
    " s.payment_retry_count, s.last_payment_attempt, s.grace_period_ends_at,"
    " s.referred_by_invite_link, s.discount_code_used, s.created_at, s.updated_at,"
    f" {HAS_ACCESS} AS has_access,"
    " o.id AS order_payment_id, o.razorpay_order_id, o.amount AS order_amount,"
    " o.currency AS order_currency, o.status AS order_status,"
    " tt.tier_name AS tier_tier_name, tt.features AS tier_features,"
    " tt.posts_per_day AS tier_posts_per_day, tt.chat_access AS tier_chat_access,"
    " tt.priority_support AS tier_priority_support, tt.is_free_tier AS tier_is_free_tier"
    " FROM analyst.subscriptions s"
    " JOIN analyst.subscription_tiers tt ON tt.id = s.tier_id"
    " LEFT JOIN LATERAL (SELECT t.id, t.razorpay_order_id, t.amount, t.currency, t.status"
    "                      FROM analyst.payment_transactions t"
    "                     WHERE t.subscription_id = s.id"
    "                       AND t.transaction_type IN ('subscription_payment', 'renewal')"
    "                     ORDER BY t.created_at DESC, t.id DESC LIMIT 1) o ON true"
)


def _out(row: asyncpg.Record) -> SubscriptionOut:
    values = dict(row)
    order = None
    if values.pop("order_status") in ("pending", "failed"):
        order = Order(
            values["order_payment_id"],
            values["razorpay_order_id"],
            values["order_amount"],
            values["order_currency"],
        )
    for key in ("order_payment_id", "razorpay_order_id", "order_amount", "order_currency"):
        del values[key]
    terms = {name: values.pop(f"tier_{name}") for name in TierTerms.__struct_fields__}
    terms["features"] = list(terms["features"] or [])
    return msgspec.convert({**values, "pending_order": order, "tier": terms}, SubscriptionOut)


async def load(conn: asyncpg.Connection, subscription_id: uuid.UUID) -> SubscriptionOut:
    row = await conn.fetchrow(
        f"{_SELECT} WHERE s.id = $1 AND s.deleted_at IS NULL", subscription_id
    )
    if row is None:
        raise NotFound("no such subscription")
    return _out(row)


async def _page(
    request: web.Request, query: PageQuery, where: str, *args: object
) -> Page[SubscriptionOut]:
    """A page of subscriptions matching `where` (parameters from $4), newest first."""
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    rows = await request.app[POOL].fetch(
        f"{_SELECT} WHERE s.deleted_at IS NULL AND {where}"
        " AND ($1::timestamptz IS NULL OR (s.created_at, s.id) < ($1, $2))"
        " ORDER BY s.created_at DESC, s.id DESC LIMIT $3",
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
        *args,
    )
    return page_of([_out(r) for r in rows], query.limit, lambda s: (s.created_at, s.id))


async def _locked(
    conn: asyncpg.Connection, who: Caller, subscription_id: uuid.UUID
) -> asyncpg.Record:
    """The subscription, locked, if the caller is its subscriber or an admin; NotFound else."""
    row = await conn.fetchrow(
        "SELECT id, user_id, status FROM analyst.subscriptions"
        " WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        subscription_id,
    )
    if row is None or not (who.is_admin or row["user_id"] == who.user_id):
        raise NotFound("no such subscription")
    return row


# --- subscribing ----------------------------------------------------------------------------


async def _clear_the_way(
    conn: asyncpg.Connection, user_id: uuid.UUID, analyst_id: uuid.UUID, now: datetime
) -> None:
    """One open subscription per user and analyst: an active or unpaid one refuses a new one;
    a suspended one is replaced (cancelled)."""
    rows = await conn.fetch(
        "SELECT id, status FROM analyst.subscriptions WHERE user_id = $1 AND analyst_id = $2"
        " AND deleted_at IS NULL AND status IN ('active', 'pending_payment', 'suspended')"
        " FOR UPDATE",
        user_id,
        analyst_id,
    )
    for row in rows:
        details = {"subscription_id": str(row["id"])}
        if row["status"] == "active":
            raise Conflict(
                "you already have an active subscription to this analyst", details=details
            )
        if row["status"] == "pending_payment":
            raise Conflict(
                "a subscription to this analyst is waiting for payment: pay its order or cancel it",
                details=details,
            )
        await cancel(conn, row["id"], now)


async def _discount(
    conn: asyncpg.Connection,
    body: SubscribeBody,
    referral: Referral | None,
    tier: TierPrice,
    user_id: uuid.UUID,
    now: datetime,
) -> AppliedDiscount | None:
    if body.discount_code is not None:
        return await apply_code(conn, body.discount_code, tier, user_id, now)
    if referral is not None and referral.discount_code is not None and tier.price > 0:
        try:
            return await apply_code(conn, referral.discount_code, tier, user_id, now)
        except (BadRequest, Conflict):
            return None  # the link's own code is a bonus, never a reason to refuse
    return None


@endpoint(
    routes,
    "POST",
    "/v1/subscriptions",
    summary="Subscribe to a tier: opens an order to pay, or activates at once when free",
    tag="subscriptions",
    body=SubscribeBody,
    response=SubscriptionOut,
    status=201,
    errors=(404, 409),
)
async def subscribe(request: web.Request, body: SubscribeBody) -> SubscriptionOut:
    who = await caller(request)
    now = datetime.now(UTC)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        # One subscribe at a time per user: the open-subscription, first-time and per-user
        # checks below then cannot race each other.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"subscribe:{who.user_id}"
        )
        tier = await open_tier_price(conn, body.tier_id, body.billing_cycle)
        if tier.analyst_id == who.user_id:
            raise BadRequest("tier_id: you cannot subscribe to yourself")
        await _clear_the_way(conn, who.user_id, tier.analyst_id, now)
        referral = None
        if body.invite_code is not None:
            referral = await claim_signup(conn, body.invite_code, tier.analyst_id, now)
        applied = await _discount(conn, body, referral, tier, who.user_id, now)
        final_price = applied.final_price if applied else tier.price
        paid_now = final_price == 0
        try:
            subscription_id = await conn.fetchval(
                "INSERT INTO analyst.subscriptions (user_id, analyst_id, tier_id, status,"
                " billing_cycle, currency, price_paid, discount_applied, final_price,"
                " start_date, expires_at, next_billing_date, auto_renewal,"
                " referred_by_invite_link, discount_code_used)"
                " SELECT $1::uuid, $2::uuid, $3::uuid, $4::text, $5::text, $6::text, $7::int,"
                " $8::int, $9::int, p.starts, p.ends, p.ends,"
                " $4::text = 'pending_payment' OR p.ends IS NOT NULL, $12::uuid, $13::uuid"
                " FROM (SELECT CASE WHEN $10::bool THEN $11::timestamptz END AS starts,"
                "              CASE WHEN $10 AND $7::int > 0 THEN $11::timestamptz"
                "                   + CASE $5::text WHEN 'yearly' THEN interval '1 year'"
                "                                   ELSE interval '1 month' END END AS ends) p"
                " RETURNING id",
                who.user_id,
                tier.analyst_id,
                tier.tier_id,
                "active" if paid_now else "pending_payment",
                tier.billing_cycle,
                tier.currency,
                tier.price,
                applied.discount if applied else 0,
                final_price,
                paid_now,
                now,
                referral.link_id if referral else None,
                applied.code_id if applied else None,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("you already have an active subscription to this analyst") from None
        except asyncpg.CheckViolationError as exc:
            if exc.constraint_name == "discount_codes_usage_within_limit":
                raise Conflict("discount_code: the code has reached its usage limit") from None
            raise BadRequest(f"the subscription breaks {exc.constraint_name}") from None
        if not paid_now:
            await create_order(conn, subscription_id, "subscription_payment", final_price)
        return await load(conn, subscription_id)


@endpoint(
    routes,
    "GET",
    "/v1/subscriptions",
    summary="The caller's own subscriptions, newest first",
    tag="subscriptions",
    query=MineQuery,
    response=Page[SubscriptionOut],
)
async def list_mine(request: web.Request, query: MineQuery) -> Page[SubscriptionOut]:
    who = await caller(request)
    return await _page(
        request,
        query,
        "s.user_id = $4 AND ($5::text IS NULL OR s.status = $5)",
        who.user_id,
        query.status,
    )


@endpoint(
    routes,
    "GET",
    "/v1/subscribers",
    summary="The caller's subscribers, newest first (analysts)",
    tag="subscriptions",
    query=SubscribersQuery,
    response=Page[SubscriptionOut],
    errors=(403,),
)
async def list_subscribers(request: web.Request, query: SubscribersQuery) -> Page[SubscriptionOut]:
    who = await caller(request)
    if who.user_type != "analyst":
        raise Forbidden("only analysts have subscribers")
    return await _page(
        request,
        query,
        "s.analyst_id = $4 AND ($5::text IS NULL OR s.status = $5)"
        " AND ($6::uuid IS NULL OR s.tier_id = $6)",
        who.user_id,
        query.status,
        query.tier_id,
    )


@endpoint(
    routes,
    "GET",
    "/v1/admin/subscriptions",
    summary="Every subscription, newest first, filtered by user, analyst or status (admins)",
    tag="subscriptions",
    query=AllQuery,
    response=Page[SubscriptionOut],
    errors=(403,),
)
async def list_all(request: web.Request, query: AllQuery) -> Page[SubscriptionOut]:
    await admin(request)
    return await _page(
        request,
        query,
        "($4::text IS NULL OR s.status = $4) AND ($5::uuid IS NULL OR s.user_id = $5)"
        " AND ($6::uuid IS NULL OR s.analyst_id = $6)",
        query.status,
        query.user_id,
        query.analyst_id,
    )


@endpoint(
    routes,
    "GET",
    "/v1/subscriptions/{id}",
    summary="One subscription (its subscriber, its analyst, or an admin)",
    tag="subscriptions",
    response=SubscriptionOut,
    errors=(404,),
)
async def get_subscription(request: web.Request) -> SubscriptionOut:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn:
        found = await load(conn, path_uuid(request))
    if not (who.is_admin or who.user_id in (found.user_id, found.analyst_id)):
        raise NotFound("no such subscription")
    return found


@endpoint(
    routes,
    "POST",
    "/v1/subscriptions/{id}/cancel",
    summary="Cancel a subscription; a paid period stays usable until expires_at (subscriber"
    " or admin)",
    tag="subscriptions",
    response=SubscriptionOut,
    errors=(404, 409),
)
async def cancel_subscription(request: web.Request) -> SubscriptionOut:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _locked(conn, who, path_uuid(request))
        if row["status"] not in ("active", "pending_payment", "suspended"):
            raise Conflict(f"the subscription is already {row['status']}")
        await cancel(conn, row["id"], datetime.now(UTC))
        return await load(conn, row["id"])


@endpoint(
    routes,
    "PATCH",
    "/v1/subscriptions/{id}",
    summary="Turn auto-renewal on or off (subscriber or admin)",
    tag="subscriptions",
    body=RenewalBody,
    response=SubscriptionOut,
    errors=(404, 409),
)
async def set_auto_renewal(request: web.Request, body: RenewalBody) -> SubscriptionOut:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _locked(conn, who, path_uuid(request))
        if row["status"] not in ("active", "pending_payment"):
            raise Conflict(f"the subscription is {row['status']}; subscribe again instead")
        await conn.execute(
            "UPDATE analyst.subscriptions SET auto_renewal = $2 WHERE id = $1",
            row["id"],
            body.auto_renewal,
        )
        return await load(conn, row["id"])
