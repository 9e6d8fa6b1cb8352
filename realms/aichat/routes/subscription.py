"""/v1/aichat/subscription writes: subscribe with a card, change the plan, cancel (at the end
of the paid period or now) and resume, through Stripe Billing (realms/aichat/subscriptions.py).
Each answers the subscription as it now is; the read is GET /v1/aichat/subscription."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from msgspec import Meta, Struct

from kernel.payments.billing import StripeBilling
from kernel.web.auth import caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.aichat import subscriptions
from realms.aichat.billing import AICHAT_STRIPE
from realms.aichat.routes.billing import SubscriptionOut, subscription_of

routes = web.RouteTableDef()
PlanName = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
# A Stripe PaymentMethod id (pm_...), as Stripe.js or the mobile SDKs hand it to the client.
PaymentMethodId = Annotated[str, Meta(max_length=255, pattern=r"^pm_[A-Za-z0-9_]+$")]
ERRORS = (400, 404, 409, 503)


class SubscribeIn(Struct, forbid_unknown_fields=True):
    plan: PlanName
    payment_method: PaymentMethodId


class PlanChangeIn(Struct, forbid_unknown_fields=True):
    plan: PlanName


class CancelIn(Struct, forbid_unknown_fields=True):
    at_period_end: bool = True
    reason: Annotated[str, Meta(max_length=255, pattern=r"^[^\x00]*$")] | None = None


def _billing(request: web.Request) -> StripeBilling:
    return StripeBilling(request.app[AICHAT_STRIPE].client)  # 503 when Stripe is not set up


@endpoint(
    routes,
    "POST",
    "/v1/subscription",
    summary="Subscribe to a paid plan with a Stripe payment method; the first (prorated) month"
    " is charged now, later months on the 1st (400 with decline details when the card fails)",
    tag="aichat billing",
    body=SubscribeIn,
    response=SubscriptionOut,
    status=201,
    errors=ERRORS,
)
async def subscribe(request: web.Request, body: SubscribeIn) -> SubscriptionOut:
    who = await caller(request)
    pool = request.app[POOL]
    await subscriptions.subscribe(
        pool, _billing(request), who.user_id, body.plan, body.payment_method
    )
    return await subscription_of(pool, who.user_id)


@endpoint(
    routes,
    "PATCH",
    "/v1/subscription",
    summary="Change to another paid plan now; the prorated difference is invoiced at once",
    tag="aichat billing",
    body=PlanChangeIn,
    response=SubscriptionOut,
    errors=ERRORS,
)
async def change_plan(request: web.Request, body: PlanChangeIn) -> SubscriptionOut:
    who = await caller(request)
    pool = request.app[POOL]
    await subscriptions.change_plan(pool, _billing(request), who.user_id, body.plan)
    return await subscription_of(pool, who.user_id)


@endpoint(
    routes,
    "POST",
    "/v1/subscription/cancel",
    summary="Cancel at the end of the paid period (default; resume undoes it) or now"
    " (`at_period_end: false`: back to Free at once, nothing refunded)",
    tag="aichat billing",
    body=CancelIn,
    response=SubscriptionOut,
    errors=ERRORS,
)
async def cancel(request: web.Request, body: CancelIn) -> SubscriptionOut:
    who = await caller(request)
    pool = request.app[POOL]
    await subscriptions.cancel(
        pool, _billing(request), who.user_id, at_period_end=body.at_period_end, reason=body.reason
    )
    return await subscription_of(pool, who.user_id)


@endpoint(
    routes,
    "POST",
    "/v1/subscription/resume",
    summary="Undo a cancellation at period end while the period lasts",
    tag="aichat billing",
    response=SubscriptionOut,
    errors=ERRORS,
)
async def resume(request: web.Request) -> SubscriptionOut:
    who = await caller(request)
    pool = request.app[POOL]
    await subscriptions.resume(pool, _billing(request), who.user_id)
    return await subscription_of(pool, who.user_id)
