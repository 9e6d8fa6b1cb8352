"""The market schema against seed 004, read from the catalog: every documented table, column
(type, NOT NULL, default), enum type, index (incl. full-text and GiST), foreign key and its
ON DELETE action, and the conventions the realm adds (timestamptz, bigint ids, indexed foreign
keys, updated_at triggers). The catalog is read once per module (`catalog`), so these tests
are plain functions.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from tests.realms.market.rules import FOREIGN_KEYS
from tests.realms.market.seed_004 import SEED_COLUMNS, SEED_ENUMS, SEED_INDEXES

# Columns the realm adds to the seed's tables, and why (SCHEMA_NOTES.md).
ADDED_COLUMNS: dict[tuple[str, str], str] = {
    ("user_sessions", "updated_at"): "principle: updated_at on all tables (sessions are updated)",
    ("product_images", "updated_at"): "principle: updated_at on all tables",
    ("product_attributes", "updated_at"): "principle: updated_at on all tables",
    ("commissions", "updated_at"): "principle: updated_at on all tables",
    ("stories", "updated_at"): "principle: updated_at on all tables",
    ("chat_participants", "updated_at"): "principle: updated_at on all tables",
    ("notifications", "updated_at"): "principle: updated_at on all tables",
    ("flash_sale_products", "updated_at"): "principle: updated_at on all tables",
    ("seller_statistics", "created_at"): "principle: created_at on all tables",
    ("messages", "seq"): "gateway: gap-free per-chat sequence",
    ("messages", "client_id"): "gateway: idempotency key",
    ("chats", "product_id"): "4016: the product a direct chat is about",
    ("chats", "order_id"): "4016: the order a direct chat is about",
    ("chats", "assigned_to"): "4016: the staff member answering a support chat",
    ("chat_participants", "last_read_seq"): "4016: read position as a seq (exact unread)",
    ("order_items", "flash_sale_product_id"): "4017: the flash-sale entry an item was sold from",
}

# Seed defaults the realm adds (the seed gives none for these columns).
ADDED_DEFAULTS: dict[tuple[str, str], str] = {
    ("users", "uuid"): "gen_random_uuid()",
    ("stories", "expires_at"): "(now() + '24:00:00'::interval)",
}

# A documented default whose column stays nullable: NULL means "unlimited".
NULLABLE_WITH_DEFAULT = {("promo_codes", "usage_limit_per_user")}


def seed_type(seed: str) -> str:
    """The Postgres type (format_type) the realm uses for a seed type."""
    if m := re.fullmatch(r"DECIMAL\((\d+), (\d+)\)", seed):
        return f"numeric({m[1]},{m[2]})"
    if m := re.fullmatch(r"VARCHAR\((\d+)\)", seed):
        return f"character varying({m[1]})"
    plain = {
        "BIGSERIAL": "bigint",
        "BIGINT": "bigint",
        "INTEGER": "integer",
        "UUID": "uuid",
        "TEXT": "text",
        "BOOLEAN": "boolean",
        "JSONB": "jsonb",
        "INET": "inet",
        "DATE": "date",
        # TIMESTAMP is read as timestamptz; GEOGRAPHY(POLYGON) as the built-in polygon.
        "TIMESTAMP": "timestamp with time zone",
        "GEOGRAPHY(POLYGON)": "polygon",
    }
    return plain.get(seed, f"market.{seed}")


def seed_default(constraints: str) -> str | None:
    """The default expression Postgres shows for the seed's DEFAULT, or None."""
    m = re.search(r"DEFAULT ('[^']*'|[A-Za-z0-9_()]+)", constraints)
    if m is None:
        return None
    value = m[1]
    if value == "NOW()":
        return "now()"
    if value in ("TRUE", "FALSE"):
        return value.lower()
    return value


@dataclass
class Catalog:
    tables: set[str] = field(default_factory=set)
    columns: dict[tuple[str, str], tuple[str, bool, str | None]] = field(default_factory=dict)
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    foreign_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    enums: dict[str, list[str]] = field(default_factory=dict)
    triggers: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)


