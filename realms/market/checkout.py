"""Market checkout: a buyer's cart of one seller's products becomes one order with its items,
priced (flash sale, sale or base price, variant adjustment), discounted by a promo code,
shipped by the delivery zone's tariff, taxed (prices include tax), commissioned per item, and
paid from the GoGoMoney wallet when chosen, all in one transaction. Stock, flash-sale stock,
promo code usage and the wallet are each changed by one conditional statement under a row
lock, so no concurrency oversells, overuses or overdraws."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from kernel.errors import BadRequest, Conflict, NotFound
from realms.market import money
from realms.market.money import cents

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Line:
    product_id: int
    quantity: int
    variant_id: int | None = None


@dataclass(frozen=True)
class Cart:
    buyer_id: int
    lines: list[Line]
    delivery_address_id: int
    payment_method: str
    promo_code: str | None = None
    notes: str | None = None


@dataclass
class Item:
    product_id: int
    variant_id: int | None
    category_id: int
    name: str
    variant_name: str | None
    sku: str | None
    attributes: dict[str, Any] | None
    quantity: int
    unit_price: Decimal
    tax_rate: Decimal
    weight: Decimal
    flash_sale_product_id: int | None
    discount: Decimal = Decimal(0)
    commission_rate: Decimal = Decimal(0)

    @property
    def subtotal(self) -> Decimal:
        return cents(self.unit_price * self.quantity)

    @property
    def net(self) -> Decimal:
        return self.subtotal - self.discount

    @property
    def tax(self) -> Decimal:
        # Prices include tax: the tax part of what is paid for the item.
        return cents(self.net * self.tax_rate / (HUNDRED + self.tax_rate))

    @property
    def commission(self) -> Decimal:
        return cents(self.net * self.commission_rate / HUNDRED)


@dataclass
class Placed:
    """What checkout made: the order and its amounts."""

    order_id: int
    order_number: str
    seller_id: int
    payment_status: str
    subtotal: Decimal
    discount_amount: Decimal
    tax_amount: Decimal
    shipping_cost: Decimal
    commission_amount: Decimal
    total_amount: Decimal
    currency: str
    items: list[Item] = field(default_factory=list)


def _merge(lines: list[Line]) -> list[Line]:
    """One line per (product, variant), in lock order (product id, then variant id)."""
    total: dict[tuple[int, int | None], int] = defaultdict(int)
    for line in lines:
        total[(line.product_id, line.variant_id)] += line.quantity
    return [
        Line(p, q, v)
        for (p, v), q in sorted(total.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))
    ]


_PRODUCTS = """
SELECT p.id, p.seller_id, p.category_id, p.name, p.sku, p.status::text AS status, p.currency,
       coalesce(p.sale_price, p.base_price) AS price, p.tax_rate, coalesce(p.weight, 0) AS weight,
       p.min_order_quantity, p.max_order_quantity,
       f.id AS flash_id, f.sale_price AS flash_price
  FROM market.products p
  LEFT JOIN LATERAL (
        -- The running flash sale's entry for the product, one with stock left first.
        SELECT e.id, e.sale_price FROM market.flash_sale_products e
          JOIN market.flash_sales s ON s.id = e.flash_sale_id
         WHERE e.product_id = p.id AND s.is_active AND s.starts_at <= now() AND now() < s.ends_at
         ORDER BY (e.stock_limit IS NULL OR e.sold_count < e.stock_limit) DESC, e.sale_price,
                  e.id
         LIMIT 1) f ON true
 WHERE p.id = ANY ($1::bigint[]) AND p.deleted_at IS NULL
"""

_VARIANTS = """
SELECT id, product_id, name, sku, attributes, price_adjustment, is_active
  FROM market.product_variants WHERE id = ANY ($1::bigint[]) AND deleted_at IS NULL
