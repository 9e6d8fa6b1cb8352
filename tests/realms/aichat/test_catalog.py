"""The aichat schema as the catalog sees it: the seed's tables with their columns, types,
NOT NULLs and defaults in its order, every documented index, every foreign key once with its
ON DELETE action, the UNIQUE and CHECK constraints, the updated_at triggers.

Later migrations of the realm may add columns (after the seed's), indexes and constraints;
these tests check that everything of 2001_aichat_schema.sql is there and unchanged.
"""

from __future__ import annotations

import asyncpg
import pytest

V = "character varying"
TS = "timestamp without time zone"
NOW = "CURRENT_TIMESTAMP"
UUID_PK = ("id", "uuid", True, "gen_random_uuid()")
CREATED = ("created_at", TS, True, NOW)
UPDATED = ("updated_at", TS, True, NOW)

# (column, type, NOT NULL, default) in the seed's order. Columns the seed gives a default are
# NOT NULL (SCHEMA_NOTES.md, "NOT NULL where the seed gives a default").
COLUMNS: dict[str, list[tuple[str, str, bool, str | None]]] = {
    "users": [
        UUID_PK,
        ("email", f"{V}(255)", True, None),
        ("password", f"{V}(255)", True, None),
        ("name", f"{V}(255)", True, None),
        ("plan_tier", f"{V}(50)", True, f"'FREE'::{V}"),
        ("email_verified", "boolean", True, "false"),
        ("email_verified_at", TS, False, None),
        ("is_active", "boolean", True, "true"),
        ("monthly_token_used", "integer", True, "0"),
        ("monthly_token_reset", "date", True, "CURRENT_DATE"),
        ("last_login_at", TS, False, None),
        ("login_count", "integer", True, "0"),
        CREATED,
        UPDATED,
    ],
    "sessions": [
        UUID_PK,
        ("user_id", "uuid", True, None),
        ("token", f"{V}(512)", True, None),
        ("user_agent", f"{V}(500)", False, None),
        ("ip_address", "inet", False, None),
        ("is_active", "boolean", True, "true"),
        ("expires_at", TS, True, None),
        CREATED,
        ("last_activity_at", TS, True, NOW),
    ],
    "email_verifications": [
        UUID_PK,
        ("user_id", "uuid", True, None),
        ("email", f"{V}(255)", True, None),
        ("token", f"{V}(255)", True, None),
        ("is_verified", "boolean", True, "false"),
        ("verified_at", TS, False, None),
        ("expires_at", TS, True, None),
        ("attempt_count", "integer", True, "0"),
        CREATED,
        UPDATED,
    ],
    "password_resets": [
        UUID_PK,
        ("user_id", "uuid", True, None),
        ("token", f"{V}(255)", True, None),
        ("email", f"{V}(255)", True, None),
        ("is_used", "boolean", True, "false"),
        ("used_at", TS, False, None),
        ("expires_at", TS, True, None),
        CREATED,
    ],
    "conversations": [
        UUID_PK,
        ("user_id", "uuid", True, None),
        ("title", f"{V}(500)", True, None),
        ("description", "text", False, None),
        ("model", f"{V}(100)", True, None),
        ("system_prompt", "text", False, None),
        ("message_count", "integer", True, "0"),
        ("token_count", "integer", True, "0"),
        ("is_archived", "boolean", True, "false"),
        ("archived_at", TS, False, None),
        CREATED,
        UPDATED,
    ],
    "messages": [
        UUID_PK,
        ("conversation_id", "uuid", True, None),
        ("role", f"{V}(50)", True, None),
        ("content", "text", True, None),
        ("token_count", "integer", True, "0"),
        ("prompt_tokens", "integer", False, None),
        ("completion_tokens", "integer", False, None),
        ("model", f"{V}(100)", False, None),
        ("language", f"{V}(10)", False, None),
        ("is_deleted", "boolean", True, "false"),
        ("deleted_at", TS, False, None),
        CREATED,
        UPDATED,
    ],
    "token_usage": [
        UUID_PK,
        ("user_id", "uuid", True, None),
        ("conversation_id", "uuid", False, None),
        ("message_id", "uuid", False, None),
        ("provider", f"{V}(100)", True, None),
        ("model", f"{V}(100)", True, None),
        ("prompt_tokens", "integer", True, None),
        ("completion_tokens", "integer", True, None),
        ("total_tokens", "integer", True, None),
        ("cost_usd", "numeric(10,6)", True, None),
        ("billing_month", "date", True, None),
        CREATED,
    ],
    "plans": [
        UUID_PK,
        ("name", f"{V}(100)", True, None),
        ("stripe_price_id", f"{V}(255)", False, None),
        ("monthly_price", "numeric(10,2)", True, None),
        ("yearly_price", "numeric(10,2)", False, None),
        ("monthly_token_quota", "integer", True, None),
        ("max_conversations", "integer", False, None),
        ("max_messages_per_conversation", "integer", False, None),
        ("features", "json", True, "'[]'::json"),
        ("is_active", "boolean", True, "true"),
        CREATED,
        UPDATED,
    ],
    "subscriptions": [
        UUID_PK,
        ("user_id", "uuid", True, None),
        ("plan_id", "uuid", True, None),
        ("stripe_subscription_id", f"{V}(255)", True, None),
        ("stripe_customer_id", f"{V}(255)", True, None),
        ("status", f"{V}(50)", True, f"'active'::{V}"),
        ("current_period_start", TS, True, None),
        ("current_period_end", TS, True, None),
        ("cancellation_date", TS, False, None),
        ("cancellation_reason", f"{V}(255)", False, None),
        ("cancel_at_period_end", "boolean", True, "false"),
        ("trial_ends_at", TS, False, None),
        CREATED,
        UPDATED,
    ],
    "payments": [
        UUID_PK,
        ("user_id", "uuid", True, None),
        ("subscription_id", "uuid", False, None),
        ("stripe_payment_intent_id", f"{V}(255)", True, None),
        ("stripe_invoice_id", f"{V}(255)", False, None),
        ("amount", "numeric(10,2)", True, None),
        ("currency", f"{V}(3)", True, f"'USD'::{V}"),
        ("status", f"{V}(50)", True, None),
        ("description", "text", False, None),
        ("metadata", "json", False, None),
        CREATED,
        UPDATED,
    ],
    "invoices": [
        UUID_PK,
        ("user_id", "uuid", True, None),
        ("subscription_id", "uuid", False, None),
        ("invoice_number", f"{V}(50)", True, None),
        ("stripe_invoice_id", f"{V}(255)", True, None),
        ("subtotal", "numeric(10,2)", True, None),
        ("tax", "numeric(10,2)", True, "0"),
        ("total", "numeric(10,2)", True, None),
        ("status", f"{V}(50)", True, f"'draft'::{V}"),
        ("due_date", "date", False, None),
        ("paid_at", TS, False, None),
        ("pdf_url", f"{V}(500)", False, None),
        CREATED,
        UPDATED,
    ],
    "usage_tracking": [
        UUID_PK,
        ("user_id", "uuid", True, None),
        ("billing_month", "date", True, None),
        ("tokens_used", "integer", True, "0"),
        ("messages_count", "integer", True, "0"),
        ("conversations_count", "integer", True, "0"),
        ("monthly_quota", "integer", True, None),
        ("cost_this_month", "numeric(10,6)", True, "0"),
        CREATED,
        UPDATED,
    ],
    "ai_providers": [
        UUID_PK,
        ("name", f"{V}(100)", True, None),
        ("input_token_cost_per_1k", "numeric(10,8)", True, None),
        ("output_token_cost_per_1k", "numeric(10,8)", True, None),
        ("requests_per_minute", "integer", False, None),
        ("requests_per_day", "integer", False, None),
        ("supported_models", "json", True, "'[]'::json"),
        ("is_active", "boolean", True, "true"),
        ("is_available", "boolean", True, "true"),
        CREATED,
        UPDATED,
    ],
}

