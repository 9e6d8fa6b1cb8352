"""/v1/market/checkout: a buyer's cart of one seller's products becomes an order (checkout.py
prices, discounts, ships, commissions and pays it in one transaction; a card order is then
charged through Stripe by payments/card.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import BadRequest, Forbidden
from kernel.payments.stripe import StripeClient
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.market import checkout
from realms.market.payments import card as card_payment
from realms.market.payments.provider import CARD_PAYMENTS
from realms.market.routes.access import me

routes = web.RouteTableDef()

Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]


class LineIn(Struct, forbid_unknown_fields=True, kw_only=True):
    product_id: Id
    quantity: Annotated[int, Meta(ge=1, le=10_000)]
    variant_id: Id | None = None


class CheckoutBody(Struct, forbid_unknown_fields=True, kw_only=True):
    items: Annotated[list[LineIn], Meta(min_length=1, max_length=100)]
    delivery_address_id: Id
    payment_method: Literal["cash", "card", "gogomoney", "bank_transfer"]
    promo_code: Annotated[str, Meta(min_length=1, max_length=50)] | None = None
    notes: Annotated[str, Meta(max_length=2000)] | None = None
    # A Stripe PaymentMethod id (pm_...) from the client's card form; card checkouts only.
    payment_method_id: Annotated[str, Meta(min_length=1, max_length=255)] | None = None


class PlacedItem(Struct):
    product_id: int
    variant_id: int | None
    product_name: str
    quantity: int
    unit_price: Decimal
    discount_amount: Decimal
    tax_amount: Decimal
    subtotal: Decimal
    flash_sale: bool


class PlacedOrder(Struct):
    id: int
    order_number: str
    status: str
    payment_status: str
    seller_id: int
    subtotal: Decimal
    discount_amount: Decimal
    tax_amount: Decimal
    shipping_cost: Decimal
    total_amount: Decimal
    currency: str
    channel: str
    items: list[PlacedItem]
    payment_intent_id: str | None = None  # card orders: the Stripe PaymentIntent


@endpoint(
    routes,
    "POST",
    "/v1/checkout",
    summary="Check out one seller's products as an order (409: stock, flash-sale stock, promo"
    " code usage or wallet funds ran out; 400: e.g. an expired promo code, or `payment failed`"
    " for a declined card, whose order is kept with payment_status failed; 503: card payments"
    " are not configured or the provider is unavailable)",
    tag="market money",
    body=CheckoutBody,
    response=PlacedOrder,
    status=201,
    errors=(400, 401, 403, 404, 409, 503),
)
async def place(request: web.Request, body: CheckoutBody) -> PlacedOrder:
    who = await me(request)
    if who.role == "admin":
        raise Forbidden("admin accounts do not buy")
    card: StripeClient | None = None
    if body.payment_method == "card":
        if body.payment_method_id is None:
            raise BadRequest("a card checkout needs `payment_method_id` (a Stripe payment method)")
        card = request.app[CARD_PAYMENTS].client  # 503 before anything is kept
    elif body.payment_method_id is not None:
        raise BadRequest("`payment_method_id` is for card checkouts only")
    cart = checkout.Cart(
        buyer_id=who.id,
        lines=[checkout.Line(i.product_id, i.quantity, i.variant_id) for i in body.items],
        delivery_address_id=body.delivery_address_id,
        payment_method=body.payment_method,
        promo_code=body.promo_code,
        notes=body.notes,
    )
    async with request.app[POOL].acquire() as conn:
        placed = await checkout.place_order(conn, cart)
    intent: str | None = None
    if card is not None and body.payment_method_id is not None:
        placed.payment_status, intent = await card_payment.charge_order(
            request.app[POOL],
            card,
            card_payment.CardOrder(
                placed.order_id, placed.order_number, placed.total_amount, placed.currency
            ),
            body.payment_method_id,
        )
    return PlacedOrder(
        id=placed.order_id,
        order_number=placed.order_number,
        status="pending",
        payment_status=placed.payment_status,
        seller_id=placed.seller_id,
        subtotal=placed.subtotal,
        discount_amount=placed.discount_amount,
        tax_amount=placed.tax_amount,
        shipping_cost=placed.shipping_cost,
        total_amount=placed.total_amount,
        currency=placed.currency,
        channel=f"market.order:{placed.order_id}",
        items=[
            PlacedItem(
                product_id=i.product_id,
                variant_id=i.variant_id,
                product_name=i.name,
                quantity=i.quantity,
                unit_price=i.unit_price,
                discount_amount=i.discount,
                tax_amount=i.tax,
                subtotal=i.subtotal,
                flash_sale=i.flash_sale_product_id is not None,
            )
            for i in placed.items
        ],
        payment_intent_id=intent,
    )
