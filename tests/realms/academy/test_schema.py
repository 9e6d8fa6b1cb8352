"""realms/academy/sql: the catalogue matches seed 001 — tables, every column with its type,
nullability and default, the enums, the extensions and every documented index.

COLUMNS is the seed's CREATE TABLE text transcribed column by column, in the seed's order:
`name type [NN] [= default]` (NN: NOT NULL or primary key; default as Postgres prints it).
"""

from __future__ import annotations

import asyncpg
import pytest

TYPES = {
    "ts": "timestamp with time zone",
    "varchar(3)": "character varying(3)",
    "varchar(10)": "character varying(10)",
    "varchar(20)": "character varying(20)",
    "varchar(50)": "character varying(50)",
    "varchar(100)": "character varying(100)",
}
NOW = "= now()"

COLUMNS: dict[str, list[str]] = {
    "users": [
        "id uuid NN = gen_random_uuid()",
        "email citext NN",
        "encrypted_password text",
        "email_confirmed_at ts",
        "invited_at ts",
        "confirmation_token text",
        "confirmation_sent_at ts",
        "recovery_token text",
        "recovery_sent_at ts",
        "email_change_token_new text",
        "email_change text",
        "email_change_sent_at ts",
        "last_sign_in_at ts",
        "raw_app_meta_data jsonb",
        "raw_user_meta_data jsonb",
        "is_super_admin boolean",
        f"created_at ts {NOW}",
        f"updated_at ts {NOW}",
        "phone text",  # DEFAULT NULL: Postgres stores no default
        "phone_confirmed_at ts",
        "phone_change text = ''::text",
        "phone_change_token text = ''::text",
        "phone_change_sent_at ts",
        "email_change_token_current text = ''::text",
        "email_change_confirm_status smallint = 0",
        "banned_until ts",
        "reauthentication_token text = ''::text",
        "reauthentication_sent_at ts",
        "is_sso_user boolean = false",
        "deleted_at ts",
        "is_anonymous boolean = false",
    ],
    "user_profiles": [
        "id uuid NN",
        "full_name text",
        "avatar_url text",
        "bio text",
        "timezone text = 'UTC'::text",
        "preferred_language text = 'en'::text",
        "trading_experience text = 'beginner'::text",
        "trading_goals text[]",
        "current_level integer = 1",
        "total_xp integer = 0",
        f"created_at ts {NOW}",
        f"updated_at ts {NOW}",
    ],
    "user_progress": [
        "id uuid NN = gen_random_uuid()",
        "user_id uuid NN",
        "level_id integer NN",
        "gate_id integer NN",
        "lesson_id uuid",
        "completed boolean = false",
        "score integer",
        "xp_earned integer = 0",
        "time_spent interval",
        "attempts_count integer = 1",
        f"last_attempt_at ts {NOW}",
        "completed_at ts",
        f"created_at ts {NOW}",
        f"updated_at ts {NOW}",
    ],
    "lessons": [
        "id uuid NN = gen_random_uuid()",
        "level_id integer NN",
        "gate_id integer NN",
        "title text NN",
        "subtitle text",
        "description text",
        "content_type text = 'interactive'::text",
        "content_data jsonb NN",
        "assessment_data jsonb",
        "xp_reward integer = 0",
        "estimated_time interval",
        "difficulty text = 'intermediate'::text",
        "prerequisites uuid[]",
        "is_active boolean = true",
        "order_index integer = 0",
        "created_by uuid",
        f"created_at ts {NOW}",
        f"updated_at ts {NOW}",
    ],
    "achievements": [
        "id uuid NN = gen_random_uuid()",
        "code varchar(100) NN",
        "title text NN",
        "description text NN",
        "icon_url text",
        "category text = 'general'::text",
        "xp_reward integer = 0",
        "requirements jsonb",
        "rarity text = 'common'::text",
        "is_active boolean = true",
        f"created_at ts {NOW}",
    ],
    "user_achievements": [
        "id uuid NN = gen_random_uuid()",
        "user_id uuid NN",
        "achievement_id uuid NN",
        f"unlocked_at ts {NOW}",
        "progress_value integer = 100",
        "metadata jsonb",
    ],
    "leaderboard": [
        "id uuid NN = gen_random_uuid()",
        "user_id uuid NN",
        "period varchar(20) NN",
        "xp_points integer = 0",
        "lessons_completed integer = 0",
        "streak_days integer = 0",
        "rank integer",
        "percentile numeric(5,2)",
        "period_start_date date NN",
        "period_end_date date NN",
        f"updated_at ts {NOW}",
    ],
    "user_streaks": [
        "id uuid NN = gen_random_uuid()",
        "user_id uuid NN",
        "current_streak integer = 0",
        "longest_streak integer = 0",
        "last_activity_date date",
        "last_streak_reset ts",
        "streak_streak_data jsonb",
        f"created_at ts {NOW}",
        f"updated_at ts {NOW}",
    ],
    "user_activity_log": [
        "id uuid NN = gen_random_uuid()",
        "user_id uuid NN",
        "activity_type varchar(50) NN",
        "entity_type varchar(50)",
        "entity_id uuid",
        "metadata jsonb",
        "session_id uuid",
        "ip_address inet",
        "user_agent text",
        f"created_at ts {NOW}",
    ],
    "community_posts": [
        "id uuid NN = gen_random_uuid()",
        "author_id uuid NN",
        "title text NN",
        "content text",
        "post_type varchar(20) = 'discussion'::character varying",
        "category text",
        "tags text[]",
        "is_pinned boolean = false",
        "is_locked boolean = false",
        "upvotes_count integer = 0",
        "downvotes_count integer = 0",
        "comments_count integer = 0",
        "views_count integer = 0",
        f"last_activity_at ts {NOW}",
        "metadata jsonb",
        f"created_at ts {NOW}",
        f"updated_at ts {NOW}",
    ],
    "community_comments": [
        "id uuid NN = gen_random_uuid()",
        "post_id uuid NN",
        "author_id uuid NN",
        "parent_comment_id uuid",
        "content text NN",
        "upvotes_count integer = 0",
        "downvotes_count integer = 0",
        "is_deleted boolean = false",
        f"created_at ts {NOW}",
        f"updated_at ts {NOW}",
    ],
    "community_votes": [
        "id uuid NN = gen_random_uuid()",
        "user_id uuid NN",
        "target_type varchar(20) NN",
        "target_id uuid NN",
        "vote_type varchar(10) NN",
        f"created_at ts {NOW}",
    ],
    "live_sessions": [
        "id uuid NN = gen_random_uuid()",
        "title text NN",
        "description text",
        "host_id uuid NN",
        "session_type varchar(20) = 'workshop'::character varying",
        "scheduled_at ts NN",
        "duration interval NN",
        "max_participants integer",
        "current_participants integer = 0",
        "meeting_url text",
        "recording_url text",
        "is_recorded boolean = false",
        "status varchar(20) = 'scheduled'::character varying",
        "prerequisites jsonb",
        "tags text[]",
        "metadata jsonb",
        f"created_at ts {NOW}",
        f"updated_at ts {NOW}",
    ],
    "session_participants": [
        "id uuid NN = gen_random_uuid()",
        "session_id uuid NN",
        "user_id uuid NN",
        "joined_at ts",
        "left_at ts",
        "attendance_status varchar(20) = 'registered'::character varying",
        "feedback_rating integer",
        "feedback_text text",
        f"created_at ts {NOW}",
    ],
    "subscription_plans": [
        "id uuid NN = gen_random_uuid()",
        "name text NN",
        "description text",
        "plan_type varchar(20) = 'monthly'::character varying",
        "price numeric(10,2) NN",
        "currency varchar(3) = 'USD'::character varying",
        "stripe_price_id text",
        "features jsonb NN",
        "is_active boolean = true",
        "trial_days integer = 0",
        "max_users integer",
        "level_access_limit integer = 99",
        f"created_at ts {NOW}",
        f"updated_at ts {NOW}",
    ],
    "user_subscriptions": [
        "id uuid NN = gen_random_uuid()",
        "user_id uuid NN",
        "plan_id uuid NN",
        "stripe_subscription_id text",
        "status varchar(20) = 'active'::character varying",
        "current_period_start ts",
        "current_period_end ts",
        "trial_end ts",
        "cancel_at_period_end boolean = false",
        f"created_at ts {NOW}",
        f"updated_at ts {NOW}",
    ],
}


