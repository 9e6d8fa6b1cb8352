"""Stripe Billing in the local Stripe stand-in for tests: customers, payment methods,
subscriptions and invoices, deterministic under the clock `now` (a test may replace it).

    add_price(id, unit_amount)      a monthly price; POST /v1/customers makes customers
    POST /v1/payment_methods/{pm}/attach   takes pm_card_visa, pm_card_mastercard and
        pm_card_chargeCustomerFail (attaches, then every charge declines) and answers a NEW
        pm_<hex>; the declining shortcuts (DECLINES) are 402 already on attach
    POST /v1/subscriptions          one price, its first invoice charged at once (prorated by
        seconds up to a future billing_cycle_anchor); with payment_behavior=
        error_if_incomplete a decline is 402 and nothing is created
    GET, POST (price change with proration_behavior=always_invoice, cancel_at_period_end,
        cancellation_details[comment], metadata), DELETE /v1/subscriptions/{id}
    GET /v1/invoices                newest first, paged (limit, starting_after)
    renew(id)                       (sync) the period ends now: the next one is charged, or a
        subscription set to cancel at period end ends
    decline_charges(pm)             later charges to an attached method decline (a card that
        has since failed)
Subscriptions have the classic (2024-06-20) shape: the period on the subscription and on its
item. An invoice's period_start/end is Stripe's usage period (equal to `created` on a first or
update invoice, the previous period on a renewal); `lines` carry the service period.
Every change records its events (see standin_base).
"""

from __future__ import annotations

import calendar
import copy
import operator
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from aiohttp import web

from tests.payments.standin_base import (
    CARDS,
    CHARGE_FAILS,
    DECLINES,
    GENERIC_DECLINE,
    StandinBase,
    _error,
    _invalid,
    _missing,
    _nested,
)

CANCELED_UPDATE = "A canceled subscription can only update its cancellation_details and metadata."


