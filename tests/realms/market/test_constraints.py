"""Table-driven constraint rules of every market table: each CHECK refuses its bad row and
accepts its boundary rows, each NOT NULL column refuses NULL, each UNIQUE refuses the second
row, each foreign key refuses an unknown parent and behaves as declared when the parent is
deleted, and every updated_at trigger moves updated_at.

These run on `txworld` (a shared database, rolled back after each test): nothing here needs a
commit. Rules enforced by triggers and functions are in the per-area modules.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from tests.realms.market.rules import FOREIGN_KEYS, TRIGGERS_IN_THE_WAY
from tests.realms.market.seed_004 import SEED_COLUMNS
from tests.realms.market.world import NO_SUCH_ID, T0, D, World, rejected

Fields = dict[str, Any] | Callable[[World], Awaitable[dict[str, Any]]]


@dataclass
class Case:
    table: str
    constraint: str
    fields: Fields
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.constraint}-{self.label}" if self.label else self.constraint


async def resolve(world: World, fields: Fields) -> dict[str, Any]:
    return fields if isinstance(fields, dict) else await fields(world)


# -- CHECK constraints: one bad row each ------------------------------------------------------


async def _same_buyer_and_seller(w: World) -> dict[str, Any]:
    seller = await w.seller()
    return {"buyer_id": seller, "seller_id": seller}


async def _self_subscription(w: World) -> dict[str, Any]:
    user = await w.buyer()
    return {"subscriber_id": user, "subscribed_to_id": user}


async def _own_parent(w: World) -> dict[str, Any]:
    return {"id": NO_SUCH_ID - 1, "parent_id": NO_SUCH_ID - 1}


def _location(meta: Any) -> dict[str, Any]:
    return {"type": "location", "content": None, "metadata": meta}


def _product(meta: Any) -> dict[str, Any]:
    return {"type": "product", "content": None, "metadata": meta}


CHECKS: list[Case] = [
    Case("users", "users_email_format", {"email": "not-an-email"}, "no-at"),
    Case("users", "users_email_format", {"email": "a@b..com"}, "empty-label"),
    Case("users", "users_email_format", {"email": "a@localhost"}, "no-tld"),
    Case("users", "users_phone_format", {"phone": "998901234567"}, "no-plus"),
    Case("users", "users_phone_format", {"phone": "+998 90 123 45 67"}, "spaces"),
    Case("users", "users_first_name_not_blank", {"first_name": "  "}),
    Case("users", "users_last_name_not_blank", {"last_name": ""}),
    Case("users", "users_password_hash_bcrypt", {"password_hash": "hunter2"}, "plaintext"),
    Case("admin_roles", "admin_roles_permissions_object", {"permissions": ["read"]}),
    Case(
        "admin_roles",
        "admin_roles_expires_after_granted",
        {"granted_at": T0, "expires_at": T0},
    ),
    Case(
        "user_sessions",
        "user_sessions_expires_after_created",
        {"created_at": T0, "expires_at": T0 - timedelta(seconds=1)},
    ),
    Case("user_addresses", "user_addresses_phone_format", {"phone": "12345"}),
    Case(
        "user_addresses",
        "user_addresses_latitude_range",
        {"latitude": D("90.5"), "longitude": D(0)},
    ),
    Case(
        "user_addresses",
        "user_addresses_longitude_range",
        {"latitude": D(0), "longitude": D("-180.5")},
    ),
    Case("user_addresses", "user_addresses_coordinates_paired", {"latitude": D(41)}),
    Case("categories", "categories_not_own_parent", _own_parent),
    Case("categories", "categories_slug_format", {"slug": "Phones & Tablets"}),
    Case("products", "products_slug_format", {"slug": "-phone"}),
    Case("products", "products_currency_format", {"currency": "uzs"}),
    Case("products", "products_base_price_non_negative", {"base_price": D("-0.01")}),
    Case("products", "products_cost_price_non_negative", {"cost_price": D(-1)}),
    Case("products", "products_sale_price_within_base", {"sale_price": D("1000.01")}, "above"),
    Case("products", "products_sale_price_within_base", {"sale_price": D(-1)}, "negative"),
    Case("products", "products_tax_rate_percentage", {"tax_rate": D("100.01")}),
    Case("products", "products_dimensions_positive", {"weight": D(0)}),
    Case("products", "products_stock_non_negative", {"stock_quantity": -1}),
    Case("products", "products_low_stock_threshold_non_negative", {"low_stock_threshold": -1}),
    Case("products", "products_min_order_quantity_positive", {"min_order_quantity": 0}),
    Case(
        "products",
        "products_max_order_quantity_at_least_min",
        {"min_order_quantity": 3, "max_order_quantity": 2},
    ),
    Case("products", "products_view_count_non_negative", {"view_count": -1}),
    Case("products", "products_rating_average_range", {"rating_average": D("5.01")}),
    Case("products", "products_rating_count_non_negative", {"rating_count": -1}),
    Case("product_variants", "product_variants_attributes_object", {"attributes": ["black"]}),
    Case("product_variants", "product_variants_stock_non_negative", {"stock_quantity": -1}),
    Case("delivery_zones", "delivery_zones_districts_array", {"districts": {"a": 1}}),
    Case(
        "delivery_zones",
        "delivery_zones_polygon_valid",
        {"polygon": asyncpg.Polygon((69.0, 41.0), (70.0, 41.0))},
        "two-points",
    ),
    Case(
        "delivery_zones",
        "delivery_zones_polygon_valid",
        {"polygon": asyncpg.Polygon((69.0, 41.0), (200.0, 41.0), (70.0, 42.0))},
        "longitude-out-of-range",
    ),
    Case(
        "delivery_zones",
        "delivery_zones_polygon_valid",
        {"polygon": asyncpg.Polygon((69.0, 41.0), (70.0, 95.0), (70.0, 42.0))},
        "latitude-out-of-range",
    ),
    Case("delivery_tariffs", "delivery_tariffs_costs_non_negative", {"base_cost": D(-1)}, "base"),
    Case(
        "delivery_tariffs", "delivery_tariffs_costs_non_negative", {"cost_per_km": D(-1)}, "per-km"
    ),
    Case(
        "delivery_tariffs", "delivery_tariffs_costs_non_negative", {"cost_per_kg": D(-1)}, "per-kg"
    ),
    Case(
        "delivery_tariffs",
        "delivery_tariffs_min_order_amount_non_negative",
        {"min_order_amount": D(-1)},
    ),
    Case(
        "delivery_tariffs",
        "delivery_tariffs_free_delivery_threshold_non_negative",
        {"free_delivery_threshold": D(-1)},
    ),
    Case("delivery_tariffs", "delivery_tariffs_estimated_hours_positive", {"estimated_hours": 0}),
    Case("promo_codes", "promo_codes_code_not_blank", {"code": " "}),
    Case(
        "promo_codes",
        "promo_codes_value_valid",
        {"type": "percentage", "value": D(0)},
        "percentage-0",
    ),
    Case(
        "promo_codes",
        "promo_codes_value_valid",
        {"type": "percentage", "value": D("100.01")},
        "percentage-over-100",
    ),
    Case(
        "promo_codes", "promo_codes_value_valid", {"type": "fixed_amount", "value": D(0)}, "fixed-0"
    ),
    Case(
        "promo_codes",
        "promo_codes_value_valid",
        {"type": "free_shipping", "value": D(-1)},
        "free-shipping-negative",
    ),
    Case("promo_codes", "promo_codes_min_order_amount_non_negative", {"min_order_amount": D(-1)}),
    Case("promo_codes", "promo_codes_max_discount_amount_positive", {"max_discount_amount": D(0)}),
    Case("promo_codes", "promo_codes_usage_limit_non_negative", {"usage_limit": -1}),
    Case("promo_codes", "promo_codes_usage_count_non_negative", {"usage_count": -1}),
    Case("promo_codes", "promo_codes_usage_within_limit", {"usage_limit": 5, "usage_count": 6}),
    Case("promo_codes", "promo_codes_usage_limit_per_user_positive", {"usage_limit_per_user": 0}),
    Case(
        "promo_codes",
        "promo_codes_applicable_ids_valid",
        {"applicable_to": "all", "applicable_ids": [1]},
        "all-with-ids",
    ),
    Case(
        "promo_codes",
        "promo_codes_applicable_ids_valid",
        {"applicable_to": "category", "applicable_ids": None},
        "category-without-ids",
    ),
    Case(
        "promo_codes",
        "promo_codes_applicable_ids_valid",
        {"applicable_to": "product", "applicable_ids": []},
        "empty-array",
    ),
    Case(
        "promo_codes",
        "promo_codes_applicable_ids_valid",
        {"applicable_to": "product", "applicable_ids": ["7"]},
        "string-id",
    ),
    Case(
        "promo_codes",
        "promo_codes_applicable_ids_valid",
        {"applicable_to": "seller", "applicable_ids": [0]},
        "zero-id",
    ),
    Case(
        "promo_codes",
        "promo_codes_applicable_ids_valid",
        {"applicable_to": "seller", "applicable_ids": [1.5]},
        "fractional-id",
    ),
    Case(
        "promo_codes",
        "promo_codes_applicable_ids_valid",
        {"applicable_to": "category", "applicable_ids": {"id": 1}},
        "object",
    ),
    Case("promo_codes", "promo_codes_expires_after_starts", {"starts_at": T0, "expires_at": T0}),
    Case(
        "flash_sales",
        "flash_sales_discount_percentage_range",
        {"discount_percentage": D(0)},
        "zero",
    ),
    Case(
        "flash_sales",
        "flash_sales_discount_percentage_range",
        {"discount_percentage": D("100.01")},
        "over-100",
    ),
    Case("flash_sales", "flash_sales_ends_after_starts", {"starts_at": T0, "ends_at": T0}),
    Case(
        "flash_sale_products",
        "flash_sale_products_original_price_non_negative",
        {"original_price": D(-1), "sale_price": D(-2)},
    ),
    Case(
        "flash_sale_products",
        "flash_sale_products_sale_price_within_original",
        {"sale_price": D("1000.01")},
        "above",
    ),
    Case(
        "flash_sale_products",
        "flash_sale_products_sale_price_within_original",
        {"sale_price": D(-1)},
        "negative",
    ),
    Case("flash_sale_products", "flash_sale_products_sold_count_non_negative", {"sold_count": -1}),
    Case(
        "flash_sale_products",
        "flash_sale_products_not_oversold",
        {"stock_limit": 10, "sold_count": 11},
    ),
    Case("orders", "orders_order_number_not_blank", {"order_number": " "}),
    Case("orders", "orders_buyer_is_not_seller", _same_buyer_and_seller),
    Case("orders", "orders_amounts_non_negative", {"subtotal": D(-1)}, "subtotal"),
    Case("orders", "orders_amounts_non_negative", {"discount_amount": D(-1)}, "discount"),
    Case("orders", "orders_amounts_non_negative", {"tax_amount": D(-1)}, "tax"),
    Case("orders", "orders_amounts_non_negative", {"shipping_cost": D(-1)}, "shipping"),
    Case("orders", "orders_amounts_non_negative", {"commission_amount": D(-1)}, "commission"),
    Case("orders", "orders_amounts_non_negative", {"total_amount": D(-1)}, "total"),
    Case("orders", "orders_currency_format", {"currency": "US"}),
    Case("order_items", "order_items_quantity_positive", {"quantity": 0}),
    Case("order_items", "order_items_amounts_non_negative", {"unit_price": D(-1)}, "unit"),
    Case("order_items", "order_items_amounts_non_negative", {"discount_amount": D(-1)}, "discount"),
    Case("order_items", "order_items_amounts_non_negative", {"tax_amount": D(-1)}, "tax"),
    Case("order_items", "order_items_amounts_non_negative", {"subtotal": D(-1)}, "subtotal"),
    Case("order_items", "order_items_attributes_object", {"attributes": [1]}),
    Case("order_tracking", "order_tracking_latitude_range", {"latitude": D("-90.00000001")}),
    Case("order_tracking", "order_tracking_longitude_range", {"longitude": D("180.00000001")}),
    Case("order_tracking", "order_tracking_coordinates_paired", {"longitude": None}),
    Case(
        "promo_code_usage",
        "promo_code_usage_discount_amount_non_negative",
        {"discount_amount": D(-1)},
    ),
    Case("wallets", "wallets_balance_non_negative", {"balance": D("-0.01")}),
    Case("wallets", "wallets_currency_format", {"currency": "uz1"}),
    Case(
        "wallet_transactions",
        "wallet_transactions_amount_not_zero",
        {"type": "commission", "amount": D(0), "balance_before": D(5)},
    ),
    Case(
        "wallet_transactions",
        "wallet_transactions_balance_arithmetic",
        {"amount": D(100), "balance_before": D(0), "balance_after": D(50)},
    ),
    Case(
        "wallet_transactions",
        "wallet_transactions_balances_non_negative",
        {"amount": D(100), "balance_before": D(-100), "balance_after": D(0)},
    ),
    Case(
        "wallet_transactions",
        "wallet_transactions_direction_matches_type",
        {"type": "deposit", "amount": D(-10), "balance_before": D(20)},
        "deposit-debit",
    ),
    Case(
        "wallet_transactions",
        "wallet_transactions_direction_matches_type",
        {"type": "purchase", "amount": D(10)},
        "purchase-credit",
    ),
    Case(
        "wallet_transactions",
        "wallet_transactions_direction_matches_type",
        {"type": "payout", "amount": D(10)},
        "payout-credit",
    ),
    Case(
        "wallet_transactions", "wallet_transactions_reference_paired", {"reference_type": "order"}
    ),
    Case("wallet_transactions", "wallet_transactions_metadata_object", {"metadata": []}),
    Case("commissions", "commissions_commission_rate_percentage", {"commission_rate": D(101)}),
    Case("commissions", "commissions_amounts_non_negative", {"commission_amount": D(-1)}),
    Case(
        "commissions",
        "commissions_commission_within_order_amount",
        {"commission_amount": D("1000.01"), "order_amount": D(1000)},
    ),
    Case("commissions", "commissions_paid_has_paid_at", {"status": "paid"}),
    Case("payouts", "payouts_amount_positive", {"amount": D(0)}),
    Case("payouts", "payouts_currency_format", {"currency": "Uzs"}),
    Case("payouts", "payouts_bank_transfer_needs_account", {"method": "bank_transfer"}),
    Case("stories", "stories_duration_positive", {"duration": 0}),
    Case("stories", "stories_view_count_non_negative", {"view_count": -1}),
    Case("stories", "stories_expires_after_created", {"created_at": T0, "expires_at": T0}),
    Case("reels", "reels_duration_positive", {"duration": 0}),
    Case("reels", "reels_counters_non_negative", {"share_count": -1}),
    Case("reel_comments", "reel_comments_content_not_blank", {"content": "\n"}),
    Case("reel_comments", "reel_comments_like_count_non_negative", {"like_count": -1}),
    Case("subscriptions", "subscriptions_not_self", _self_subscription),
    Case("chats", "chats_group_has_name", {"type": "group", "name": None}, "null"),
    Case("chats", "chats_group_has_name", {"type": "group", "name": "   "}, "blank"),
    Case("messages", "messages_client_id_not_blank", {"client_id": " "}),
    Case(
        "chat_participants",
        "chat_participants_last_read_seq_non_negative",
        {"last_read_seq": -1},
    ),
    Case("messages", "messages_metadata_object", {"metadata": [1]}),
    Case("messages", "messages_type_payload", {"type": "text", "content": None}, "text-null"),
    Case("messages", "messages_type_payload", {"type": "text", "content": " \t"}, "text-blank"),
    Case("messages", "messages_type_payload", {"type": "image"}, "image-without-media"),
    Case(
        "messages", "messages_type_payload", {"type": "video", "media_url": ""}, "video-blank-media"
    ),
    Case("messages", "messages_type_payload", {"type": "audio"}, "audio-without-media"),
    Case("messages", "messages_type_payload", {"type": "file"}, "file-without-media"),
    Case("messages", "messages_type_payload", _location(None), "location-without-metadata"),
    Case(
        "messages",
        "messages_type_payload",
        _location({"lat": 90.5, "lon": 0}),
        "location-lat-out-of-range",
    ),
    Case(
        "messages",
        "messages_type_payload",
        _location({"lat": 0, "lon": -180.1}),
        "location-lon-out-of-range",
    ),
    Case(
        "messages",
        "messages_type_payload",
        _location({"lat": "41.3", "lon": 69.2}),
        "location-lat-string",
    ),
    Case("messages", "messages_type_payload", _location({"lat": 41.3}), "location-lon-missing"),
    Case("messages", "messages_type_payload", _product(None), "product-without-metadata"),
    Case("messages", "messages_type_payload", _product({"product_id": "7"}), "product-id-string"),
    Case("messages", "messages_type_payload", _product({"product_id": 0}), "product-id-zero"),
    Case(
        "messages", "messages_type_payload", _product({"product_id": 1.5}), "product-id-fractional"
    ),
    Case("reviews", "reviews_rating_check", {"rating": 0}, "0"),
    Case("reviews", "reviews_rating_check", {"rating": 6}, "6"),
    Case("reviews", "reviews_helpful_count_non_negative", {"helpful_count": -1}),
    Case("review_responses", "review_responses_content_not_blank", {"content": ""}),
    Case("notifications", "notifications_data_object", {"data": "x"}),
    Case("notifications", "notifications_reference_paired", {"reference_id": 5}),
    Case("disputes", "disputes_reason_not_blank", {"reason": " "}),
    Case("dispute_messages", "dispute_messages_content_not_blank", {"content": ""}),
    Case("dispute_messages", "dispute_messages_attachments_array", {"attachments": {"a": 1}}),
    Case("returns", "returns_reason_not_blank", {"reason": ""}),
    Case("returns", "returns_refund_amount_non_negative", {"refund_amount": D(-1)}),
    Case("return_items", "return_items_quantity_positive", {"quantity": 0}),
    Case("return_items", "return_items_images_array", {"images": {"a": 1}}),
    Case("analytics_events", "analytics_events_properties_object", {"properties": [1]}),
    Case("seller_statistics", "seller_statistics_counts_non_negative", {"total_orders": -1}),
    Case("seller_statistics", "seller_statistics_amounts_non_negative", {"total_revenue": D(-1)}),
    Case(
        "seller_statistics", "seller_statistics_average_rating_range", {"average_rating": D("5.01")}
    ),
    Case(
        "seller_statistics",
        "seller_statistics_response_rate_percentage",
        {"response_rate": D("100.01")},
    ),
    Case("settings", "settings_key_format", {"key": "Site Name"}, "spaces"),
    Case("settings", "settings_key_format", {"key": "site..name"}, "empty-segment"),
    Case("settings", "settings_value_matches_type", {"type": "number", "value": "12a"}, "number"),
    Case("settings", "settings_value_matches_type", {"type": "boolean", "value": "yes"}, "boolean"),
    Case("settings", "settings_value_matches_type", {"type": "json", "value": "{bad"}, "json"),
]


@pytest.mark.parametrize("case", CHECKS, ids=[c.id for c in CHECKS])
async def test_check_constraint_refuses_its_bad_row(txworld: World, case: Case) -> None:
    fields = await resolve(txworld, case.fields)
    await rejected(
        txworld.db,
        txworld.make(case.table, **fields),
        asyncpg.CheckViolationError,
        case.constraint,
    )


async def test_every_check_constraint_has_a_bad_row_case(txn: asyncpg.Connection) -> None:
    names = {
        r["conname"]
        for r in await txn.fetch(
            "SELECT conname FROM pg_constraint"
            " WHERE contype = 'c' AND connamespace = 'market'::regnamespace"
        )
    }
    assert names == {c.constraint for c in CHECKS}


# -- boundary rows the CHECKs accept ----------------------------------------------------------


async def _existing_product(w: World) -> dict[str, Any]:
    return _product({"product_id": await w.product()})


BOUNDARIES: list[Case] = [
    Case("users", "email", {"email": "First.Last+tag@mail.example.uz"}),
    Case("users", "phone", {"phone": "+998901234567"}),
    Case("users", "bcrypt-2a", {"password_hash": "$2a$10$" + "./" * 26 + "A"}),
    Case("user_addresses", "north-east-corner", {"latitude": D(90), "longitude": D(180)}),
    Case("user_addresses", "south-west-corner", {"latitude": D(-90), "longitude": D(-180)}),
    Case("products", "sale-price-equal-to-base", {"sale_price": D(1000)}),
    Case("products", "free-product", {"base_price": D(0), "sale_price": D(0)}),
    Case("products", "tax-0-and-100", {"tax_rate": D(100)}),
    Case("products", "backorder-below-zero", {"allow_backorder": True, "stock_quantity": -5}),
    Case("products", "digital-without-dimensions", {"is_digital": True, "weight": None}),
    Case("products", "max-equal-min", {"min_order_quantity": 2, "max_order_quantity": 2}),
    Case("products", "rating-5", {"rating_average": D(5)}),
    Case("delivery_zones", "no-polygon", {"polygon": None}),
    Case("delivery_zones", "districts-array", {"districts": ["Yunusobod", "Chilonzor"]}),
    Case("promo_codes", "percentage-100", {"type": "percentage", "value": D(100)}),
    Case("promo_codes", "free-shipping-0", {"type": "free_shipping", "value": D(0)}),
    Case("promo_codes", "usage-at-limit", {"usage_limit": 5, "usage_count": 5}),
    Case("promo_codes", "unlimited-per-user", {"usage_limit_per_user": None}),
    Case("promo_codes", "category-ids", {"applicable_to": "category", "applicable_ids": [1, 2]}),
    Case("flash_sales", "discount-100", {"discount_percentage": D(100)}),
    Case("flash_sale_products", "sold-out", {"stock_limit": 10, "sold_count": 10}),
    Case("flash_sale_products", "unlimited-stock", {"stock_limit": None, "sold_count": 10**6}),
    Case("flash_sale_products", "same-price", {"sale_price": D(1000)}),
    Case("order_tracking", "no-position", {"latitude": None, "longitude": None}),
    Case("wallets", "zero-balance", {"balance": D(0)}),
    Case(
        "wallet_transactions",
        "debit-to-zero",
        {"type": "purchase", "amount": D(-100), "balance_before": D(100)},
    ),
    Case(
        "wallet_transactions",
        "commission-debit",
        {"type": "commission", "amount": D(-5), "balance_before": D(5)},
    ),
    Case(
        "wallet_transactions",
        "reference",
        {"reference_type": "order", "reference_id": 42, "metadata": {"k": "v"}},
    ),
    Case(
        "commissions",
        "commission-equals-order",
        {"commission_rate": D(100), "commission_amount": D(1000), "order_amount": D(1000)},
    ),
    Case("commissions", "paid-with-paid-at", {"status": "paid", "paid_at": T0}),
    Case("stories", "one-second", {"duration": 1}),
    Case("chats", "direct-without-name", {"type": "direct", "name": None}),
    Case("chats", "support-without-name", {"type": "support", "name": None}),
    Case("messages", "deleted-text-without-content", {"content": None, "is_deleted": True}),
    Case("messages", "image", {"type": "image", "content": None, "media_url": "https://x/i.jpg"}),
    Case("messages", "location-corners", _location({"lat": -90, "lon": 180})),
    Case("messages", "location-decimal", _location({"lat": 41.311081, "lon": 69.279737})),
    Case("messages", "product", _existing_product),
    Case("reviews", "rating-1", {"rating": 1}),
    Case("notifications", "reference", {"reference_type": "order", "reference_id": 1}),
    Case("seller_statistics", "maximums", {"average_rating": D(5), "response_rate": D(100)}),
    Case("settings", "number", {"type": "number", "value": "-12.5e3"}),
    Case("settings", "boolean", {"type": "boolean", "value": "false"}),
    Case("settings", "json", {"type": "json", "value": '{"a": [1, 2]}'}),
    Case("settings", "dotted-key", {"key": "commission.default_rate", "value": "5"}),
]


@pytest.mark.parametrize("case", BOUNDARIES, ids=[f"{c.table}-{c.constraint}" for c in BOUNDARIES])
async def test_boundary_row_is_accepted(txworld: World, case: Case) -> None:
    fields = await resolve(txworld, case.fields)
    row_id = await txworld.make(case.table, **fields)
    row = await txworld.get(case.table, row_id)
    for column, value in fields.items():
        if column != "metadata":
            assert row[column] == value, column


# -- NOT NULL ---------------------------------------------------------------------------------

# Documented NOT NULL columns, and documented defaults (read as NOT NULL, see
# test_schema.py), except the primary keys and categories.level, which its trigger derives.
NOT_NULL = [
    (table, column)
    for table, columns in SEED_COLUMNS.items()
    for column, _, constraints in columns
    if ("NOT NULL" in constraints or "DEFAULT" in constraints)
    and "PRIMARY KEY" not in constraints
    and (table, column) not in {("categories", "level"), ("promo_codes", "usage_limit_per_user")}
]


@pytest.mark.parametrize(("table", "column"), NOT_NULL, ids=[f"{t}.{c}" for t, c in NOT_NULL])
async def test_required_column_refuses_null(txworld: World, table: str, column: str) -> None:
    row_id = await txworld.make(table)
    if (table, column) in TRIGGERS_IN_THE_WAY:
        owner, trigger = TRIGGERS_IN_THE_WAY[(table, column)]
        await txworld.db.execute(f"ALTER TABLE market.{owner} DISABLE TRIGGER {trigger}")
    error = await rejected(
        txworld.db,
        txworld.reinsert(table, row_id, **{column: None}),
        asyncpg.NotNullViolationError,
    )
    assert error.column_name == column


async def test_category_level_is_never_null(txworld: World) -> None:
    row_id = await txworld.category(level=None)
    assert await txworld.value("categories", "level", row_id) == 0


# -- UNIQUE -----------------------------------------------------------------------------------


@dataclass
class Unique:
    table: str
    constraint: str | set[str]
    first: Fields
    second: Fields | None = None  # None: the same fields again
    label: str = ""


async def _key(w: World, **parents: Callable[[World], Awaitable[int]]) -> dict[str, Any]:
    return {name: await make(w) for name, make in parents.items()}


def shared(**parents: Callable[[World], Awaitable[int]]) -> Callable[[World], Awaitable[Any]]:
    """Fields naming the same (new) parent rows in both inserts."""

    async def build(w: World) -> dict[str, Any]:
        return await _key(w, **parents)

    return build


async def _admin_role_twice(w: World) -> dict[str, Any]:
    return {"user_id": await w.user("admin"), "role_type": "accounting"}


async def _default_address(w: World) -> dict[str, Any]:
    return {"user_id": await w.buyer(), "type": "delivery", "is_default": True}


async def _primary_image(w: World) -> dict[str, Any]:
    return {"product_id": await w.product(), "is_primary": True}


async def _default_bank_account(w: World) -> dict[str, Any]:
    return {"user_id": await w.seller(), "is_default": True}


async def _review_response(w: World) -> dict[str, Any]:
    return {"review_id": await w.review()}


async def _review_of_item(w: World) -> dict[str, Any]:
    item = await w.order_item()
    row = await w.get("order_items", item)
    return {"order_id": row["order_id"], "product_id": row["product_id"]}


async def _promo_usage(w: World) -> dict[str, Any]:
    code = await w.promo_code(usage_limit_per_user=None)
    order = await w.order(promo_code_id=code)
    return {"promo_code_id": code, "order_id": order}


async def _flash_sale_product(w: World) -> dict[str, Any]:
    return {"flash_sale_id": await w.flash_sale(), "product_id": await w.product()}


async def _return_item(w: World) -> dict[str, Any]:
    ret = await w.return_()
    item = await w.order_item(order_id=await w.value("returns", "order_id", ret))
    return {"return_id": ret, "order_item_id": item}


async def _client_id(w: World) -> dict[str, Any]:
    return {"chat_id": await w.chat(), "sender_id": await w.buyer(), "client_id": "c-1"}


UNIQUES: list[Unique] = [
    Unique("users", {"users_email_key", "idx_users_email"}, {"email": "dup@example.com"}),
    Unique(
        "users",
        "idx_users_email",
        {"email": "Dup@Example.com"},
        {"email": "dup@example.com"},
        "case-insensitive",
    ),
    Unique("users", "idx_users_phone", {"phone": "+998901112233"}),
    Unique("users", "idx_users_uuid", {"uuid": uuid.UUID(int=7)}),
    Unique("admin_roles", "admin_roles_user_id_role_type_key", _admin_role_twice),
    Unique("user_sessions", "idx_sessions_token", {"token": "t-1"}),
    Unique("user_sessions", "user_sessions_refresh_token_key", {"refresh_token": "r-1"}),
    Unique("user_addresses", "idx_addresses_one_default", _default_address),
    Unique("categories", "idx_categories_slug", {"slug": "phones"}),
    Unique("products", "idx_products_slug", {"slug": "phone-x"}),
    Unique("products", "idx_products_sku", {"sku": "SKU-1"}),
    Unique("product_images", "idx_product_images_one_primary", _primary_image),
    Unique("product_variants", "idx_variants_sku", {"sku": "SKU-1-B"}),
    Unique("promo_codes", "idx_promo_codes_code", {"code": "SPRING"}),
    Unique(
        "flash_sale_products",
        "flash_sale_products_flash_sale_id_product_id_key",
        _flash_sale_product,
    ),
    Unique("orders", "idx_orders_number", {"order_number": "GM-1"}),
    Unique("promo_code_usage", "promo_code_usage_promo_code_id_order_id_key", _promo_usage),
    Unique("wallets", "idx_wallets_user_id", shared(user_id=World.buyer)),
    Unique("bank_accounts", "idx_bank_accounts_one_default", _default_bank_account),
    Unique(
        "story_views", "idx_story_views_unique", shared(story_id=World.story, viewer_id=World.buyer)
    ),
    Unique("reel_likes", "idx_reel_likes_unique", shared(reel_id=World.reel, user_id=World.buyer)),
    Unique(
        "subscriptions",
        "idx_subscriptions_unique",
        shared(subscriber_id=World.buyer, subscribed_to_id=World.seller),
    ),
    Unique(
        "chat_participants",
        "idx_chat_participants_unique",
        shared(chat_id=World.chat, user_id=World.buyer),
    ),
    Unique("messages", "idx_messages_client_id", _client_id),
    Unique(
        "message_reads",
        "idx_message_reads_unique",
        shared(message_id=World.message, user_id=World.buyer),
    ),
    Unique("reviews", "idx_reviews_one_per_order_product", _review_of_item),
    Unique("review_responses", "idx_review_responses_review_id", _review_response),
    Unique(
        "notification_settings", "idx_notification_settings_user_id", shared(user_id=World.buyer)
    ),
    Unique("return_items", "return_items_return_id_order_item_id_key", _return_item),
    Unique("seller_statistics", "idx_seller_stats_seller_id", shared(seller_id=World.seller)),
    Unique("settings", "idx_settings_key", {"key": "site.name"}),
]


def _unique_id(u: Unique) -> str:
    name = u.constraint if isinstance(u.constraint, str) else sorted(u.constraint)[0]
    return f"{name}-{u.label}" if u.label else name


@pytest.mark.parametrize("case", UNIQUES, ids=[_unique_id(u) for u in UNIQUES])
async def test_unique_rule_refuses_the_second_row(txworld: World, case: Unique) -> None:
    first = await resolve(txworld, case.first)
    second = first if case.second is None else await resolve(txworld, case.second)
    await txworld.make(case.table, **first)
    await rejected(
        txworld.db,
        txworld.make(case.table, **second),
        asyncpg.UniqueViolationError,
        case.constraint,
    )


async def test_every_unique_index_has_a_case(txn: asyncpg.Connection) -> None:
    # Unique indexes that only exist as targets of composite foreign keys ((id, x) where id is
    # already the primary key) cannot be violated and have no case.
    rows = await txn.fetch(
        "SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
        " JOIN pg_class tc ON tc.oid = i.indrelid"
        " WHERE tc.relnamespace = 'market'::regnamespace AND tc.relkind = 'r'"
        "   AND i.indisunique AND NOT i.indisprimary"
        "   AND i.indkey[0] <> (SELECT attnum FROM pg_attribute"
        "                        WHERE attrelid = tc.oid AND attname = 'id')"
    )
    covered: set[str] = set()
    for u in UNIQUES:
        covered |= {u.constraint} if isinstance(u.constraint, str) else set(u.constraint)
    # idx_messages_chat_seq: seq is assigned by trigger; tested in test_chat.py.
    assert {r["relname"] for r in rows} - {"idx_messages_chat_seq"} == covered


async def test_soft_deleted_default_address_frees_the_default_slot(txworld: World) -> None:
    user = await txworld.buyer()
    old = await txworld.address(user, is_default=True)
    await txworld.db.execute(
        "UPDATE market.user_addresses SET deleted_at = now() WHERE id = $1", old
    )
    await txworld.address(user, is_default=True)
    await txworld.address(user, is_default=True, type="billing")


async def test_null_client_ids_never_collide(txworld: World) -> None:
    chat, sender = await txworld.chat(), await txworld.buyer()
    await txworld.message(chat, sender, client_id=None)
    await txworld.message(chat, sender, client_id=None)
    other = await txworld.buyer()
    await txworld.message(chat, sender, client_id="same")
    await txworld.message(chat, other, client_id="same")


# -- foreign keys -----------------------------------------------------------------------------

FK_IDS = [f"{t}.{c}" for t, c, _, _, _ in FOREIGN_KEYS]


def _fk_names(table: str, column: str) -> set[str]:
    return {f"{table}_{column}_fkey"}


@pytest.mark.parametrize(
    ("table", "column", "parent", "action", "parent_kw"), FOREIGN_KEYS, ids=FK_IDS
)
async def test_foreign_key_refuses_an_unknown_parent(
    txworld: World, table: str, column: str, parent: str, action: str, parent_kw: dict[str, Any]
) -> None:
    row_id = await txworld.make(table)
    if (table, column) in TRIGGERS_IN_THE_WAY:
        owner, trigger = TRIGGERS_IN_THE_WAY[(table, column)]
        await txworld.db.execute(f"ALTER TABLE market.{owner} DISABLE TRIGGER {trigger}")
    error = await rejected(
        txworld.db,
        txworld.reinsert(table, row_id, **{column: NO_SUCH_ID}),
        asyncpg.ForeignKeyViolationError,
    )
    # The documented key, or a composite key over the same column (SCHEMA_NOTES.md).
    assert error.constraint_name.startswith(f"{table}_"), error
    fk = await txworld.db.fetchrow(
        "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a"
        "  ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)"
        " WHERE c.conname = $1 AND c.conrelid = $2::regclass AND a.attname = $3",
        error.constraint_name,
        f"market.{table}",
        column,
    )
    assert fk is not None, f"{error.constraint_name} does not cover {column}"


async def only_this_foreign_key_guards(
    db: asyncpg.Connection, parent: str, constraint: str
) -> None:
    """Switch off (in the test's rolled-back transaction) the referential triggers of every
    other foreign key that references `parent`, so that only `constraint` can refuse a delete."""
    rows = await db.fetch(
        "SELECT t.tgname FROM pg_trigger t JOIN pg_constraint c ON c.oid = t.tgconstraint"
        " WHERE t.tgrelid = $1::regclass AND c.contype = 'f' AND c.conname <> $2",
        f"market.{parent}",
        constraint,
    )
    for r in rows:
        await db.execute(f'ALTER TABLE market.{parent} DISABLE TRIGGER "{r["tgname"]}"')


@pytest.mark.parametrize(
    ("table", "column", "parent", "action", "parent_kw"), FOREIGN_KEYS, ids=FK_IDS
)
async def test_deleting_the_parent_follows_the_on_delete_rule(
    txworld: World, table: str, column: str, parent: str, action: str, parent_kw: dict[str, Any]
) -> None:
    parent_id = await txworld.make(parent, **parent_kw)
    child_id = await txworld.make(table, **{column: parent_id})
    delete = txworld.db.execute(f"DELETE FROM market.{parent} WHERE id = $1", parent_id)
    if action == "no action":
        # The child's context may reference the same parent (an order's buyer is also its
        # review's buyer): only the key under test is left to guard the parent.
        await only_this_foreign_key_guards(txworld.db, parent, f"{table}_{column}_fkey")
        await rejected(
            txworld.db, delete, asyncpg.ForeignKeyViolationError, f"{table}_{column}_fkey"
        )
        assert await txworld.exists(parent, parent_id)
        return
    await delete
    assert not await txworld.exists(parent, parent_id)
    if action == "cascade":
        assert not await txworld.exists(table, child_id)
    else:
        assert await txworld.value(table, column, child_id) is None


# -- updated_at -------------------------------------------------------------------------------

UPDATED_AT_TABLES = sorted(
    {t for t, cols in SEED_COLUMNS.items() for c, _, _ in cols if c == "updated_at"}
    | {"user_sessions", "product_images", "product_attributes", "commissions", "stories",
       "chat_participants", "notifications", "flash_sale_products"}
)  # fmt: skip


@pytest.mark.parametrize("table", UPDATED_AT_TABLES)
async def test_update_moves_updated_at(txworld: World, table: str) -> None:
    row_id = await txworld.make(table, updated_at=T0)
    assert await txworld.value(table, "updated_at", row_id) == T0
    await txworld.db.execute(f"UPDATE market.{table} SET updated_at = $1 WHERE id = $2", T0, row_id)
    assert await txworld.value(table, "updated_at", row_id) > T0


@pytest.mark.parametrize("table", sorted(SEED_COLUMNS))
async def test_created_at_defaults_to_now(txworld: World, table: str) -> None:
    now = await txworld.db.fetchval("SELECT now()")
    row_id = await txworld.make(table)
    column = {
        "chat_participants": "joined_at",
        "story_views": "viewed_at",
        "message_reads": "read_at",
    }.get(table, "created_at")
    assert await txworld.value(table, column, row_id) == now