"""


async def _items(conn: asyncpg.Connection, cart: Cart) -> tuple[list[Item], int, str]:
    lines = _merge(cart.lines)
    products = {r["id"]: r for r in await conn.fetch(_PRODUCTS, [ln.product_id for ln in lines])}
    variant_ids = [ln.variant_id for ln in lines if ln.variant_id is not None]
    variants = {r["id"]: r for r in await conn.fetch(_VARIANTS, variant_ids)} if variant_ids else {}
    rates = await money.commission_rates(conn)
    items: list[Item] = []
    sellers, currencies = set(), set()
    for line in lines:
        p = products.get(line.product_id)
        if p is None:
            raise NotFound(f"product {line.product_id} does not exist")
        if p["status"] != "active":
            raise Conflict(f"product {p['id']} is not on sale (it is {p['status']})")
        if line.quantity < p["min_order_quantity"]:
            raise BadRequest(f"product {p['id']} is sold {p['min_order_quantity']} at least")
        if p["max_order_quantity"] is not None and line.quantity > p["max_order_quantity"]:
            raise BadRequest(f"product {p['id']} is sold {p['max_order_quantity']} at most")
        sellers.add(p["seller_id"])
        currencies.add(p["currency"])
        adjustment, variant_name, sku, attributes = Decimal(0), None, p["sku"], None
        if line.variant_id is not None:
            v = variants.get(line.variant_id)
            if v is None or v["product_id"] != p["id"] or not v["is_active"]:
                raise NotFound(f"product {p['id']} has no variant {line.variant_id} on sale")
            adjustment, variant_name = v["price_adjustment"], v["name"]
            sku, attributes = v["sku"] or sku, v["attributes"]
        base = p["flash_price"] if p["flash_id"] is not None else p["price"]
        unit = base + adjustment
        if unit < 0:
            raise Conflict(f"product {p['id']} has no valid price")
        items.append(
            Item(
                product_id=p["id"],
                variant_id=line.variant_id,
                category_id=p["category_id"],
                name=p["name"],
                variant_name=variant_name,
                sku=sku,
                attributes=attributes,
                quantity=line.quantity,
                unit_price=unit,
                tax_rate=p["tax_rate"],
                weight=p["weight"],
                flash_sale_product_id=p["flash_id"],
                commission_rate=rates.of(p["category_id"]),
            )
        )
    if len(sellers) != 1:
        raise BadRequest("a checkout holds one seller's products: check out each seller apart")
    (seller,) = sellers
    if seller == cart.buyer_id:
        raise BadRequest("sellers cannot buy their own products")
    if len(currencies) != 1:
        raise BadRequest("a checkout's products must share one currency")
    return items, seller, currencies.pop()


async def _take_stock(conn: asyncpg.Connection, items: list[Item]) -> None:
    """Conditional decrements in lock order (products, variants, flash-sale entries, each by
    id): a row that cannot cover the quantity matches nothing and the checkout fails."""
    for item in items:
        left = await conn.fetchval(
            "UPDATE market.products SET stock_quantity = stock_quantity - $2"
            " WHERE id = $1 AND (allow_backorder OR stock_quantity >= $2)"
            " RETURNING stock_quantity",
            item.product_id,
            item.quantity,
        )
        if left is None:
            raise Conflict(f"product {item.product_id} is out of stock for {item.quantity}")
    for item in sorted(
        (i for i in items if i.variant_id is not None), key=lambda i: i.variant_id or 0
    ):
        left = await conn.fetchval(
            "UPDATE market.product_variants SET stock_quantity = stock_quantity - $2"
            " WHERE id = $1 AND stock_quantity >= $2 RETURNING stock_quantity",
            item.variant_id,
            item.quantity,
        )
        if left is None:
            raise Conflict(f"variant {item.variant_id} is out of stock for {item.quantity}")
    flash: dict[int, int] = defaultdict(int)
    for item in items:
        if item.flash_sale_product_id is not None:
            flash[item.flash_sale_product_id] += item.quantity
    for entry, quantity in sorted(flash.items()):
        sold = await conn.fetchval(
            "UPDATE market.flash_sale_products SET sold_count = sold_count + $2"
            " WHERE id = $1 AND (stock_limit IS NULL OR sold_count + $2 <= stock_limit)"
            " RETURNING sold_count",
            entry,
            quantity,
        )
        if sold is None:
            raise Conflict(
                f"the flash sale's stock of this product is sold out (entry {entry})",
                details={"reason": "flash_sale_sold_out"},
            )


async def _shipping(
    conn: asyncpg.Connection, address: asyncpg.Record, goods: Decimal, weight: Decimal
) -> tuple[Decimal, int | None, int | None]:
    """(cost, zone, estimated hours) by the zone containing the address and its cheapest
    active tariff: base + per kg, free from the tariff's threshold. An address without
    coordinates is not priced (0, no zone); one outside every zone cannot be delivered."""
    if address["latitude"] is None or address["longitude"] is None:
        return Decimal(0), None, None
    zone = await conn.fetchval(
        "SELECT id FROM market.delivery_zones_at($1, $2) LIMIT 1",
        address["latitude"],
        address["longitude"],
    )
    if zone is None:
        raise BadRequest("no delivery zone covers the delivery address")
    tariff = await conn.fetchrow(
        "SELECT base_cost, cost_per_kg, free_delivery_threshold, estimated_hours"
        "  FROM market.delivery_tariffs WHERE zone_id = $1 AND is_active"
        " ORDER BY base_cost, id LIMIT 1",
        zone,
    )
    if tariff is None:
        return Decimal(0), zone, None
    threshold = tariff["free_delivery_threshold"]
    if threshold is not None and goods >= threshold:
        return Decimal(0), zone, tariff["estimated_hours"]
    cost = cents(tariff["base_cost"] + tariff["cost_per_kg"] * weight)
    return cost, zone, tariff["estimated_hours"]


def _eligible(code: asyncpg.Record, item: Item, seller: int) -> bool:
    ids = {int(i) for i in (code["applicable_ids"] or [])}
    return {
        "all": True,
        "category": item.category_id in ids,
        "product": item.product_id in ids,
        "seller": seller in ids,
    }[code["applicable_to"]]


async def _promo(
    conn: asyncpg.Connection, cart: Cart, items: list[Item], seller: int, shipping: Decimal
) -> tuple[asyncpg.Record, Decimal]:
    """The code's row and its shipping discount; item discounts are set on `items`. Clear
    errors for what the schema's usage trigger would refuse anyway."""
    code = await conn.fetchrow(
        "SELECT id, code, type::text AS type, value, min_order_amount, max_discount_amount,"
        " usage_limit, usage_count, usage_limit_per_user, applicable_to::text AS applicable_to,"
        " applicable_ids, starts_at, expires_at, is_active FROM market.promo_codes"
        " WHERE code = $1",
        cart.promo_code,
    )
    if code is None:
        raise BadRequest(f"unknown promo code {cart.promo_code!r}")
    now = datetime.now(UTC)
    if not code["is_active"]:
        raise BadRequest(f"promo code {code['code']} is not active")
    if now >= code["expires_at"]:
        raise BadRequest(
            f"promo code {code['code']} expired at {code['expires_at'].isoformat()}",
            details={"reason": "promo_code_expired", "expires_at": code["expires_at"].isoformat()},
        )
    if now < code["starts_at"]:
        raise BadRequest(
            f"promo code {code['code']} is valid from {code['starts_at'].isoformat()}",
            details={"reason": "promo_code_not_started"},
        )
    goods = sum((i.subtotal for i in items), Decimal(0))
    if goods < code["min_order_amount"]:
        raise BadRequest(
            f"promo code {code['code']} needs an order of {code['min_order_amount']} at least"
        )
    eligible = [i for i in items if _eligible(code, i, seller)]
    if code["type"] == "free_shipping":
        ship_off = shipping
        if code["max_discount_amount"] is not None:
            ship_off = min(ship_off, code["max_discount_amount"])
        return code, ship_off
    if not eligible:
        raise BadRequest(f"promo code {code['code']} does not apply to these products")
    base = sum((i.subtotal for i in eligible), Decimal(0))
    if code["type"] == "percentage":
        off = cents(base * code["value"] / HUNDRED)
    else:
        off = min(code["value"], base)
    if code["max_discount_amount"] is not None:
        off = min(off, code["max_discount_amount"])
    # Spread over the eligible items by their share, the rounding rest on the last.
    rest = off
    for item in eligible[:-1]:
        item.discount = cents(off * item.subtotal / base) if base else Decimal(0)
        rest -= item.discount
    eligible[-1].discount = rest
    return code, Decimal(0)


