"""Valid rows for every market table, for the schema tests.

`World.make(table, **columns)` inserts one row into market.<table> and returns its id. Columns
not given get valid values; parents that are not given are created (and parents that must
agree with each other, such as an order's buyer and its delivery address, are made to agree).
Each table also has a named method with the same behaviour (`world.order(...)`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

# A fixed instant in the past for rows whose timestamps a test compares.
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
# bcrypt-shaped: $2b$, cost, 53 characters of salt and hash.
BCRYPT = "$2b$12$" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"
# A unit square of Tashkent (longitude 69..70, latitude 41..42), as (x=lon, y=lat) vertices.
TASHKENT = asyncpg.Polygon((69.0, 41.0), (70.0, 41.0), (70.0, 42.0), (69.0, 42.0))
NO_SUCH_ID = 2_000_000_000

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def D(value: str | int) -> Decimal:
    return Decimal(str(value))


def _check_identifiers(*names: str) -> None:
    for name in names:
        if not _IDENT.match(name):
            raise ValueError(f"not a plain identifier: {name!r}")


async def insert(db: asyncpg.Connection, table: str, **fields: Any) -> int:
    """INSERT one row into market.<table>; returns its id."""
    _check_identifiers(table, *fields)
    cols = ", ".join(fields)
    params = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    sql = f"INSERT INTO market.{table} ({cols}) VALUES ({params}) RETURNING id"
    if not fields:
        sql = f"INSERT INTO market.{table} DEFAULT VALUES RETURNING id"
    row_id: int = await db.fetchval(sql, *fields.values())
    return row_id


async def rejected(
    db: asyncpg.Connection,
    action: Awaitable[Any],
    exc: type[asyncpg.PostgresError],
    constraint: str | set[str] | None = None,
) -> asyncpg.PostgresError:
    """`action` (a statement on `db`, not yet awaited) fails with `exc`, naming `constraint`
    (or one of a set) when given. Runs in a (sub)transaction, so `db` stays usable."""
    with pytest.raises(exc) as info:
        async with db.transaction():
            await action
    if constraint is not None:
        expected = {constraint} if isinstance(constraint, str) else constraint
        assert info.value.constraint_name in expected, info.value
    return info.value


class World:
    """Factories for market rows on one connection."""

    def __init__(self, db: asyncpg.Connection) -> None:
        self.db = db

    # -- generic ------------------------------------------------------------------------------

    async def make(self, table: str, **fields: Any) -> int:
        factory: Callable[..., Awaitable[int]] = getattr(self, FACTORIES[table])
        return await factory(**fields)

    async def get(self, table: str, row_id: int) -> asyncpg.Record:
        _check_identifiers(table)
        row = await self.db.fetchrow(f"SELECT * FROM market.{table} WHERE id = $1", row_id)
        assert row is not None, f"market.{table} {row_id} is gone"
        return row

    async def value(self, table: str, column: str, row_id: int) -> Any:
        _check_identifiers(table, column)
        return await self.db.fetchval(f"SELECT {column} FROM market.{table} WHERE id = $1", row_id)

    async def exists(self, table: str, row_id: int) -> bool:
        _check_identifiers(table)
        found: bool = await self.db.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM market.{table} WHERE id = $1)", row_id
        )
        return found

    async def reinsert(self, table: str, row_id: int, **changes: Any) -> int:
        """Delete the row and insert a copy of it with `changes` (its id is not kept): the same
        valid row, but for the changed columns. Returns the new id."""
        row = dict(await self.get(table, row_id))
        await self.db.execute(f"DELETE FROM market.{table} WHERE id = $1", row_id)
        row.pop("id")
        if table == "messages":
            row.pop("seq")
        row.update(changes)
        return await insert(self.db, table, **row)

    @staticmethod
    def unique(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    # -- users --------------------------------------------------------------------------------

    async def user(self, role: str = "buyer", **f: Any) -> int:
        f.setdefault("email", f"{self.unique(role)}@example.com")
        f.setdefault("password_hash", BCRYPT)
        f.setdefault("first_name", "Aziz")
        f.setdefault("last_name", "Karimov")
        return await insert(self.db, "users", role=role, **f)

    async def buyer(self, **f: Any) -> int:
        return await self.user("buyer", **f)

    async def seller(self, **f: Any) -> int:
        return await self.user("seller", **f)

    async def courier(self, **f: Any) -> int:
        return await self.user("courier", **f)

    async def admin(self, *role_types: str, **f: Any) -> int:
        """An admin user holding the given admin roles."""
        user_id = await self.user("admin", **f)
        for role_type in role_types:
            await self.admin_role(user_id=user_id, role_type=role_type)
        return user_id

    async def admin_role(self, user_id: int | None = None, **f: Any) -> int:
        if user_id is None:
            user_id = await self.user("admin")
        f.setdefault("role_type", "accounting")
        f.setdefault("permissions", {"read": True})
        return await insert(self.db, "admin_roles", user_id=user_id, **f)

    async def session(self, user_id: int | None = None, **f: Any) -> int:
        user_id = user_id or await self.buyer()
        f.setdefault("token", self.unique("tok"))
        f.setdefault("expires_at", datetime.now(UTC) + timedelta(days=1))
        return await insert(self.db, "user_sessions", user_id=user_id, **f)

    async def address(self, user_id: int | None = None, **f: Any) -> int:
        user_id = user_id or await self.buyer()
        f.setdefault("type", "delivery")
        f.setdefault("full_name", "Aziz Karimov")
        f.setdefault("phone", "+998901234567")
        f.setdefault("country", "Uzbekistan")
        f.setdefault("city", "Tashkent")
        f.setdefault("street", "Amir Temur 1")
        return await insert(self.db, "user_addresses", user_id=user_id, **f)

    # -- catalog ------------------------------------------------------------------------------

    async def category(self, **f: Any) -> int:
        f.setdefault("name", "Phones")
        f.setdefault("slug", self.unique("cat"))
        return await insert(self.db, "categories", **f)

    async def product(
        self, seller_id: int | None = None, category_id: int | None = None, **f: Any
    ) -> int:
        seller_id = seller_id or await self.seller()
        category_id = category_id or await self.category()
        f.setdefault("name", "Smartphone X")
        f.setdefault("slug", self.unique("prod"))
        f.setdefault("description", "A phone with a good camera")
        f.setdefault("base_price", D("1000.00"))
        return await insert(self.db, "products", seller_id=seller_id, category_id=category_id, **f)

    async def product_image(self, product_id: int | None = None, **f: Any) -> int:
        product_id = product_id or await self.product()
        f.setdefault("url", "https://cdn.example.com/p.jpg")
        return await insert(self.db, "product_images", product_id=product_id, **f)

    async def variant(self, product_id: int | None = None, **f: Any) -> int:
        product_id = product_id or await self.product()
        f.setdefault("name", "Black, 128 GB")
        f.setdefault("attributes", {"color": "black", "storage": "128GB"})
        return await insert(self.db, "product_variants", product_id=product_id, **f)

    async def attribute(self, product_id: int | None = None, **f: Any) -> int:
        product_id = product_id or await self.product()
        f.setdefault("name", "Screen")
        f.setdefault("value", "6.1 inch")
        return await insert(self.db, "product_attributes", product_id=product_id, **f)

    # -- delivery -----------------------------------------------------------------------------

    async def zone(self, **f: Any) -> int:
        f.setdefault("name", "Tashkent centre")
        f.setdefault("city", "Tashkent")
        f.setdefault("polygon", TASHKENT)
        return await insert(self.db, "delivery_zones", **f)

    async def tariff(self, zone_id: int | None = None, **f: Any) -> int:
        zone_id = zone_id or await self.zone()
        f.setdefault("name", "Standard")
        f.setdefault("base_cost", D("15000.00"))
        return await insert(self.db, "delivery_tariffs", zone_id=zone_id, **f)

    # -- promotions ---------------------------------------------------------------------------

    async def promo_code(self, created_by: int | None = None, **f: Any) -> int:
        created_by = created_by or await self.user("admin")
        now = datetime.now(UTC)
        f.setdefault("code", self.unique("SAVE").upper())
        f.setdefault("name", "Spring sale")
        f.setdefault("type", "percentage")
        f.setdefault("value", D(10))
        f.setdefault("applicable_to", "all")
        f.setdefault("starts_at", now - timedelta(days=1))
        f.setdefault("expires_at", now + timedelta(days=30))
        return await insert(self.db, "promo_codes", created_by=created_by, **f)

    async def flash_sale(self, **f: Any) -> int:
        now = datetime.now(UTC)
        f.setdefault("name", "Midnight sale")
        f.setdefault("discount_percentage", D(20))
        f.setdefault("starts_at", now - timedelta(hours=1))
        f.setdefault("ends_at", now + timedelta(hours=1))
        return await insert(self.db, "flash_sales", **f)

    async def flash_sale_product(
        self, flash_sale_id: int | None = None, product_id: int | None = None, **f: Any
    ) -> int:
        flash_sale_id = flash_sale_id or await self.flash_sale()
        product_id = product_id or await self.product()
        f.setdefault("original_price", D("1000.00"))
        f.setdefault("sale_price", D("800.00"))
        return await insert(
            self.db,
            "flash_sale_products",
            flash_sale_id=flash_sale_id,
            product_id=product_id,
            **f,
        )

    # -- orders -------------------------------------------------------------------------------

    async def order(
        self,
        buyer_id: int | None = None,
        seller_id: int | None = None,
        delivery_address_id: int | None = None,
        **f: Any,
    ) -> int:
        if buyer_id is None and delivery_address_id is not None:
            buyer_id = await self.value("user_addresses", "user_id", delivery_address_id)
        buyer_id = buyer_id or await self.buyer()
        seller_id = seller_id or await self.seller()
        delivery_address_id = delivery_address_id or await self.address(buyer_id)
        f.setdefault("order_number", self.unique("GM"))
        f.setdefault("payment_method", "card")
        f.setdefault("subtotal", D("1000.00"))
        f.setdefault("total_amount", D("1000.00"))
        return await insert(
            self.db,
            "orders",
            buyer_id=buyer_id,
            seller_id=seller_id,
            delivery_address_id=delivery_address_id,
            **f,
        )

    async def order_item(
        self,
        order_id: int | None = None,
        product_id: int | None = None,
        variant_id: int | None = None,
        **f: Any,
    ) -> int:
        if product_id is None and variant_id is not None:
            product_id = await self.value("product_variants", "product_id", variant_id)
        if order_id is None:
            seller = await self.value("products", "seller_id", product_id) if product_id else None
            order_id = await self.order(seller_id=seller)
        if product_id is None:
            seller = await self.value("orders", "seller_id", order_id)
            product_id = await self.product(seller_id=seller)
        f.setdefault("product_name", "Smartphone X")
        f.setdefault("quantity", 1)
        f.setdefault("unit_price", D("1000.00"))
        f.setdefault("subtotal", D("1000.00"))
        return await insert(
            self.db,
            "order_items",
            order_id=order_id,
            product_id=product_id,
            variant_id=variant_id,
            **f,
        )

    async def status_history(self, order_id: int | None = None, **f: Any) -> int:
        order_id = order_id or await self.order()
        f.setdefault("status", "pending")
        return await insert(self.db, "order_status_history", order_id=order_id, **f)

    async def tracking(
        self, order_id: int | None = None, courier_id: int | None = None, **f: Any
    ) -> int:
        if order_id is None:
            courier_id = courier_id or await self.courier()
            order_id = await self.order(courier_id=courier_id)
        elif courier_id is None:
            courier_id = await self.value("orders", "courier_id", order_id)
            if courier_id is None:
                courier_id = await self.courier()
                await self.db.execute(
                    "UPDATE market.orders SET courier_id = $1 WHERE id = $2", courier_id, order_id
                )
        f.setdefault("status", "in_transit")
        f.setdefault("latitude", D("41.31108100"))
        f.setdefault("longitude", D("69.27973700"))
        return await insert(
            self.db, "order_tracking", order_id=order_id, courier_id=courier_id, **f
        )

    async def promo_usage(
        self,
        promo_code_id: int | None = None,
        user_id: int | None = None,
        order_id: int | None = None,
        **f: Any,
    ) -> int:
        promo_code_id = promo_code_id or await self.promo_code()
        if order_id is None:
            order_id = await self.order(buyer_id=user_id, promo_code_id=promo_code_id)
        else:
            await self.db.execute(
                "UPDATE market.orders SET promo_code_id = $1"
                " WHERE id = $2 AND promo_code_id IS NULL",
                promo_code_id,
                order_id,
            )
        if user_id is None:
            user_id = await self.value("orders", "buyer_id", order_id)
        f.setdefault("discount_amount", D("100.00"))
        return await insert(
            self.db,
            "promo_code_usage",
            promo_code_id=promo_code_id,
            user_id=user_id,
            order_id=order_id,
            **f,
        )

    # -- finance ------------------------------------------------------------------------------

    async def wallet(self, user_id: int | None = None, **f: Any) -> int:
        user_id = user_id or await self.buyer()
        return await insert(self.db, "wallets", user_id=user_id, **f)

    async def wallet_txn(self, wallet_id: int | None = None, **f: Any) -> int:
        wallet_id = wallet_id or await self.wallet()
        f.setdefault("type", "deposit")
        f.setdefault("amount", D("100.00"))
        f.setdefault("balance_before", D("0.00"))
        f.setdefault("balance_after", f["balance_before"] + f["amount"])
        return await insert(self.db, "wallet_transactions", wallet_id=wallet_id, **f)

    async def commission(
        self, order_id: int | None = None, seller_id: int | None = None, **f: Any
    ) -> int:
        order_id = order_id or await self.order(seller_id=seller_id)
        seller_id = seller_id or await self.value("orders", "seller_id", order_id)
        f.setdefault("commission_rate", D("5.00"))
        f.setdefault("commission_amount", D("50.00"))
        f.setdefault("order_amount", D("1000.00"))
        return await insert(self.db, "commissions", order_id=order_id, seller_id=seller_id, **f)

    async def bank_account(self, user_id: int | None = None, **f: Any) -> int:
        user_id = user_id or await self.seller()
        f.setdefault("bank_name", "Kapitalbank")
        f.setdefault("account_holder_name", "Aziz Karimov")
        f.setdefault("account_number", "enc:" + uuid.uuid4().hex)
        return await insert(self.db, "bank_accounts", user_id=user_id, **f)

    async def payout(
        self, seller_id: int | None = None, bank_account_id: int | None = None, **f: Any
    ) -> int:
        if seller_id is None and bank_account_id is not None:
            seller_id = await self.value("bank_accounts", "user_id", bank_account_id)
        seller_id = seller_id or await self.seller()
        f.setdefault("amount", D("500.00"))
        f.setdefault("method", "bank_transfer" if bank_account_id else "gogomoney")
        return await insert(
            self.db, "payouts", seller_id=seller_id, bank_account_id=bank_account_id, **f
        )

    # -- social -------------------------------------------------------------------------------

    async def story(self, user_id: int | None = None, **f: Any) -> int:
        user_id = user_id or await self.seller()
        f.setdefault("type", "image")
        f.setdefault("media_url", "https://cdn.example.com/s.jpg")
        return await insert(self.db, "stories", user_id=user_id, **f)

    async def story_view(
        self, story_id: int | None = None, viewer_id: int | None = None, **f: Any
    ) -> int:
        story_id = story_id or await self.story()
        viewer_id = viewer_id or await self.buyer()
        return await insert(self.db, "story_views", story_id=story_id, viewer_id=viewer_id, **f)

    async def reel(self, user_id: int | None = None, **f: Any) -> int:
        user_id = user_id or await self.seller()
        f.setdefault("video_url", "https://cdn.example.com/r.mp4")
        f.setdefault("thumbnail_url", "https://cdn.example.com/r.jpg")
        f.setdefault("duration", 30)
        return await insert(self.db, "reels", user_id=user_id, **f)

    async def reel_like(
        self, reel_id: int | None = None, user_id: int | None = None, **f: Any
    ) -> int:
        reel_id = reel_id or await self.reel()
        user_id = user_id or await self.buyer()
        return await insert(self.db, "reel_likes", reel_id=reel_id, user_id=user_id, **f)

    async def reel_comment(
        self,
        reel_id: int | None = None,
        user_id: int | None = None,
        parent_id: int | None = None,
        **f: Any,
    ) -> int:
        if reel_id is None and parent_id is not None:
            reel_id = await self.value("reel_comments", "reel_id", parent_id)
        reel_id = reel_id or await self.reel()
        user_id = user_id or await self.buyer()
        f.setdefault("content", "Nice!")
        return await insert(
            self.db, "reel_comments", reel_id=reel_id, user_id=user_id, parent_id=parent_id, **f
        )

    async def subscription(
        self, subscriber_id: int | None = None, subscribed_to_id: int | None = None, **f: Any
    ) -> int:
        subscriber_id = subscriber_id or await self.buyer()
        subscribed_to_id = subscribed_to_id or await self.seller()
        return await insert(
            self.db,
            "subscriptions",
            subscriber_id=subscriber_id,
            subscribed_to_id=subscribed_to_id,
            **f,
        )

    # -- chat ---------------------------------------------------------------------------------

    async def chat(self, created_by: int | None = None, **f: Any) -> int:
        created_by = created_by or await self.buyer()
        f.setdefault("type", "group")
        if f["type"] == "group":
            f.setdefault("name", "Sellers club")
        return await insert(self.db, "chats", created_by=created_by, **f)

    async def participant(
        self, chat_id: int | None = None, user_id: int | None = None, **f: Any
    ) -> int:
        chat_id = chat_id or await self.chat()
        user_id = user_id or await self.buyer()
        return await insert(self.db, "chat_participants", chat_id=chat_id, user_id=user_id, **f)

    async def message(
        self,
        chat_id: int | None = None,
        sender_id: int | None = None,
        reply_to_id: int | None = None,
        **f: Any,
    ) -> int:
        if chat_id is None and reply_to_id is not None:
            chat_id = await self.value("messages", "chat_id", reply_to_id)
        chat_id = chat_id or await self.chat()
        sender_id = sender_id or await self.buyer()
        f.setdefault("content", "Salom!")
        return await insert(
            self.db,
            "messages",
            chat_id=chat_id,
            sender_id=sender_id,
            reply_to_id=reply_to_id,
            **f,
        )

    async def message_read(
        self, message_id: int | None = None, user_id: int | None = None, **f: Any
    ) -> int:
        message_id = message_id or await self.message()
        user_id = user_id or await self.buyer()
        return await insert(self.db, "message_reads", message_id=message_id, user_id=user_id, **f)

    # -- reviews ------------------------------------------------------------------------------

    async def review(
        self,
        order_id: int | None = None,
        product_id: int | None = None,
        buyer_id: int | None = None,
        seller_id: int | None = None,
        **f: Any,
    ) -> int:
        if order_id is None:
            if product_id is not None:
                seller_id = seller_id or await self.value("products", "seller_id", product_id)
            order_id = await self.order(buyer_id=buyer_id, seller_id=seller_id)
        if product_id is None:
            product_id = await self.db.fetchval(
                "SELECT product_id FROM market.order_items WHERE order_id = $1 LIMIT 1", order_id
            )
        if product_id is None or not await self.db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM market.order_items"
            " WHERE order_id = $1 AND product_id = $2)",
            order_id,
            product_id,
        ):
            item = await self.order_item(order_id=order_id, product_id=product_id)
            product_id = await self.value("order_items", "product_id", item)
        buyer_id = buyer_id or await self.value("orders", "buyer_id", order_id)
        seller_id = seller_id or await self.value("orders", "seller_id", order_id)
        f.setdefault("rating", 5)
        return await insert(
            self.db,
            "reviews",
            order_id=order_id,
            product_id=product_id,
            buyer_id=buyer_id,
            seller_id=seller_id,
            **f,
        )

    async def review_image(self, review_id: int | None = None, **f: Any) -> int:
        review_id = review_id or await self.review()
        f.setdefault("url", "https://cdn.example.com/rv.jpg")
        return await insert(self.db, "review_images", review_id=review_id, **f)

    async def review_response(
        self, review_id: int | None = None, seller_id: int | None = None, **f: Any
    ) -> int:
        if review_id is None:
            review_id = await self.review(seller_id=seller_id)
        seller_id = seller_id or await self.value("reviews", "seller_id", review_id)
        f.setdefault("content", "Thank you!")
        return await insert(
            self.db, "review_responses", review_id=review_id, seller_id=seller_id, **f
        )

    # -- notifications ------------------------------------------------------------------------

    async def notification(self, user_id: int | None = None, **f: Any) -> int:
        user_id = user_id or await self.buyer()
        f.setdefault("type", "order")
        f.setdefault("title", "Order confirmed")
        f.setdefault("content", "Your order is confirmed")
        return await insert(self.db, "notifications", user_id=user_id, **f)

    async def notification_settings(self, user_id: int | None = None, **f: Any) -> int:
        user_id = user_id or await self.buyer()
        return await insert(self.db, "notification_settings", user_id=user_id, **f)

    # -- disputes and returns -----------------------------------------------------------------

    async def dispute(
        self, order_id: int | None = None, opened_by: int | None = None, **f: Any
    ) -> int:
        order_id = order_id or await self.order()
        opened_by = opened_by or await self.value("orders", "buyer_id", order_id)
        f.setdefault("type", "delivery_issue")
        f.setdefault("reason", "Parcel arrived damaged")
        return await insert(self.db, "disputes", order_id=order_id, opened_by=opened_by, **f)

    async def dispute_message(
        self, dispute_id: int | None = None, user_id: int | None = None, **f: Any
    ) -> int:
        dispute_id = dispute_id or await self.dispute()
        user_id = user_id or await self.value("disputes", "opened_by", dispute_id)
        f.setdefault("content", "Photos attached")
        return await insert(
            self.db, "dispute_messages", dispute_id=dispute_id, user_id=user_id, **f
        )

    async def return_(
        self, order_id: int | None = None, buyer_id: int | None = None, **f: Any
    ) -> int:
        order_id = order_id or await self.order(buyer_id=buyer_id)
        buyer_id = buyer_id or await self.value("orders", "buyer_id", order_id)
        f.setdefault("reason", "Wrong size")
        f.setdefault("refund_amount", D("1000.00"))
        f.setdefault("refund_method", "original_payment")
        return await insert(self.db, "returns", order_id=order_id, buyer_id=buyer_id, **f)

    async def return_item(
        self, return_id: int | None = None, order_item_id: int | None = None, **f: Any
    ) -> int:
        if return_id is None:
            order = None
            if order_item_id is not None:
                order = await self.value("order_items", "order_id", order_item_id)
            return_id = await self.return_(order_id=order)
        if order_item_id is None:
            order = await self.value("returns", "order_id", return_id)
            order_item_id = await self.order_item(order_id=order)
        f.setdefault("quantity", 1)
        f.setdefault("condition", "unopened")
        return await insert(
            self.db, "return_items", return_id=return_id, order_item_id=order_item_id, **f
        )

    # -- analytics and system -----------------------------------------------------------------

    async def analytics_event(self, **f: Any) -> int:
        f.setdefault("event_type", "page_view")
        f.setdefault("event_name", "product_page")
        return await insert(self.db, "analytics_events", **f)

    async def seller_statistics(self, seller_id: int | None = None, **f: Any) -> int:
        seller_id = seller_id or await self.seller()
        return await insert(self.db, "seller_statistics", seller_id=seller_id, **f)

    async def setting(self, **f: Any) -> int:
        f.setdefault("key", "site.k" + uuid.uuid4().hex[:8])
        f.setdefault("value", "GOGOMARKET")
        f.setdefault("type", "string")
        return await insert(self.db, "settings", **f)

    async def audit_log(self, **f: Any) -> int:
        f.setdefault("action", "update")
        f.setdefault("entity_type", "product")
        return await insert(self.db, "audit_logs", **f)


FACTORIES: dict[str, str] = {
    "users": "user",
    "admin_roles": "admin_role",
    "user_sessions": "session",
    "user_addresses": "address",
    "categories": "category",
    "products": "product",
    "product_images": "product_image",
    "product_variants": "variant",
    "product_attributes": "attribute",
    "delivery_zones": "zone",
    "delivery_tariffs": "tariff",
    "promo_codes": "promo_code",
    "flash_sales": "flash_sale",
    "flash_sale_products": "flash_sale_product",
    "orders": "order",
    "order_items": "order_item",
    "order_status_history": "status_history",
    "order_tracking": "tracking",
    "promo_code_usage": "promo_usage",
    "wallets": "wallet",
    "wallet_transactions": "wallet_txn",
    "commissions": "commission",
    "bank_accounts": "bank_account",
    "payouts": "payout",
    "stories": "story",
    "story_views": "story_view",
    "reels": "reel",
    "reel_likes": "reel_like",
    "reel_comments": "reel_comment",
    "subscriptions": "subscription",
    "chats": "chat",
    "chat_participants": "participant",
    "messages": "message",
    "message_reads": "message_read",
    "reviews": "review",
    "review_images": "review_image",
    "review_responses": "review_response",
    "notifications": "notification",
    "notification_settings": "notification_settings",
    "disputes": "dispute",
    "dispute_messages": "dispute_message",
    "returns": "return_",
    "return_items": "return_item",
    "analytics_events": "analytics_event",
    "seller_statistics": "seller_statistics",
    "settings": "setting",
    "audit_logs": "audit_log",
}