def parse_column(spec: str) -> tuple[str, str, bool, str | None]:
    """'name type [NN] [= default]' -> (name, Postgres type name, not null, default)."""
    left, _, default = spec.partition(" = ")
    words = left.split()
    not_null = words[-1] == "NN"
    if not_null:
        words.pop()
    name, typ = words[0], " ".join(words[1:])
    return name, TYPES.get(typ, typ), not_null, default or None


async def test_academy_schema_has_exactly_the_documented_tables(db: asyncpg.Connection) -> None:
    tables = await db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'academy' ORDER BY tablename"
    )
    # Beyond the seed: the live-session rooms' chat, seq counter and removals (sql 1004).
    live_rooms = {"session_messages", "session_rooms", "session_removals"}
    assert {r["tablename"] for r in tables} == set(COLUMNS) | live_rooms


@pytest.mark.parametrize("table", sorted(COLUMNS))
async def test_table_has_the_documented_columns_types_nullability_and_defaults(
    db: asyncpg.Connection, table: str
) -> None:
    rows = await db.fetch(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,"
        "       pg_get_expr(d.adbin, d.adrelid) AS dflt"
        "  FROM pg_attribute a"
        "  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        f"academy.{table}",
    )
    actual = [(r["attname"], r["type"], r["attnotnull"], r["dflt"]) for r in rows]
    assert actual == [parse_column(spec) for spec in COLUMNS[table]]