TABLES_WITH_UPDATED_AT = sorted(t for t, cols in COLUMNS.items() if UPDATED in cols)

# Every index of the seed (tables 1-13 and its "Indexes" section), plus the two FK indexes
# SCHEMA_NOTES.md adds: (name, table, key as pg_get_indexdef prints it).
INDEXES = [
    ("idx_users_email", "users", "(email)"),
    ("idx_users_plan_tier", "users", "(plan_tier)"),
    ("idx_users_is_active", "users", "(is_active)"),
    ("idx_users_created_at", "users", "(created_at DESC)"),
    ("idx_sessions_user_id", "sessions", "(user_id)"),
    ("idx_sessions_token", "sessions", "(token)"),
    ("idx_sessions_expires_at", "sessions", "(expires_at)"),
    ("idx_email_verifications_user_id", "email_verifications", "(user_id)"),
    ("idx_email_verifications_token", "email_verifications", "(token)"),
    ("idx_email_verifications_expires_at", "email_verifications", "(expires_at)"),
    ("idx_password_resets_user_id", "password_resets", "(user_id)"),
    ("idx_password_resets_token", "password_resets", "(token)"),
    ("idx_conversations_user_id", "conversations", "(user_id)"),
    ("idx_conversations_model", "conversations", "(model)"),
    ("idx_conversations_created_at", "conversations", "(created_at DESC)"),
    ("idx_conversations_is_archived", "conversations", "(is_archived)"),
    ("idx_messages_conversation_id", "messages", "(conversation_id)"),
    ("idx_messages_role", "messages", "(role)"),
    ("idx_messages_created_at", "messages", "(created_at DESC)"),
    ("idx_messages_model", "messages", "(model)"),
    ("idx_token_usage_user_id", "token_usage", "(user_id)"),
    ("idx_token_usage_user_id_billing_month", "token_usage", "(user_id, billing_month)"),
    ("idx_token_usage_conversation_id", "token_usage", "(conversation_id)"),
    ("idx_token_usage_model", "token_usage", "(model)"),
    ("idx_token_usage_created_at", "token_usage", "(created_at DESC)"),
    ("idx_plans_name", "plans", "(name)"),
    ("idx_plans_is_active", "plans", "(is_active)"),
    ("idx_subscriptions_user_id", "subscriptions", "(user_id)"),
    ("idx_subscriptions_plan_id", "subscriptions", "(plan_id)"),
    ("idx_subscriptions_status", "subscriptions", "(status)"),
    ("idx_subscriptions_current_period_end", "subscriptions", "(current_period_end)"),
    ("idx_payments_user_id", "payments", "(user_id)"),
    ("idx_payments_subscription_id", "payments", "(subscription_id)"),
    ("idx_payments_status", "payments", "(status)"),
    ("idx_payments_created_at", "payments", "(created_at DESC)"),
    ("idx_invoices_user_id", "invoices", "(user_id)"),
    ("idx_invoices_status", "invoices", "(status)"),
    ("idx_usage_tracking_user_id", "usage_tracking", "(user_id)"),
    ("idx_usage_tracking_billing_month", "usage_tracking", "(billing_month)"),
    ("idx_ai_providers_name", "ai_providers", "(name)"),
    ("idx_ai_providers_is_active", "ai_providers", "(is_active)"),
    # "Performance-Critical Indexes"
    ("idx_token_usage_user_id_model", "token_usage", "(user_id, model)"),
    (
        "idx_messages_conversation_id_created_at",
        "messages",
        "(conversation_id, created_at DESC)",
    ),
    ("idx_conversations_user_id_created_at", "conversations", "(user_id, created_at DESC)"),
    ("idx_subscriptions_user_id_status", "subscriptions", "(user_id, status)"),
    ("idx_payments_user_id_created_at", "payments", "(user_id, created_at DESC)"),
    ("idx_token_usage_billing_month", "token_usage", "(billing_month)"),
    (
        "idx_token_usage_user_id_billing_month_model",
        "token_usage",
        "(user_id, billing_month, model)",
    ),
    (
        "idx_conversations_user_id_model_created_at",
        "conversations",
        "(user_id, model, created_at DESC)",
    ),
    # Added: FK indexes for ON DELETE SET NULL.
    ("idx_token_usage_message_id", "token_usage", "(message_id)"),
    ("idx_invoices_subscription_id", "invoices", "(subscription_id)"),
]