@dataclass
class BillingStandin(StandinBase):
    """The Stripe Billing state and endpoints of the stand-in."""

    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    _declining: set[str] = field(default_factory=set)
    _invoice_counts: dict[str, int] = field(default_factory=dict)

    def add_billing_routes(self, app: web.Application) -> None:
        """Serve the Billing endpoints on `app`."""
        app.router.add_post("/v1/customers", self._create_customer)
        app.router.add_post("/v1/payment_methods/{id}/attach", self._attach_payment_method)
        app.router.add_post("/v1/subscriptions", self._create_subscription)
        app.router.add_get("/v1/subscriptions/{id}", self._get_subscription)
        app.router.add_post("/v1/subscriptions/{id}", self._update_subscription)
        app.router.add_delete("/v1/subscriptions/{id}", self._delete_subscription)
        app.router.add_get("/v1/invoices", self._list_invoices)

    # -- set-up helpers for tests ---------------------------------------------------------

    def add_price(self, price_id: str, unit_amount: int, currency: str = "usd") -> None:
        """A monthly recurring price of `unit_amount` (minor units)."""
        self.prices[price_id] = {
            "id": price_id,
            "object": "price",
            "unit_amount": unit_amount,
            "currency": currency,
            "recurring": {"interval": "month", "interval_count": 1},
        }

    def decline_charges(self, payment_method: str) -> None:
        """Every later charge to the attached `payment_method` declines (generic_decline)."""
        self._declining.add(payment_method)

    def renew(self, subscription_id: str) -> dict[str, Any]:
        """The current period of `subscription_id` ends now (synchronous; no HTTP). One set
        to cancel at period end is canceled and returned; any other gets the next calendar
        month and its invoice, charged to its default payment method (a decline leaves the
        invoice open and the subscription past_due), and that invoice is returned."""
        sub = self.subscriptions[subscription_id]
        if sub["status"] == "canceled":
            raise ValueError(f"{subscription_id} is canceled")
        start, end = sub["current_period_start"], sub["current_period_end"]
        if sub["cancel_at_period_end"]:
            sub["status"] = "canceled"
            sub["ended_at"] = end
            self._emit("customer.subscription.deleted", self._shown(sub, expand=False))
            return self._shown(sub, expand=False)
        anchor, months = sub["billing_cycle_anchor"], 1
        while _add_months(anchor, months) <= end:
            months += 1
        following = _add_months(anchor, months)
        _set_period(sub, end, following)
        item = sub["items"]["data"][0]
        invoice = self._invoice(
            sub,
            item["price"]["unit_amount"],
            "subscription_cycle",
            usage=(start, end),
            service=(end, following),
        )
        intent, decline = self._charge(sub, invoice)
        sub["status"] = "active" if decline is None else "past_due"
        self._commit("customer.subscription.updated", sub, invoice, intent)
        return copy.deepcopy(invoice)

    # -- endpoints -------------------------------------------------------------------------

    async def _create_customer(self, request: web.Request) -> web.Response:
        form, early = await self._start(request)
        if early is not None:
            return early
        customer: dict[str, Any] = {
            "id": f"cus_{secrets.token_hex(12)}",
            "object": "customer",
            "email": form.get("email"),
            "name": form.get("name"),
            "metadata": _nested(form, "metadata"),
            "invoice_settings": {"default_payment_method": None},
            "invoice_prefix": secrets.token_hex(4).upper(),
            "created": self.now(),
            "livemode": False,
        }
        self.customers[customer["id"]] = customer
        return self._remember(request, form, 200, copy.deepcopy(customer))

    async def _attach_payment_method(self, request: web.Request) -> web.Response:
        form, early = await self._start(request)
        if early is not None:
            return early
        given = request.match_info["id"]
        customer = form.get("customer", "")
        if customer not in self.customers:
            return _missing("customer", customer, "customer")
        attached = self.payment_methods.get(given)
        if attached is not None:
            if attached["customer"] not in (None, customer):
                return _error(
                    400,
                    "invalid_request_error",
                    None,
                    "The payment method you provided has already been attached to a customer.",
                )
            attached["customer"] = customer
            return self._remember(request, form, 200, copy.deepcopy(attached))
        if given in DECLINES:
            code, decline, message = DECLINES[given]
            error = {"type": "card_error", "code": code, "decline_code": decline}
            return self._remember(request, form, 402, {"error": {**error, "message": message}})
        if given not in CARDS:
            return _missing("PaymentMethod", given, "payment_method")
        brand, last4 = CARDS[given]
        method: dict[str, Any] = {
            "id": f"pm_{secrets.token_hex(12)}",
            "object": "payment_method",
            "type": "card",
            "customer": customer,
            "card": {"brand": brand, "last4": last4},
            "created": self.now(),
            "livemode": False,
        }
        self.payment_methods[method["id"]] = method
        if given == CHARGE_FAILS:
            self._declining.add(method["id"])
        return self._remember(request, form, 200, copy.deepcopy(method))

    async def _create_subscription(self, request: web.Request) -> web.Response:
        form, early = await self._start(request)
        if early is not None:
            return early
        customer = form.get("customer", "")
        if customer not in self.customers:
            return _missing("customer", customer, "customer")
        price = self.prices.get(form.get("items[0][price]", ""))
        if price is None:
            return _missing("price", form.get("items[0][price]", ""), "items[0][price]")
        method = form.get("default_payment_method", "")
        if self.payment_methods.get(method, {}).get("customer") != customer:
            return _missing("PaymentMethod", method, "default_payment_method")
        now = self.now()
        month_later = _add_months(now, 1)
        anchor = now
        if "billing_cycle_anchor" in form:
            if not form["billing_cycle_anchor"].isdigit():
                return _invalid("billing_cycle_anchor must be a Unix timestamp")
            anchor = int(form["billing_cycle_anchor"])
            if anchor > month_later:
                return _invalid("billing_cycle_anchor cannot be later than one period from now")
        if anchor > now:
            end = anchor
            whole = anchor - _add_months(anchor, -1)
            amount = round(Fraction(price["unit_amount"] * (anchor - now), whole))
        else:
            anchor, end, amount = now, month_later, price["unit_amount"]
        sub_id = f"sub_{secrets.token_hex(12)}"
        item = {"id": f"si_{secrets.token_hex(12)}", "object": "subscription_item"}
        sub: dict[str, Any] = {
            "id": sub_id,
            "object": "subscription",
            "customer": customer,
            "status": "active",
            "default_payment_method": method,
            "billing_cycle_anchor": anchor,
            "created": now,
            "start_date": now,
            "items": {
                "object": "list",
                "data": [{**item, "price": dict(price)}],
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancel_at": None,
            "ended_at": None,
            "trial_end": None,
            "latest_invoice": None,
            "metadata": _nested(form, "metadata"),
            "cancellation_details": {"reason": None, "comment": None, "feedback": None},
            "livemode": False,
        }
        _set_period(sub, now, end)
        invoice = self._invoice(
            sub, amount, "subscription_create", usage=(now, now), service=(now, end)
        )
        intent, decline = self._charge(sub, invoice)
        if decline is not None:
            if form.get("payment_behavior") == "error_if_incomplete":
                return self._remember(request, form, 402, {"error": decline})
            sub["status"] = "incomplete"
        self._commit("customer.subscription.created", sub, invoice, intent)
        return self._remember(request, form, 200, self._shown(sub, _expands(request, form)))

    async def _get_subscription(self, request: web.Request) -> web.Response:
        form, refused = await self._admit(request)
        if refused is not None:
            return refused
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            return _missing("subscription", request.match_info["id"], "id", status=404)
        return web.json_response(self._shown(sub, _expands(request, form)))

    async def _update_subscription(self, request: web.Request) -> web.Response:
        form, early = await self._start(request)
        if early is not None:
            return early
        current = self.subscriptions.get(request.match_info["id"])
        if current is None:
            return _missing("subscription", request.match_info["id"], "id", status=404)
        if current["status"] == "canceled" and any(
            not key.startswith(("cancellation_details[", "metadata[", "expand[")) for key in form
        ):
            return _invalid(CANCELED_UPDATE)
        # Changes apply to a copy, kept only when the whole update succeeds.
        sub = copy.deepcopy(current)
        now = self.now()
        invoice: dict[str, Any] | None = None
        intent: dict[str, Any] | None = None
        if "items[0][price]" in form:
            item = sub["items"]["data"][0]
            if form.get("items[0][id]") != item["id"]:
                return _missing("subscription item", form.get("items[0][id]", ""), "items[0][id]")
            price = self.prices.get(form["items[0][price]"])
            if price is None:
                return _missing("price", form["items[0][price]"], "items[0][price]")
            old_amount = item["price"]["unit_amount"]
            item["price"] = dict(price)
            if form.get("proration_behavior") == "always_invoice":
                start, end = sub["current_period_start"], sub["current_period_end"]
                amount = round(
                    Fraction((price["unit_amount"] - old_amount) * (end - now), end - start)
                )
                invoice = self._invoice(
                    sub, amount, "subscription_update", usage=(now, now), service=(now, end)
                )
                intent, decline = self._charge(sub, invoice)
                if decline is not None:
                    if form.get("payment_behavior") == "error_if_incomplete":
                        return self._remember(request, form, 402, {"error": decline})
                    sub["status"] = "past_due"
        if "cancel_at_period_end" in form:
            cancel = form["cancel_at_period_end"] == "true"
            sub["cancel_at_period_end"] = cancel
            sub["canceled_at"] = now if cancel else None
            sub["cancel_at"] = sub["current_period_end"] if cancel else None
            sub["cancellation_details"] = {
                "reason": "cancellation_requested" if cancel else None,
                "comment": None,
                "feedback": None,
            }
        if "cancellation_details[comment]" in form:
            sub["cancellation_details"]["comment"] = form["cancellation_details[comment]"] or None
        for key, value in _nested(form, "metadata").items():
            if value:
                sub["metadata"][key] = value
            else:
                sub["metadata"].pop(key, None)
        if invoice is None:
            self.subscriptions[sub["id"]] = sub
            self._emit("customer.subscription.updated", self._shown(sub, expand=False))
        else:
            self._commit("customer.subscription.updated", sub, invoice, intent)
        return self._remember(request, form, 200, self._shown(sub, _expands(request, form)))

    async def _delete_subscription(self, request: web.Request) -> web.Response:
        form, refused = await self._admit(request)
        if refused is not None:
            return refused
        sub = self.subscriptions.get(request.match_info["id"])
        # Stripe answers a DELETE of a canceled subscription as if it did not exist.
        if sub is None or sub["status"] == "canceled":
            return _missing("subscription", request.match_info["id"], "id", status=404)
        comment = request.query.get("cancellation_details[comment]")
        comment = form.get("cancellation_details[comment]", comment)
        now = self.now()
        sub["status"] = "canceled"
        sub["canceled_at"] = sub["ended_at"] = now
        sub["cancellation_details"] = {
            "reason": "cancellation_requested",
            "comment": comment or None,
            "feedback": None,
        }
        self._emit("customer.subscription.deleted", self._shown(sub, expand=False))
        return web.json_response(self._shown(sub, _expands(request, form)))

    async def _list_invoices(self, request: web.Request) -> web.Response:
        _, refused = await self._admit(request)
        if refused is not None:
            return refused
        query = request.query
        rows = list(reversed(self.invoices.values()))
        for name in ("subscription", "customer"):
            if name in query:
                rows = [row for row in rows if row[name] == query[name]]
        for bound, keep in (
            ("gte", operator.ge),
            ("gt", operator.gt),
            ("lte", operator.le),
            ("lt", operator.lt),
        ):
            given = query.get(f"created[{bound}]")
            if given is not None:
                if not given.isdigit():
                    return _invalid(f"created[{bound}] must be a Unix timestamp")
                rows = [row for row in rows if keep(row["created"], int(given))]
        # Newest first; a stable sort keeps ties newest-created first.
        rows.sort(key=lambda row: row["created"], reverse=True)
        limit = query.get("limit", "10")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            return _invalid("limit must be between 1 and 100")
        after = query.get("starting_after")
        if after is not None:
            ids = [row["id"] for row in rows]
            if after not in ids:
                return _missing("invoice", after, "starting_after")
            rows = rows[ids.index(after) + 1 :]
        page = rows[: int(limit)]
        body = {
            "object": "list",
            "data": [copy.deepcopy(row) for row in page],
            "has_more": len(rows) > len(page),
            "url": "/v1/invoices",
        }
        return web.json_response(body)

    # -- the model -------------------------------------------------------------------------

    def _invoice(
        self,
        sub: dict[str, Any],
        amount: int,
        reason: str,
        *,
        usage: tuple[int, int],
        service: tuple[int, int],
    ) -> dict[str, Any]:
        """A finalized (open) invoice of `amount` for `sub`, not stored yet."""
        price = sub["items"]["data"][0]["price"]
        invoice_id = f"in_{secrets.token_hex(12)}"
        now = self.now()
        due = max(amount, 0)
        return {
            "id": invoice_id,
            "object": "invoice",
            "number": None,
            "customer": sub["customer"],
            "subscription": sub["id"],
            "status": "open",
            "currency": price["currency"],
            "subtotal": amount,
            "tax": None,
            "total": amount,
            "amount_due": due,
            "amount_paid": 0,
            "amount_remaining": due,
            "due_date": None,
            "period_start": usage[0],
            "period_end": usage[1],
            "created": now,
            "invoice_pdf": f"https://pay.stripe.standin/invoice/{invoice_id}.pdf",
            "hosted_invoice_url": f"https://pay.stripe.standin/invoice/{invoice_id}",
            "payment_intent": None,
            "billing_reason": reason,
            "collection_method": "charge_automatically",
            "metadata": {},
            "status_transitions": {"finalized_at": now, "paid_at": None},
            "lines": {
                "object": "list",
                "data": [
                    {
                        "amount": amount,
                        "currency": price["currency"],
                        "price": dict(price),
                        "proration": reason != "subscription_cycle",
                        "period": {"start": service[0], "end": service[1]},
                    }
                ],
                "has_more": False,
            },
            "livemode": False,
        }

    def _charge(
        self, sub: dict[str, Any], invoice: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Pay `invoice` from `sub`'s default payment method: (the payment intent or None when
        nothing is due, the decline or None). Marks the invoice paid unless declined."""
        now = self.now()
        if invoice["amount_due"] <= 0:
            invoice["status"] = "paid"
            invoice["status_transitions"]["paid_at"] = now
            return None, None
        method = sub["default_payment_method"]
        intent: dict[str, Any] = {
            "id": f"pi_{secrets.token_hex(12)}",
            "object": "payment_intent",
            "amount": invoice["amount_due"],
            "currency": invoice["currency"],
            "customer": sub["customer"],
            "payment_method": method,
            "metadata": {},
            "last_payment_error": None,
            "latest_charge": None,
            "status": "succeeded",
            "created": now,
            "livemode": False,
        }
        invoice["payment_intent"] = intent["id"]
        if method in self._declining:
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = dict(GENERIC_DECLINE)
            return intent, dict(GENERIC_DECLINE)
        intent["latest_charge"] = f"ch_{secrets.token_hex(12)}"
        invoice["status"] = "paid"
        invoice["amount_paid"] = invoice["amount_due"]
        invoice["amount_remaining"] = 0
        invoice["status_transitions"]["paid_at"] = now
        return intent, None

    def _commit(
        self,
        sub_event: str,
        sub: dict[str, Any],
        invoice: dict[str, Any],
        intent: dict[str, Any] | None,
    ) -> None:
        """Store `sub` with its new latest `invoice` and record their events."""
        count = self._invoice_counts.get(sub["customer"], 0) + 1
        self._invoice_counts[sub["customer"]] = count
        invoice["number"] = f"{self.customers[sub['customer']]['invoice_prefix']}-{count:04d}"
        if intent is not None:
            self.intents[intent["id"]] = intent
        self.invoices[invoice["id"]] = invoice
        sub["latest_invoice"] = invoice["id"]
        self.subscriptions[sub["id"]] = sub
        self._emit(sub_event, self._shown(sub, expand=False))
        finalized = {
            **invoice,
            "status": "open",
            "amount_paid": 0,
            "amount_remaining": invoice["amount_due"],
            "status_transitions": {**invoice["status_transitions"], "paid_at": None},
        }
        self._emit("invoice.finalized", finalized)
        paid = invoice["status"] == "paid"
        self._emit("invoice.paid" if paid else "invoice.payment_failed", invoice)

    def _shown(self, sub: dict[str, Any], expand: bool) -> dict[str, Any]:
        shown = copy.deepcopy(sub)
        if expand and sub["latest_invoice"] is not None:
            shown["latest_invoice"] = copy.deepcopy(self.invoices[sub["latest_invoice"]])
        return shown


def _set_period(sub: dict[str, Any], start: int, end: int) -> None:
    """The classic shape: the period on the subscription and on its item."""
    sub["current_period_start"], sub["current_period_end"] = start, end
    for item in sub["items"]["data"]:
        item["current_period_start"], item["current_period_end"] = start, end


def _add_months(timestamp: int, months: int) -> int:
    """The same instant `months` calendar months later (UTC), on the month's last day when
    the day does not exist there, as Stripe bills."""
    at = datetime.fromtimestamp(timestamp, UTC)
    year, month = divmod(at.year * 12 + at.month - 1 + months, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return int(at.replace(year=year, month=month + 1, day=day).timestamp())


def _expands(request: web.Request, form: dict[str, str]) -> bool:
    return "latest_invoice" in (form.get("expand[]"), *request.query.getall("expand[]", []))