_PROMO_REFUSALS = {
    "promo_codes_usage_within_limit": "has been used up",
    "promo_code_usage_per_user_limit": "was used by you as often as it allows",
    "promo_code_usage_within_validity": "is not valid now",
    "promo_code_usage_code_active": "is not active",
    "promo_code_usage_min_order_amount": "needs a larger order",
    "promo_code_usage_discount_within_cap": "caps its discount lower",
}


async def place_order(conn: asyncpg.Connection, cart: Cart) -> Placed:
    """Check out `cart` in one transaction; the order is `pending` (paid when the wallet paid
    it). BadRequest / NotFound for a cart that can never be checked out, Conflict for one that
    cannot be now (stock, flash-sale stock, promo usage, wallet funds); nothing is kept."""
    if not cart.lines:
        raise BadRequest("the cart is empty")
    async with conn.transaction():
        address = await conn.fetchrow(
            "SELECT latitude, longitude FROM market.user_addresses"
            " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL",
            cart.delivery_address_id,
            cart.buyer_id,
        )
        if address is None:
            raise NotFound(f"you have no address {cart.delivery_address_id}")
        items, seller, currency = await _items(conn, cart)
        goods = sum((i.subtotal for i in items), Decimal(0))
        weight = sum((i.weight * i.quantity for i in items), Decimal(0))
        shipping, zone, hours = await _shipping(conn, address, goods, weight)
        code, ship_off = (
            await _promo(conn, cart, items, seller, shipping) if cart.promo_code else (None, 0)
        )
        await _take_stock(conn, items)
        item_off = sum((i.discount for i in items), Decimal(0))
        total = goods - item_off + shipping - Decimal(ship_off)
        commission = sum((i.commission for i in items), Decimal(0))
        order = await conn.fetchrow(
            "WITH n AS (SELECT nextval(pg_get_serial_sequence('market.orders', 'id')) AS id)"
            " INSERT INTO market.orders (id, order_number, buyer_id, seller_id, payment_method,"
            "   subtotal, discount_amount, tax_amount, shipping_cost, commission_amount,"
            "   total_amount, currency, promo_code_id, delivery_address_id, delivery_zone_id,"
            "   estimated_delivery_date, notes)"
            " SELECT n.id, 'GM' || to_char(now() AT TIME ZONE 'UTC', 'YYMMDD') || '-'"
            "   || lpad(n.id::text, 8, '0'), $1, $2, $3::market.payment_method_enum, $4, $5, $6,"
            "   $7, $8, $9, $10, $11, $12, $13,"
            "   CASE WHEN $14::int IS NULL THEN NULL"
            "        ELSE (now() + make_interval(hours => $14))::date END, $15"
            " FROM n RETURNING id, order_number",
            cart.buyer_id,
            seller,
            cart.payment_method,
            goods,
            item_off + Decimal(ship_off),
            sum((i.tax for i in items), Decimal(0)),
            shipping,
            commission,
            total,
            currency,
            code["id"] if code else None,
            cart.delivery_address_id,
            zone,
            hours,
            cart.notes,
        )
        order_id = order["id"]
        await conn.executemany(
            "INSERT INTO market.order_items (order_id, product_id, variant_id, product_name,"
            " variant_name, sku, quantity, unit_price, discount_amount, tax_amount, subtotal,"
            " attributes, flash_sale_product_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            [
                (
                    order_id,
                    i.product_id,
                    i.variant_id,
                    i.name,
                    i.variant_name,
                    i.sku,
                    i.quantity,
                    i.unit_price,
                    i.discount,
                    i.tax,
                    i.subtotal,
                    i.attributes,
                    i.flash_sale_product_id,
                )
                for i in items
            ],
        )
        await _commissions(conn, order_id, seller, items)
        if code is not None:
            await _use_code(conn, code, cart.buyer_id, order_id, item_off + Decimal(ship_off))
        paid = "pending"
        if cart.payment_method == "gogomoney":
            if total > 0:
                wallet = await money.wallet_of(conn, cart.buyer_id)
                await money.move(
                    conn, wallet, "purchase", -total, ("order", order_id),
                    f"order {order['order_number']}",
                )  # fmt: skip
            paid = "paid"
            await conn.execute(
                "UPDATE market.orders SET payment_status = 'paid' WHERE id = $1", order_id
            )
    return Placed(
        order_id=order_id,
        order_number=order["order_number"],
        seller_id=seller,
        payment_status=paid,
        subtotal=goods,
        discount_amount=item_off + Decimal(ship_off),
        tax_amount=sum((i.tax for i in items), Decimal(0)),
        shipping_cost=shipping,
        commission_amount=commission,
        total_amount=total,
        currency=currency,
        items=items,
    )