@pytest.mark.parametrize("table", sorted(COLUMNS))
async def test_table_primary_key_is_id(db: asyncpg.Connection, table: str) -> None:
    pk = await db.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = $1::regclass AND contype = 'p'",
        f"academy.{table}",
    )
    assert pk == "PRIMARY KEY (id)"


@pytest.mark.parametrize(
    ("enum", "labels"),
    [
        (
            "activity_type",
            ["login", "lesson_complete", "achievement_gain", "post_create", "session_join"],
        ),
        ("subscription_status", ["active", "past_due", "canceled", "unpaid", "trialing"]),
    ],
)
async def test_enum_has_the_documented_labels_in_order(
    db: asyncpg.Connection, enum: str, labels: list[str]
) -> None:
    actual = await db.fetchval(f"SELECT enum_range(NULL::academy.{enum})::text[]")
    assert actual == labels


async def test_documented_extensions_are_installed(db: asyncpg.Connection) -> None:
    names = await db.fetch("SELECT extname FROM pg_extension")
    assert {"pgcrypto", "uuid-ossp", "citext"} <= {r["extname"] for r in names}


async def test_academy_objects_are_not_in_the_public_schema(db: asyncpg.Connection) -> None:
    """Nothing of this realm (tables, views, functions) lands in `public`."""
    names = {
        "user_progress", "user_streaks", "session_participants", "user_learning_stats",
        "lesson_popularity", "calculate_user_level", "update_leaderboard",
    }  # fmt: skip
    found = await db.fetch(
        "SELECT relname AS name FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " UNION ALL SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        " UNION ALL SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace"
    )
    assert names.isdisjoint({r["name"] for r in found})


# -- indexes ----------------------------------------------------------------------------------