# (constraint, table, column, referenced table, ON DELETE as pg_constraint.confdeltype)
CASCADE, SET_NULL, NO_ACTION = "c", "n", "a"
FOREIGN_KEYS = [
    ("fk_sessions_user_id", "sessions", "user_id", "users", CASCADE),
    ("fk_email_verifications_user_id", "email_verifications", "user_id", "users", CASCADE),
    ("fk_password_resets_user_id", "password_resets", "user_id", "users", CASCADE),
    ("fk_conversations_user_id", "conversations", "user_id", "users", CASCADE),
    ("fk_messages_conversation_id", "messages", "conversation_id", "conversations", CASCADE),
    ("fk_token_usage_user_id", "token_usage", "user_id", "users", CASCADE),
    ("fk_token_usage_conversation_id", "token_usage", "conversation_id", "conversations", SET_NULL),
    ("fk_token_usage_message_id", "token_usage", "message_id", "messages", SET_NULL),
    ("fk_subscriptions_user_id", "subscriptions", "user_id", "users", CASCADE),
    ("fk_subscriptions_plan_id", "subscriptions", "plan_id", "plans", NO_ACTION),
    ("fk_payments_user_id", "payments", "user_id", "users", CASCADE),
    ("fk_payments_subscription_id", "payments", "subscription_id", "subscriptions", SET_NULL),
    ("fk_invoices_user_id", "invoices", "user_id", "users", CASCADE),
    ("fk_invoices_subscription_id", "invoices", "subscription_id", "subscriptions", SET_NULL),
    ("fk_usage_tracking_user_id", "usage_tracking", "user_id", "users", CASCADE),
]

