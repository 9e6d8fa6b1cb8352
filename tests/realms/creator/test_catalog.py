"""The creator schema as a whole (realms/creator/sql/3001-3010): every table of the seed, the
seed's indexes exactly as listed, an index behind every foreign key, updated_at triggers,
timestamptz everywhere, money in bigint minor units, uuid keys, and nothing outside schema
`creator`."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import pytest

SQL_DIR = Path(__file__).resolve().parents[3] / "realms" / "creator" / "sql"

# The table list, plus user_sessions (the seed's session retention) and the two
# analytics archives (the seed's "archive to cold storage").
TABLES = [
    "users",
    "user_profiles",
    "user_sessions",
    "content",
    "subscriptions",
    "conversations",
    "messages",
    "transactions",
    "tips",
    "live_streams",
    "stream_access",
    "content_analytics",
    "user_analytics",
    "revenue_analytics",
    "audit_logs",
    "system_logs",
    "content_reports",
    "content_moderation_actions",
    "user_violations",
    "follows",
    "likes",
    "comments",
    "notifications",
    "content_analytics_archive",
    "user_analytics_archive",
]
APPEND_ONLY = [
    "likes",
    "content_analytics",
    "user_analytics",
    "audit_logs",
    "system_logs",
    "content_analytics_archive",
    "user_analytics_archive",
]
MUTABLE = [t for t in TABLES if t not in APPEND_ONLY]

# The seed's "Database Indexes" block, verbatim: (table, definition).
SEED_INDEXES = {
    "idx_users_username": ("users", "(username)"),
    "idx_users_email": ("users", "(email)"),
    "idx_users_account_type": ("users", "(account_type)"),
    "idx_content_creator": ("content", "(creator_id)"),
    "idx_content_created_at": ("content", "(created_at DESC)"),
    "idx_content_analytics_content": ("content_analytics", "(content_id)"),
    "idx_content_analytics_created_at": ("content_analytics", "(created_at DESC)"),
    "idx_content_reports_status": ("content_reports", "(status)"),
    "idx_audit_logs_created_at": ("audit_logs", "(created_at DESC)"),
}

# Indexes this schema adds for its own queries (SCHEMA_NOTES.md): name -> definition part.
OWN_INDEXES = {
    "users_username_lower_key": "UNIQUE INDEX users_username_lower_key ON creator.users"
    " USING btree (lower((username)::text))",
    "users_email_lower_key": "UNIQUE INDEX users_email_lower_key ON creator.users"
    " USING btree (lower((email)::text))",
    "idx_users_search": "USING gin (to_tsvector('simple'::regconfig,",
    "idx_users_suspended_until": "(suspended_until)"
    " WHERE ((account_status)::text = 'suspended'::text)",
    "idx_user_profiles_content_categories": "USING gin (content_categories)",
    "idx_user_sessions_last_activity": "(COALESCE(last_active_at, created_at))",
    "idx_content_creator_feed": "(creator_id, created_at DESC) WHERE (deleted_at IS NULL)",
    "idx_content_scheduled": "(scheduled_at) WHERE (((status)::text = 'scheduled'::text)",
    "idx_content_moderation_queue": "(created_at) WHERE",
    "idx_content_deleted_at": "(deleted_at) WHERE (deleted_at IS NOT NULL)",
    "subscriptions_one_current_per_pair": "UNIQUE INDEX",
    "idx_subscriptions_expires_at": "(expires_at) WHERE",
    "idx_follows_following_id": "(following_id, created_at DESC)",
    "idx_comments_content_id": "(content_id, is_pinned DESC, is_by_creator DESC, created_at DESC)",
    "idx_conversations_creator_inbox": "(creator_id, last_message_at DESC)",
    "idx_conversations_fan_id": "(fan_id, last_message_at DESC)",
    "messages_conversation_id_seq_key": "UNIQUE INDEX messages_conversation_id_seq_key"
    " ON creator.messages USING btree (conversation_id, seq)",
    "messages_client_id_key": "(conversation_id, sender_id, client_id)"
    " WHERE (client_id IS NOT NULL)",
    "idx_messages_deleted_at": "(deleted_at) WHERE (deleted_at IS NOT NULL)",
    "idx_live_streams_upcoming": "(status, scheduled_at) WHERE",
    "transactions_idempotency_key_key": "UNIQUE INDEX transactions_idempotency_key_key"
    " ON creator.transactions USING btree (idempotency_key)",
    "transactions_one_message_purchase": "(message_id, user_id) WHERE",
    "transactions_one_content_purchase": "(content_id, user_id) WHERE",
    "transactions_one_stream_access": "(live_stream_id, user_id) WHERE",
    "transactions_processor_transaction_id_key": "(payment_processor, processor_transaction_id)",
    "idx_transactions_completed_at": "(completed_at) WHERE ((status)::text = 'completed'::text)",
    "idx_revenue_analytics_period": "(period_type, period_start DESC)",
    "revenue_analytics_period_key": "NULLS NOT DISTINCT",
    "idx_content_reports_open_queue": "(priority, created_at) WHERE",
    "content_reports_one_open_per_reporter": "UNIQUE INDEX",
    "idx_content_moderation_actions_review_queue": "(created_at) WHERE (requires_human_review",
    "idx_user_violations_active_ends_at": "(ends_at) WHERE",
    "idx_notifications_unread": "(user_id) WHERE (read_at IS NULL)",
    "idx_system_logs_created_at": "(created_at DESC)",
    "idx_user_analytics_created_at": "(created_at DESC)",
    "idx_content_analytics_archive_unexported": "(created_at) WHERE (exported_at IS NULL)",
    "idx_user_analytics_archive_unexported": "(created_at) WHERE (exported_at IS NULL)",
}

FK_COLUMNS_WITHOUT_INDEX = """
SELECT c.conrelid::regclass::text AS tbl, a.attname AS col
  FROM pg_constraint c
  CROSS JOIN LATERAL unnest(c.conkey) AS k(attnum)
  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
 WHERE c.contype = 'f'
   AND c.connamespace = 'creator'::regnamespace
   AND NOT EXISTS (SELECT 1 FROM pg_index i
                    WHERE i.indrelid = c.conrelid AND i.indkey[0] = k.attnum)