# (name, "<table> USING btree (...) [WHERE ...]") as pg_indexes prints the definition.
DOCUMENTED_INDEXES = [
    ("idx_user_progress_user", "user_progress USING btree (user_id)"),
    ("idx_user_progress_level", "user_progress USING btree (level_id, gate_id)"),
    (
        "idx_user_progress_completed",
        "user_progress USING btree (completed) WHERE (completed = false)",
    ),
    ("idx_lessons_active", "lessons USING btree (is_active) WHERE (is_active = true)"),
    ("idx_lessons_level_order", "lessons USING btree (level_id, gate_id, order_index)"),
    ("idx_lessons_content_type", "lessons USING btree (content_type)"),
    ("idx_user_achievements_user", "user_achievements USING btree (user_id)"),
    ("idx_user_achievements_unlocked", "user_achievements USING btree (unlocked_at DESC)"),
    ("idx_leaderboard_period_rank", "leaderboard USING btree (period, period_start_date, rank)"),
    (
        "idx_leaderboard_user_period",
        "leaderboard USING btree (user_id, period, period_end_date DESC)",
    ),
    ("idx_user_streaks_user", "user_streaks USING btree (user_id)"),
    ("idx_user_streaks_reset", "user_streaks USING btree (last_streak_reset)"),
    ("idx_activity_log_user_time", "user_activity_log USING btree (user_id, created_at DESC)"),
    ("idx_activity_log_type", "user_activity_log USING btree (activity_type)"),
    ("idx_activity_log_session", "user_activity_log USING btree (session_id)"),
    ("idx_posts_author", "community_posts USING btree (author_id)"),
    ("idx_posts_category", "community_posts USING btree (category)"),
    ("idx_posts_pinned", "community_posts USING btree (is_pinned) WHERE (is_pinned = true)"),
    ("idx_posts_activity", "community_posts USING btree (last_activity_at DESC)"),
    ("idx_comments_post", "community_comments USING btree (post_id)"),
    ("idx_comments_author", "community_comments USING btree (author_id)"),
    ("idx_votes_target", "community_votes USING btree (target_type, target_id)"),
    ("idx_sessions_host", "live_sessions USING btree (host_id)"),
    ("idx_sessions_scheduled", "live_sessions USING btree (scheduled_at)"),
    ("idx_sessions_status", "live_sessions USING btree (status)"),
    ("idx_session_participants_session", "session_participants USING btree (session_id)"),
    (
        "idx_subscription_plans_active",
        "subscription_plans USING btree (is_active) WHERE (is_active = true)",
    ),
    ("idx_user_subscriptions_user", "user_subscriptions USING btree (user_id)"),
    ("idx_user_subscriptions_status", "user_subscriptions USING btree (status)"),
]


@pytest.mark.parametrize(("name", "definition"), DOCUMENTED_INDEXES)
async def test_documented_index_exists_with_its_definition(
    db: asyncpg.Connection, name: str, definition: str
) -> None:
    indexdef = await db.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'academy' AND indexname = $1", name
    )
    assert indexdef == f"CREATE INDEX {name} ON academy.{definition}"


async def test_every_foreign_key_column_leads_an_index(db: asyncpg.Connection) -> None:
    """Deletes of a parent (cascades, RESTRICT/NO ACTION checks) never scan the child."""
    unindexed = await db.fetch(
        "SELECT c.conrelid::regclass::text AS tbl, a.attname AS col"
        "  FROM pg_constraint c"
        "  CROSS JOIN LATERAL unnest(c.conkey) AS k(attnum)"
        "  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum"
        " WHERE c.contype = 'f' AND c.connamespace = 'academy'::regnamespace"
        "   AND NOT EXISTS (SELECT 1 FROM pg_index i"
        "                    WHERE i.indrelid = c.conrelid AND i.indkey[0] = k.attnum)"
    )
    assert [(r["tbl"], r["col"]) for r in unindexed] == []