async def read_catalog(dsn: str) -> Catalog:
    conn = await asyncpg.connect(dsn)
    try:
        cat = Catalog()
        cat.tables = {
            r["relname"]
            for r in await conn.fetch(
                "SELECT relname FROM pg_class"
                " WHERE relnamespace = 'market'::regnamespace AND relkind IN ('r', 'p')"
            )
        }
        for r in await conn.fetch(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type,"
            "       a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS dflt"
            "  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            "  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE c.relnamespace = 'market'::regnamespace AND c.relkind = 'r'"
            "   AND a.attnum > 0 AND NOT a.attisdropped"
        ):
            cat.columns[(r["relname"], r["attname"])] = (r["type"], r["attnotnull"], r["dflt"])
        for r in await conn.fetch(
            "SELECT ic.relname AS name, tc.relname AS tbl, pg_get_indexdef(i.indexrelid) AS def,"
            "       i.indisunique, i.indisprimary, i.indisvalid, am.amname,"
            "       i.indpred IS NOT NULL AS partial,"
            "       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)"
            "               FROM generate_series(1, i.indnatts) AS k ORDER BY k) AS keys"
            "  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
            "  JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_am am ON am.oid = ic.relam"
            " WHERE tc.relnamespace = 'market'::regnamespace"
        ):
            cat.indexes[r["name"]] = dict(r)
        for r in await conn.fetch(
            "SELECT c.conname, t.relname AS tbl, f.relname AS ref, c.confdeltype::text,"
            "       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o)"
            "               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n"
            "              ORDER BY k.o) AS cols"
            "  FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
            "  JOIN pg_class f ON f.oid = c.confrelid"
            " WHERE c.contype = 'f' AND c.connamespace = 'market'::regnamespace"
        ):
            cat.foreign_keys[r["conname"]] = dict(r)
        for r in await conn.fetch(
            "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels"
            "  FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid"
            " WHERE t.typnamespace = 'market'::regnamespace GROUP BY t.typname"
        ):
            cat.enums[r["typname"]] = list(r["labels"])
        for r in await conn.fetch(
            "SELECT c.relname, t.tgname, p.pronamespace::regnamespace::text AS schema,"
            "       p.proname"
            "  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            "  JOIN pg_proc p ON p.oid = t.tgfoid"
            " WHERE c.relnamespace = 'market'::regnamespace AND NOT t.tgisinternal"
        ):
            cat.triggers[(r["relname"], r["tgname"])] = (r["schema"], r["proname"])
        for r in await conn.fetch(
            "SELECT proname, pg_get_function_identity_arguments(oid) AS args FROM pg_proc"
            " WHERE pronamespace = 'market'::regnamespace"
        ):
            cat.functions[r["proname"]] = r["args"]
        return cat
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def catalog(module_dsn: str) -> Catalog:
    return asyncio.run(read_catalog(module_dsn))


SEED_COLUMN_CASES = [
    pytest.param(table, column, typ, constraints, id=f"{table}.{column}")
    for table, columns in SEED_COLUMNS.items()
    for column, typ, constraints in columns
]


# -- tables and columns -----------------------------------------------------------------------


def test_schema_market_holds_exactly_the_documented_tables(catalog: Catalog) -> None:
    assert catalog.tables == set(SEED_COLUMNS)
    assert len(catalog.tables) == 47


@pytest.mark.parametrize(("table", "column", "typ", "constraints"), SEED_COLUMN_CASES)
def test_documented_column_has_the_documented_type(
    catalog: Catalog, table: str, column: str, typ: str, constraints: str
) -> None:
    assert (table, column) in catalog.columns, f"{table}.{column} is missing"
    assert catalog.columns[(table, column)][0] == seed_type(typ)


@pytest.mark.parametrize(("table", "column", "typ", "constraints"), SEED_COLUMN_CASES)
def test_documented_column_is_not_null_when_documented_or_defaulted(
    catalog: Catalog, table: str, column: str, typ: str, constraints: str
) -> None:
    _, not_null, _ = catalog.columns[(table, column)]
    documented = "NOT NULL" in constraints or "PRIMARY KEY" in constraints
    defaulted = "DEFAULT" in constraints and (table, column) not in NULLABLE_WITH_DEFAULT
    assert not_null == (documented or defaulted)


@pytest.mark.parametrize(("table", "column", "typ", "constraints"), SEED_COLUMN_CASES)
def test_documented_column_has_the_documented_default(
    catalog: Catalog, table: str, column: str, typ: str, constraints: str
) -> None:
    _, _, default = catalog.columns[(table, column)]
    if typ == "BIGSERIAL":
        assert default == f"nextval('market.{table}_{column}_seq'::regclass)"
        return
    expected = seed_default(constraints) or ADDED_DEFAULTS.get((table, column))
    if expected is not None and expected.startswith("'"):
        assert default is not None and default.startswith(expected + "::")
    else:
        assert default == expected


def test_columns_beyond_the_seed_are_only_the_documented_additions(catalog: Catalog) -> None:
    documented = {(t, c) for t, cols in SEED_COLUMNS.items() for c, _, _ in cols}
    assert set(catalog.columns) - documented == set(ADDED_COLUMNS)


