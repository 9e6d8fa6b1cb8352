"""Stripe Billing's customers, payment methods, subscriptions and invoices as the payment port
sees them, over kernel.payments.stripe.StripeClient (same errors: PaymentDeclined,
PaymentRequestInvalid, IdempotencyConflict, StripeUnavailable).

Both API version shapes are read: the classic one (2024-06-20), where `current_period_start/end`
sit on the subscription, and the newer one (2025-03-31 and later), where they sit on each
subscription item. An invoice's own `period_start/end` is Stripe's usage period (it looks back
one period on a renewal), not the service period: read the subscription's `period()`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec

from kernel.payments.stripe import PaymentRequestInvalid, Refund, StripeClient

# Stripe's largest page of a list.
MAX_PAGE_SIZE = 100


class Price(msgspec.Struct, kw_only=True):
    id: str
    unit_amount: int | None = None
    currency: str | None = None


class SubscriptionItem(msgspec.Struct, kw_only=True):
    """One price of a subscription; carries the period from API version 2025-03-31 on."""

    id: str
    price: Price
    current_period_start: int | None = None
    current_period_end: int | None = None


class SubscriptionItems(msgspec.Struct, kw_only=True):
    data: list[SubscriptionItem]


class CancellationDetails(msgspec.Struct, kw_only=True):
    reason: str | None = None
    comment: str | None = None
    feedback: str | None = None


class InvoiceTransitions(msgspec.Struct, kw_only=True):
    paid_at: int | None = None
    finalized_at: int | None = None


class Invoice(msgspec.Struct, kw_only=True):
    """A Stripe Invoice. `status` is draft, open, paid, uncollectible or void; `total` is
    negative for a credit (a downgrade's proration), when `amount_due` is 0."""

    id: str
    number: str | None = None
    customer: str | None = None
    subscription: str | None = None
    status: str | None = None
    currency: str = "usd"
    subtotal: int = 0
    tax: int | None = None
    total: int = 0
    amount_due: int = 0
    amount_paid: int = 0
    due_date: int | None = None
    period_start: int | None = None
    period_end: int | None = None
    created: int | None = None
    invoice_pdf: str | None = None
    hosted_invoice_url: str | None = None
    payment_intent: str | None = None
    billing_reason: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    status_transitions: InvoiceTransitions | None = None


class Subscription(msgspec.Struct, kw_only=True):
    """A Stripe Subscription of one price. `status` is incomplete, incomplete_expired,
    trialing, active, past_due, canceled, unpaid or paused. `latest_invoice` is the Invoice
    when the request expanded it, else its id."""

    id: str
    customer: str
    status: str
    items: SubscriptionItems
    current_period_start: int | None = None
    current_period_end: int | None = None
    cancel_at_period_end: bool = False
    canceled_at: int | None = None
    cancel_at: int | None = None
    ended_at: int | None = None
    trial_end: int | None = None
    latest_invoice: Invoice | str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    cancellation_details: CancellationDetails | None = None

    def period(self) -> tuple[int, int]:
        """(start, end) of the current period, in Unix seconds, from either API shape."""
        if self.current_period_start is not None and self.current_period_end is not None:
            return self.current_period_start, self.current_period_end
        item = self._first_item()
        if item.current_period_start is None or item.current_period_end is None:
            raise PaymentRequestInvalid(
                f"the payment provider's subscription {self.id} has no current period"
            )
        return item.current_period_start, item.current_period_end

    @property
    def price_id(self) -> str:
        return self._first_item().price.id

    @property
    def item_id(self) -> str:
        """The id `change_price` needs to replace the price rather than add one."""
        return self._first_item().id

    def _first_item(self) -> SubscriptionItem:
        if not self.items.data:
            raise PaymentRequestInvalid(
                f"the payment provider's subscription {self.id} has no items"
            )
        return self.items.data[0]


class PaymentMethod(msgspec.Struct, kw_only=True):
    id: str
    customer: str | None = None
    type: str | None = None


class CustomerInvoiceSettings(msgspec.Struct, kw_only=True):
    default_payment_method: str | None = None


class Customer(msgspec.Struct, kw_only=True):
    id: str
    email: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    invoice_settings: CustomerInvoiceSettings | None = None


class _InvoicePage(msgspec.Struct, kw_only=True):
    data: list[Invoice]
    has_more: bool = False


def _metadata(values: dict[str, str]) -> list[tuple[str, str]]:
    return [(f"metadata[{key}]", value) for key, value in values.items()]


def _subscription_path(subscription_id: str) -> str:
    return f"/v1/subscriptions/{quote(subscription_id, safe='')}"


class StripeBilling:
    """Customers, payment methods, subscriptions and invoices over `client`. Every POST takes
    an idempotency key: a caller retrying after StripeUnavailable must reuse it."""

    def __init__(self, client: StripeClient) -> None:
        self._client = client

    async def create_customer(
        self,
        *,
        email: str,
        name: str | None = None,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> Customer:
        """POST /v1/customers."""
        form = [("email", email)]
        if name is not None:
            form.append(("name", name))
        form += _metadata(metadata)
        body = await self._client.request("POST", "/v1/customers", form, idempotency_key)
        return msgspec.convert(body, Customer)

    async def attach_payment_method(
        self, payment_method: str, *, customer: str, idempotency_key: str
    ) -> PaymentMethod:
        """POST /v1/payment_methods/{pm}/attach. Use the returned id from then on: a test
        shortcut (pm_card_visa ...) comes back as a new PaymentMethod. A card that fails
        Stripe's check raises PaymentDeclined."""
        path = f"/v1/payment_methods/{quote(payment_method, safe='')}/attach"
        form = [("customer", customer)]
        body = await self._client.request("POST", path, form, idempotency_key)
        return msgspec.convert(body, PaymentMethod)

    async def create_subscription(
        self,
        *,
        customer: str,
        price: str,
        default_payment_method: str,
        billing_cycle_anchor: int | None = None,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> Subscription:
        """POST /v1/subscriptions of one price, charging the first invoice at once (prorated
        up to `billing_cycle_anchor` when given). When that charge fails Stripe creates
        nothing and PaymentDeclined is raised; otherwise the subscription is active and
        `latest_invoice` is the paid Invoice."""
        form = [
            ("customer", customer),
            ("items[0][price]", price),
            ("default_payment_method", default_payment_method),
            ("payment_behavior", "error_if_incomplete"),
            ("proration_behavior", "create_prorations"),
        ]
        if billing_cycle_anchor is not None:
            form.append(("billing_cycle_anchor", str(billing_cycle_anchor)))
        form += _metadata(metadata)
        form.append(("expand[]", "latest_invoice"))
        body = await self._client.request("POST", "/v1/subscriptions", form, idempotency_key)
        return msgspec.convert(body, Subscription)

    async def retrieve_subscription(self, subscription_id: str) -> Subscription:
        """GET /v1/subscriptions/{id}; `latest_invoice` is an id."""
        body = await self._client.request("GET", _subscription_path(subscription_id))
        return msgspec.convert(body, Subscription)

    async def change_price(
        self, subscription_id: str, *, item_id: str, price: str, idempotency_key: str
    ) -> Subscription:
        """POST /v1/subscriptions/{id} replacing item `item_id`'s price, invoicing the
        proration for the rest of the period at once: an upgrade is charged (a decline raises
        PaymentDeclined and changes nothing), a downgrade gives a paid invoice with a negative
        total (a credit on the customer's balance). The period does not move."""
        form = [
            ("items[0][id]", item_id),
            ("items[0][price]", price),
            ("proration_behavior", "always_invoice"),
            ("payment_behavior", "error_if_incomplete"),
            ("expand[]", "latest_invoice"),
        ]
        path = _subscription_path(subscription_id)
        body = await self._client.request("POST", path, form, idempotency_key)
        return msgspec.convert(body, Subscription)

    async def set_cancel_at_period_end(
        self,
        subscription_id: str,
        cancel: bool,
        *,
        comment: str | None = None,
        idempotency_key: str,
    ) -> Subscription:
        """POST /v1/subscriptions/{id}: with `cancel`, the subscription ends when its period
        does (no renewal is charged); without, a pending cancellation is withdrawn."""
        form = [("cancel_at_period_end", "true" if cancel else "false")]
        if comment is not None:
            form.append(("cancellation_details[comment]", comment))
        path = _subscription_path(subscription_id)
        body = await self._client.request("POST", path, form, idempotency_key)
        return msgspec.convert(body, Subscription)

    async def cancel_now(self, subscription_id: str, *, comment: str | None = None) -> Subscription:
        """DELETE /v1/subscriptions/{id}: canceled at once, nothing refunded. Sent without an
        Idempotency-Key (Stripe takes none on DELETE); repeating it is safe: Stripe answers
        "No such subscription" for one already canceled, and the canceled one is returned."""
        params = [] if comment is None else [("cancellation_details[comment]", comment)]
        path = _subscription_path(subscription_id)
        try:
            body = await self._client.request("DELETE", path, params=params)
        except PaymentRequestInvalid as refused:
            if refused.details.get("provider_code") != "resource_missing":
                raise
            current = await self.retrieve_subscription(subscription_id)
            if current.status != "canceled":
                raise
            return current
        return msgspec.convert(body, Subscription)

    async def list_invoices(
        self,
        *,
        subscription: str,
        created_gte: int | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> list[Invoice]:
        """Every invoice of `subscription` (created at or after `created_gte`), newest first,
        following Stripe's pages of `page_size` (at most 100)."""
        base = [("subscription", subscription), ("limit", str(min(page_size, MAX_PAGE_SIZE)))]
        if created_gte is not None:
            base.append(("created[gte]", str(created_gte)))
        invoices: list[Invoice] = []
        params = base
        while True:
            body: dict[str, Any] = await self._client.request("GET", "/v1/invoices", params=params)
            page = msgspec.convert(body, _InvoicePage)
            invoices += page.data
            if not page.has_more or not page.data:
                return invoices
            params = [*base, ("starting_after", page.data[-1].id)]

    async def refund(self, payment_intent: str, *, idempotency_key: str) -> Refund:
        """POST /v1/refunds of the whole payment `payment_intent` (an invoice's)."""
        return await self._client.create_refund(
            payment_intent=payment_intent, idempotency_key=idempotency_key
        )