# (table, constraint, columns): the seed's UNIQUE columns, and nothing else.
UNIQUES = {
    ("users", "users_email_key", ("email",)),
    ("sessions", "sessions_token_key", ("token",)),
    ("email_verifications", "email_verifications_token_key", ("token",)),
    ("password_resets", "password_resets_token_key", ("token",)),
    ("plans", "plans_name_key", ("name",)),
    ("subscriptions", "subscriptions_user_id_key", ("user_id",)),
    ("subscriptions", "subscriptions_stripe_subscription_id_key", ("stripe_subscription_id",)),
    ("payments", "payments_stripe_payment_intent_id_key", ("stripe_payment_intent_id",)),
    ("invoices", "invoices_invoice_number_key", ("invoice_number",)),
    ("invoices", "invoices_stripe_invoice_id_key", ("stripe_invoice_id",)),
    ("usage_tracking", "usage_tracking_user_id_key", ("user_id",)),
    ("ai_providers", "ai_providers_name_key", ("name",)),
}

# Every CHECK of the schema; each has its own behavioural test in the table's module.
CHECKS = {
    ("users", "check_plan_tier"),
    ("users", "users_email_verified_needs_email_verified_at"),
    ("users", "users_monthly_token_used_non_negative"),
    ("users", "users_login_count_non_negative"),
    ("email_verifications", "email_verifications_is_verified_needs_verified_at"),
    ("email_verifications", "email_verifications_attempt_count_non_negative"),
    ("password_resets", "password_resets_is_used_needs_used_at"),
    ("conversations", "conversations_model_valid"),
    ("conversations", "conversations_message_count_non_negative"),
    ("conversations", "conversations_token_count_non_negative"),
    ("conversations", "conversations_is_archived_needs_archived_at"),
    ("messages", "check_role"),
    ("messages", "messages_token_count_non_negative"),
    ("messages", "messages_prompt_tokens_non_negative"),
    ("messages", "messages_completion_tokens_non_negative"),
    ("messages", "messages_is_deleted_needs_deleted_at"),
    ("token_usage", "check_providers"),
    ("token_usage", "token_usage_prompt_tokens_non_negative"),
    ("token_usage", "token_usage_completion_tokens_non_negative"),
    ("token_usage", "token_usage_total_tokens_is_sum"),
    ("token_usage", "token_usage_cost_usd_non_negative"),
    ("token_usage", "token_usage_billing_month_first_day"),
    ("plans", "plans_name_valid"),
    ("plans", "plans_monthly_price_non_negative"),
    ("plans", "plans_yearly_price_non_negative"),
    ("plans", "plans_monthly_token_quota_non_negative"),
    ("plans", "plans_max_conversations_positive"),
    ("plans", "plans_max_messages_per_conversation_positive"),
    ("plans", "plans_features_is_array"),
    ("subscriptions", "check_subscription_status"),
    ("subscriptions", "subscriptions_period_end_after_start"),
    ("payments", "check_status"),
    ("payments", "payments_amount_non_negative"),
    ("payments", "payments_currency_format"),
    ("invoices", "invoices_status_valid"),
    ("invoices", "invoices_paid_needs_paid_at"),
    ("usage_tracking", "usage_tracking_billing_month_first_day"),
    ("usage_tracking", "usage_tracking_tokens_used_non_negative"),
    ("usage_tracking", "usage_tracking_messages_count_non_negative"),
    ("usage_tracking", "usage_tracking_conversations_count_non_negative"),
    ("usage_tracking", "usage_tracking_monthly_quota_non_negative"),
    ("usage_tracking", "usage_tracking_cost_this_month_non_negative"),
    ("ai_providers", "ai_providers_name_valid"),
    ("ai_providers", "ai_providers_input_token_cost_per_1k_non_negative"),
    ("ai_providers", "ai_providers_output_token_cost_per_1k_non_negative"),
    ("ai_providers", "ai_providers_requests_per_minute_positive"),
    ("ai_providers", "ai_providers_requests_per_day_positive"),
    ("ai_providers", "ai_providers_supported_models_is_array"),
}