def test_added_columns_have_their_types(catalog: Catalog) -> None:
    for (table, column), _why in ADDED_COLUMNS.items():
        typ, not_null, default = catalog.columns[(table, column)]
        if column in ("created_at", "updated_at"):
            assert (typ, not_null, default) == ("timestamp with time zone", True, "now()")
    assert catalog.columns[("messages", "seq")] == ("bigint", True, None)
    assert catalog.columns[("messages", "client_id")] == ("character varying(64)", False, None)
    assert catalog.columns[("chat_participants", "last_read_seq")] == ("bigint", True, "0")
    for column in ("product_id", "order_id", "assigned_to"):
        assert catalog.columns[("chats", column)] == ("bigint", False, None)


def test_every_timestamp_is_timestamptz(catalog: Catalog) -> None:
    plain = [k for k, (typ, _, _) in catalog.columns.items() if typ.startswith("timestamp ")]
    assert all(catalog.columns[k][0] == "timestamp with time zone" for k in plain)
    assert not [k for k, (typ, _, _) in catalog.columns.items() if typ == "timestamp"]


def test_every_table_has_a_bigserial_primary_key_named_id(catalog: Catalog) -> None:
    for table in catalog.tables:
        assert catalog.columns[(table, "id")] == (
            "bigint",
            True,
            f"nextval('market.{table}_id_seq'::regclass)",
        )
        assert catalog.indexes[f"{table}_pkey"]["keys"] == ["id"]


# -- enum types -------------------------------------------------------------------------------


def test_there_are_exactly_the_26_documented_enum_types(catalog: Catalog) -> None:
    assert set(catalog.enums) == set(SEED_ENUMS)
    assert len(catalog.enums) == 26


@pytest.mark.parametrize(("name", "labels"), list(SEED_ENUMS.items()), ids=list(SEED_ENUMS))
def test_enum_type_has_the_documented_values_in_order(
    catalog: Catalog, name: str, labels: list[str]
) -> None:
    assert catalog.enums[name] == labels


# -- indexes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "table", "columns", "kind"), SEED_INDEXES, ids=[i[0] for i in SEED_INDEXES]
)
def test_documented_index_exists_on_the_documented_columns(
    catalog: Catalog, name: str, table: str, columns: str, kind: str
) -> None:
    index = catalog.indexes.get(name)
    assert index is not None, f"{name} is missing"
    assert index["tbl"] == table
    documented = [c.strip() for c in columns.split(",")]
    keys = index["keys"]
    if name == "idx_users_email":  # unique case-insensitively: lower(email)
        assert keys == ["lower(email::text)"]
    else:
        # Trailing columns may be added for a query pattern (SCHEMA_NOTES.md).
        assert keys[: len(documented)] == [c.removesuffix(" DESC") for c in documented]
        for c in documented:
            if c.endswith(" DESC"):
                assert f"{c.removesuffix(' DESC')} DESC" in index["def"]
    if kind == "unique":
        assert index["indisunique"]
    if kind == "gist":
        assert index["amname"] == "gist"


def test_unique_seed_columns_have_a_unique_index(catalog: Catalog) -> None:
    single = {
        (i["tbl"], i["keys"][0])
        for i in catalog.indexes.values()
        if i["indisunique"] and len(i["keys"]) == 1 and not i["partial"]
    }
    for table, columns in SEED_COLUMNS.items():
        for column, _, constraints in columns:
            if "UNIQUE" in constraints:
                assert (table, column) in single or (
                    (table, column) == ("users", "email") and "users_email_key" in catalog.indexes
                ), f"{table}.{column}"


def test_extra_seed_index_for_a_unique_column_is_the_unique_index_itself(
    catalog: Catalog,
) -> None:
    # The seed lists e.g. idx_users_uuid on a UNIQUE column: one unique index, not two.
    for name in (
        "idx_users_uuid",
        "idx_users_phone",
        "idx_sessions_token",
        "idx_categories_slug",
        "idx_products_slug",
        "idx_products_sku",
        "idx_variants_sku",
        "idx_orders_number",
        "idx_wallets_user_id",
        "idx_review_responses_review_id",
        "idx_notification_settings_user_id",
        "idx_promo_codes_code",
        "idx_seller_stats_seller_id",
        "idx_settings_key",
    ):
        assert catalog.indexes[name]["indisunique"], name


def test_full_text_indexes_are_gin_on_the_search_expressions(catalog: Catalog) -> None:
    products = catalog.indexes["idx_products_search"]
    assert products["amname"] == "gin"
    assert (
        "to_tsvector('english'::regconfig, (((name)::text || ' '::text) || description))"
        in (products["def"])
    )
    categories = catalog.indexes["idx_categories_search"]
    assert categories["amname"] == "gin"
    assert "COALESCE(description, ''::text)" in categories["def"]


def test_delivery_zone_polygon_index_is_gist_on_the_polygon(catalog: Catalog) -> None:
    index = catalog.indexes["idx_delivery_zones_polygon"]
    assert (index["amname"], index["keys"]) == ("gist", ["polygon"])