"""

MONEY_COLUMNS = [
    ("users", "subscription_price"),
    ("content", "price"),
    ("subscriptions", "price"),
    ("messages", "price"),
    ("live_streams", "price"),
    ("transactions", "gross_amount"),
    ("transactions", "platform_fee"),
    ("transactions", "net_amount"),
    ("tips", "amount"),
    ("revenue_analytics", "gross_amount"),
    ("revenue_analytics", "platform_fee"),
    ("revenue_analytics", "net_amount"),
]

FUNCTIONS = {
    "set_updated_at": "",
    "current_user_id": "",
    "current_user_is_staff": "",
    "require_creator_account": "",
    "publish_scheduled_content": "",
    "has_active_subscription": "p_subscriber_id uuid, p_creator_id uuid",
    "expire_subscriptions": "",
    "mark_conversation_read": "p_conversation_id uuid, p_user_id uuid, p_seq bigint",
    "may_start_conversation": "p_fan_id uuid, p_creator_id uuid",
    "issue_stream_key": "p_stream_id uuid",
    "stream_id_for_key": "p_key text",
    "record_stream_join": "p_stream_id uuid, p_user_id uuid, p_at timestamp with time zone",
    "record_stream_leave": "p_stream_id uuid, p_user_id uuid, p_at timestamp with time zone",
    "message_unlocked_for": "p_message_id uuid, p_user_id uuid",
    "content_accessible_to": "p_content_id uuid, p_user_id uuid",
    "refresh_revenue_analytics": (
        "p_period_type text, p_from timestamp with time zone, p_to timestamp with time zone"
    ),
    "has_feature_restriction": "p_user_id uuid, p_feature text",
    "lift_expired_suspensions": "",
    "write_audit_log": "",
}


@pytest.mark.parametrize("table", TABLES)
async def test_table_exists_in_schema_creator(db: asyncpg.Connection, table: str) -> None:
    assert await db.fetchval("SELECT to_regclass($1)", f"creator.{table}") is not None


async def test_no_creator_table_lands_in_public(db: asyncpg.Connection) -> None:
    stray = await db.fetch(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relname = ANY ($1::text[])",
        TABLES,
    )
    assert stray == []


@pytest.mark.parametrize(("name", "where"), SEED_INDEXES.items())
async def test_seed_index_exists_exactly_as_listed(
    db: asyncpg.Connection, name: str, where: tuple[str, str]
) -> None:
    table, columns = where
    indexdef = await db.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'creator' AND indexname = $1", name
    )
    assert indexdef == f"CREATE INDEX {name} ON creator.{table} USING btree {columns}"


@pytest.mark.parametrize(("name", "part"), OWN_INDEXES.items())
async def test_schema_index_exists(db: asyncpg.Connection, name: str, part: str) -> None:
    indexdef = await db.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'creator' AND indexname = $1", name
    )
    assert indexdef is not None, f"{name} is missing"
    assert part in indexdef


async def test_every_foreign_key_column_leads_an_index(db: asyncpg.Connection) -> None:
    assert await db.fetch(FK_COLUMNS_WITHOUT_INDEX) == []


@pytest.mark.parametrize("table", MUTABLE)
async def test_mutable_table_has_timestamps_and_updated_at_trigger(
    db: asyncpg.Connection, table: str
) -> None:
    trigger = await db.fetchval(
        "SELECT p.proname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
        " WHERE t.tgrelid = $1::regclass AND t.tgname = $2",
        f"creator.{table}",
        f"trg_{table}_updated_at",
    )
    assert trigger == "set_updated_at"
    defaults = await db.fetch(
        "SELECT column_name, column_default, is_nullable FROM information_schema.columns"
        " WHERE table_schema = 'creator' AND table_name = $1"
        " AND column_name IN ('created_at', 'updated_at')",
        table,
    )
    assert {(r["column_name"], r["column_default"], r["is_nullable"]) for r in defaults} == {
        ("created_at", "now()", "NO"),
        ("updated_at", "now()", "NO"),
    }


@pytest.mark.parametrize("table", APPEND_ONLY)
async def test_append_only_table_has_created_at_but_no_updated_at(
    db: asyncpg.Connection, table: str
) -> None:
    columns = {
        r["column_name"]
        for r in await db.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'creator' AND table_name = $1",
            table,
        )
    }
    assert "created_at" in columns and "updated_at" not in columns


async def test_every_timestamp_is_timestamptz(db: asyncpg.Connection) -> None:
    naive = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'creator' AND data_type = 'timestamp without time zone'"
    )
    assert naive == []


@pytest.mark.parametrize(("table", "name"), MONEY_COLUMNS)
async def test_money_is_bigint_minor_units(db: asyncpg.Connection, table: str, name: str) -> None:
    data_type = await db.fetchval(
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_schema = 'creator' AND table_name = $1 AND column_name = $2",
        table,
        name,
    )
    assert data_type == "bigint"


@pytest.mark.parametrize("table", TABLES)
async def test_primary_key_is_a_uuid_v4_id(db: asyncpg.Connection, table: str) -> None:
    row = await db.fetchrow(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type"
        " FROM pg_index i JOIN pg_attribute a"
        "   ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
        " WHERE i.indrelid = $1::regclass AND i.indisprimary",
        f"creator.{table}",
    )
    assert (row["attname"], row["type"]) == ("id", "uuid")
    default = await db.fetchval(
        "SELECT column_default FROM information_schema.columns"
        " WHERE table_schema = 'creator' AND table_name = $1 AND column_name = 'id'",
        table,
    )
    assert default == "gen_random_uuid()"


async def test_every_type_and_status_column_has_a_value_check(db: asyncpg.Connection) -> None:
    columns = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'creator' AND table_name = ANY ($1::text[])"
        " AND (column_name LIKE '%\\_type' OR column_name LIKE '%status'"
        "      OR column_name IN ('action', 'enforcement_action', 'level', 'severity',"
        "                         'priority', 'category', 'allow_messages_from',"
        "                         'payment_method'))"
        # Free labels, not value lists: an audit row's action and entity (a table name),
        # a notification's related entity.
        " AND (table_name, column_name) NOT IN (('audit_logs', 'action'),"
        "                                       ('audit_logs', 'entity_type'),"
        "                                       ('notifications', 'related_entity_type'))",
        [t for t in TABLES if not t.endswith("_archive")],
    )
    constraints = {
        r["conname"]
        for r in await db.fetch(
            "SELECT conname FROM pg_constraint"
            " WHERE connamespace = 'creator'::regnamespace AND contype = 'c'"
        )
    }
    unchecked = [
        f"{r['table_name']}.{r['column_name']}"
        for r in columns
        if f"{r['table_name']}_{r['column_name']}_valid" not in constraints
    ]
    assert unchecked == []


@pytest.mark.parametrize(("name", "arguments"), FUNCTIONS.items())
async def test_function_exists_in_schema_creator(
    db: asyncpg.Connection, name: str, arguments: str
) -> None:
    found = await db.fetchval(
        "SELECT pg_get_function_identity_arguments(p.oid) FROM pg_proc p"
        " WHERE p.pronamespace = 'creator'::regnamespace AND p.proname = $1",
        name,
    )
    assert found == arguments


@pytest.mark.parametrize(
    "name", ["write_audit_log", "current_user_is_staff", "is_anonymous_tip_payment"]
)
async def test_security_definer_functions_pin_their_search_path(
    db: asyncpg.Connection, name: str
) -> None:
    row = await db.fetchrow(
        "SELECT p.prosecdef, p.proconfig FROM pg_proc p"
        " WHERE p.pronamespace = 'creator'::regnamespace AND p.proname = $1",
        name,
    )
    assert row["prosecdef"] is True
    assert row["proconfig"] == ["search_path=pg_catalog, pg_temp"]


async def test_migration_files_are_numbered_3001_to_3099() -> None:
    names = sorted(p.name for p in SQL_DIR.glob("*.sql"))
    assert names, "no creator migrations"
    assert all(re.fullmatch(r"30\d\d_creator_[a-z_]+\.sql", n) for n in names), names
    assert "3001_creator_schema.sql" in names