async def test_aichat_schema_holds_the_seeds_thirteen_tables(db: asyncpg.Connection) -> None:
    tables = await db.fetch(
        "SELECT relname, relkind::text FROM pg_class"
        " WHERE relnamespace = 'aichat'::regnamespace AND relname = ANY ($1::text[])",
        list(COLUMNS),
    )
    assert sorted((r["relname"], r["relkind"]) for r in tables) == [
        (t, "r") for t in sorted(COLUMNS)
    ]


@pytest.mark.parametrize("table", sorted(COLUMNS))
async def test_table_columns_types_not_nulls_and_defaults_are_the_seeds(
    db: asyncpg.Connection, table: str
) -> None:
    rows = await db.fetch(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,"
        "       pg_get_expr(d.adbin, d.adrelid) AS dflt"
        "  FROM pg_attribute a"
        "  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        f"aichat.{table}",
    )
    found = [(r["attname"], r["type"], r["attnotnull"], r["dflt"]) for r in rows]
    assert found[: len(COLUMNS[table])] == COLUMNS[table]


@pytest.mark.parametrize("table", sorted(COLUMNS))
async def test_primary_key_is_the_uuid_id(db: asyncpg.Connection, table: str) -> None:
    key = await db.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = $1::regclass AND contype = 'p'",
        f"aichat.{table}",
    )
    assert key == "PRIMARY KEY (id)"


@pytest.mark.parametrize(("name", "table", "key"), INDEXES, ids=[i[0] for i in INDEXES])
async def test_documented_index_exists(
    db: asyncpg.Connection, name: str, table: str, key: str
) -> None:
    indexdef = await db.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'aichat' AND indexname = $1", name
    )
    assert indexdef == f"CREATE INDEX {name} ON aichat.{table} USING btree {key}"


@pytest.mark.parametrize(
    ("name", "table", "column", "target", "on_delete"),
    FOREIGN_KEYS,
    ids=[f[0] for f in FOREIGN_KEYS],
)
async def test_foreign_key_and_its_on_delete_action(
    db: asyncpg.Connection, name: str, table: str, column: str, target: str, on_delete: str
) -> None:
    fk = await db.fetchrow(
        "SELECT c.conrelid::regclass::text AS tbl, c.confrelid::regclass::text AS target,"
        "       c.confdeltype::text, c.confupdtype::text,"
        "       array(SELECT attname FROM pg_attribute"
        "              WHERE attrelid = c.conrelid AND attnum = ANY (c.conkey)) AS cols,"
        "       array(SELECT attname FROM pg_attribute"
        "              WHERE attrelid = c.confrelid AND attnum = ANY (c.confkey)) AS ref_cols"
        "  FROM pg_constraint c"
        " WHERE c.contype = 'f' AND c.connamespace = 'aichat'::regnamespace AND c.conname = $1",
        name,
    )
    assert fk is not None, f"{name} is missing"
    assert (fk["tbl"], fk["cols"], fk["target"], fk["ref_cols"]) == (
        f"aichat.{table}",
        [column],
        f"aichat.{target}",
        ["id"],
    )
    assert fk["confdeltype"] == on_delete
    assert fk["confupdtype"] == NO_ACTION