def test_every_index_is_valid(catalog: Catalog) -> None:
    assert [n for n, i in catalog.indexes.items() if not i["indisvalid"]] == []


def test_every_foreign_key_column_leads_an_index(catalog: Catalog) -> None:
    leading = {(i["tbl"], i["keys"][0]) for i in catalog.indexes.values()}
    missing = [
        (fk["tbl"], fk["cols"][0])
        for fk in catalog.foreign_keys.values()
        if (fk["tbl"], fk["cols"][0]) not in leading
    ]
    assert missing == []


# -- foreign keys -----------------------------------------------------------------------------

SEED_FK_CASES = [
    pytest.param(table, column, re.search(r"FK (\w+)\(id\)", c)[1], id=f"{table}.{column}")  # type: ignore[index]
    for table, columns in SEED_COLUMNS.items()
    for column, _, c in columns
    if "FK " in c
]


@pytest.mark.parametrize(("table", "column", "parent"), SEED_FK_CASES)
def test_documented_foreign_key_references_the_documented_table(
    catalog: Catalog, table: str, column: str, parent: str
) -> None:
    fk = catalog.foreign_keys.get(f"{table}_{column}_fkey")
    assert fk is not None
    assert (fk["tbl"], fk["cols"], fk["ref"]) == (table, [column], parent)


@pytest.mark.parametrize(
    ("table", "column", "parent", "action"),
    [(t, c, p, a) for t, c, p, a, _ in FOREIGN_KEYS],
    ids=[f"{t}.{c}" for t, c, _, _, _ in FOREIGN_KEYS],
)
def test_foreign_key_has_its_on_delete_action(
    catalog: Catalog, table: str, column: str, parent: str, action: str
) -> None:
    fk = catalog.foreign_keys[f"{table}_{column}_fkey"]
    assert fk["confdeltype"] == {"cascade": "c", "set null": "n", "no action": "a"}[action]


def test_the_on_delete_table_covers_every_single_column_foreign_key(catalog: Catalog) -> None:
    single = {
        (fk["tbl"], fk["cols"][0])
        for fk in catalog.foreign_keys.values()
        if fk["conname"].endswith("_fkey")
    }
    assert single == {(t, c) for t, c, _, _, _ in FOREIGN_KEYS}


# -- triggers and functions -------------------------------------------------------------------


def test_every_table_with_updated_at_has_the_updated_at_trigger(catalog: Catalog) -> None:
    with_column = {t for (t, c) in catalog.columns if c == "updated_at"}
    with_trigger = {
        t
        for (t, name), (_, fn) in catalog.triggers.items()
        if name == f"trg_{t}_updated_at" and fn == "set_updated_at"
    }
    assert with_column == with_trigger
    documented = {t for t, cols in SEED_COLUMNS.items() for c, _, _ in cols if c == "updated_at"}
    added = {t for (t, c) in ADDED_COLUMNS if c == "updated_at"}
    assert with_column == documented | added


def test_market_triggers_run_market_functions(catalog: Catalog) -> None:
    assert {schema for schema, _ in catalog.triggers.values()} == {"market"}


def test_orders_have_the_status_history_triggers(catalog: Catalog) -> None:
    assert catalog.triggers[("orders", "trg_orders_status_history_insert")] == (
        "market",
        "record_order_status",
    )
    assert catalog.triggers[("orders", "trg_orders_status_history_update")] == (
        "market",
        "record_order_status",
    )


def test_documented_functions_exist(catalog: Catalog) -> None:
    expected = {
        "set_updated_at", "require_user_role", "refuse_update", "geo_point", "has_admin_role",
        "set_category_level", "relevel_category_children", "set_product_published_at",
        "search_products", "delivery_zones_at", "point_in_zone",
        "order_status_transition_allowed", "guard_order_status", "record_order_status",
        "check_order_item_seller", "check_tracking_courier", "record_promo_code_usage",
        "apply_wallet_transaction", "maintain_counter", "check_direct_chat_participants",
        "assign_message_seq", "keep_message_seq", "check_message_product",
        "touch_chat_last_message", "check_review_product", "refresh_product_rating",
        "stamp_notification_read", "notification_channel_enabled", "check_return_item",
        "refresh_seller_statistics", "refresh_analytics_views", "setting_value_valid",
        "deactivate_expired_stories", "purge_expired_stories", "purge_old_analytics_events",
        "purge_old_audit_logs", "apply_retention", "orders_due_for_archival",
        "users_due_for_archival", "current_user_id", "is_chat_participant",
        # 4016: the gateway's additions
        "append_chat_messages", "notify_order_status", "notify_order_courier",
        "notify_chat_participant_removed", "notify_user_disabled",
    }  # fmt: skip
    assert set(catalog.functions) == expected