async def _commissions(
    conn: asyncpg.Connection, order_id: int, seller: int, items: list[Item]
) -> None:
    """Commission is computed per item (its amount after discount x its category's rate,
    rounded per item); the order gets one commissions row per distinct rate, holding the
    items' amount and the sum of their commissions."""
    by_rate: dict[Decimal, list[Item]] = defaultdict(list)
    for item in items:
        by_rate[item.commission_rate].append(item)
    await conn.executemany(
        "INSERT INTO market.commissions (order_id, seller_id, commission_rate,"
        " commission_amount, order_amount) VALUES ($1, $2, $3, $4, $5)",
        [
            (
                order_id,
                seller,
                rate,
                sum((i.commission for i in group), Decimal(0)),
                sum((i.net for i in group), Decimal(0)),
            )
            for rate, group in sorted(by_rate.items())
        ],
    )


async def _use_code(
    conn: asyncpg.Connection, code: asyncpg.Record, buyer: int, order_id: int, off: Decimal
) -> None:
    """Record the use; the schema's trigger locks the code row, so concurrent checkouts with
    one code queue there and usage_limit is never passed."""
    try:
        await conn.execute(
            "INSERT INTO market.promo_code_usage (promo_code_id, user_id, order_id,"
            " discount_amount) VALUES ($1, $2, $3, $4)",
            code["id"],
            buyer,
            order_id,
            off,
        )
    except asyncpg.CheckViolationError as exc:
        why = _PROMO_REFUSALS.get(exc.constraint_name or "")
        if why is None:
            raise
        raise Conflict(
            f"promo code {code['code']} {why}", details={"reason": exc.constraint_name}
        ) from None