async def test_each_relationship_has_exactly_one_foreign_key(db: asyncpg.Connection) -> None:
    """The seed declares five FKs twice (inline and in its ALTER TABLE section): one each."""
    rows = await db.fetch(
        "SELECT conrelid::regclass::text AS tbl, conkey, count(*) AS n FROM pg_constraint"
        " WHERE contype = 'f' AND connamespace = 'aichat'::regnamespace"
        " GROUP BY conrelid, conkey"
    )
    assert [r for r in rows if r["n"] != 1] == []
    assert len(rows) >= len(FOREIGN_KEYS)


async def test_every_foreign_key_column_leads_an_index(db: asyncpg.Connection) -> None:
    unindexed = await db.fetch(
        "SELECT c.conname FROM pg_constraint c"
        " WHERE c.contype = 'f' AND c.connamespace = 'aichat'::regnamespace"
        "   AND NOT EXISTS (SELECT 1 FROM pg_index i"
        "                    WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])"
    )
    assert unindexed == []


async def test_unique_constraints_of_the_seed_exist(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        "SELECT c.conrelid::regclass::text AS tbl, c.conname,"
        "       array(SELECT attname FROM pg_attribute"
        "              WHERE attrelid = c.conrelid AND attnum = ANY (c.conkey)) AS cols"
        "  FROM pg_constraint c"
        " WHERE c.contype = 'u' AND c.connamespace = 'aichat'::regnamespace"
    )
    found = {(r["tbl"].removeprefix("aichat."), r["conname"], tuple(r["cols"])) for r in rows}
    assert UNIQUES <= found


async def test_check_constraints_exist(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        "SELECT conrelid::regclass::text AS tbl, conname FROM pg_constraint"
        " WHERE contype = 'c' AND connamespace = 'aichat'::regnamespace"
    )
    assert CHECKS <= {(r["tbl"].removeprefix("aichat."), r["conname"]) for r in rows}


@pytest.mark.parametrize("table", TABLES_WITH_UPDATED_AT)
async def test_table_with_updated_at_has_the_before_update_trigger(
    db: asyncpg.Connection, table: str
) -> None:
    trigger = await db.fetchrow(
        "SELECT p.pronamespace::regnamespace::text AS schema, p.proname,"
        "       pg_get_triggerdef(t.oid) AS def"
        "  FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
        " WHERE t.tgrelid = $1::regclass AND NOT t.tgisinternal"
        "   AND t.tgfoid = 'aichat.update_updated_at_column'::regproc",
        f"aichat.{table}",
    )
    assert trigger is not None
    assert (trigger["schema"], trigger["proname"]) == ("aichat", "update_updated_at_column")
    assert f"BEFORE UPDATE ON aichat.{table} FOR EACH ROW" in trigger["def"]


@pytest.mark.parametrize("table", sorted(set(COLUMNS) - set(TABLES_WITH_UPDATED_AT)))
async def test_table_without_updated_at_has_no_updated_at_trigger(
    db: asyncpg.Connection, table: str
) -> None:
    """sessions (last_activity_at is activity, not an edit), password_resets, token_usage."""
    count = await db.fetchval(
        "SELECT count(*) FROM pg_trigger"
        " WHERE tgrelid = $1::regclass AND tgfoid = 'aichat.update_updated_at_column'::regproc",
        f"aichat.{table}",
    )
    assert count == 0


async def test_the_trigger_function_lives_in_aichat_not_public(db: asyncpg.Connection) -> None:
    schemas = await db.fetch(
        "SELECT pronamespace::regnamespace::text AS schema FROM pg_proc"
        " WHERE proname = 'update_updated_at_column'"
    )
    found = {r["schema"] for r in schemas}
    assert "aichat" in found
    assert "public" not in found
    migrated = await db.fetchval(
        "SELECT count(*) FROM gateway.schema_migrations WHERE filename = '2001_aichat_schema.sql'"
    )
    assert migrated == 1
