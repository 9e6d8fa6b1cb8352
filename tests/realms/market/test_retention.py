"""Retention (4014): stories stop being active when they expire and are hard-deleted 90 days
later, analytics events after 1 year, audit logs after 2 years; archival candidates are
completed orders older than 2 years and users inactive for 3 years. Every function takes the
"as of" moment, so time is moved by argument, never by sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.realms.market.world import World

S = timedelta(seconds=1)


async def now(w: World) -> datetime:
    value: datetime = await w.db.fetchval("SELECT now()")
    return value


async def test_expired_stories_stop_being_active(txworld: World) -> None:
    t = await now(txworld)
    expired = await txworld.story(created_at=t - timedelta(hours=25), expires_at=t - S)
    live = await txworld.story()
    assert await txworld.db.fetchval("SELECT market.deactivate_expired_stories()") == 1
    assert await txworld.value("stories", "is_active", expired) is False
    assert await txworld.value("stories", "is_active", live) is True
    assert await txworld.db.fetchval("SELECT market.deactivate_expired_stories()") == 0


async def test_stories_are_purged_90_days_after_they_expire(txworld: World) -> None:
    t = await now(txworld)
    story = await txworld.story(created_at=t - timedelta(hours=24), expires_at=t)
    await txworld.story_view(story)
    purge = "SELECT market.purge_expired_stories($1)"
    assert await txworld.db.fetchval(purge, t + timedelta(days=90)) == 0
    assert await txworld.exists("stories", story)
    assert await txworld.db.fetchval(purge, t + timedelta(days=90) + S) == 1
    assert not await txworld.exists("stories", story)
    assert (
        await txworld.db.fetchval(
            "SELECT count(*) FROM market.story_views WHERE story_id = $1", story
        )
        == 0
    )


@pytest.mark.parametrize(
    ("table", "function", "age"),
    [
        ("analytics_events", "purge_old_analytics_events", "1 year"),
        ("audit_logs", "purge_old_audit_logs", "2 years"),
    ],
)
async def test_old_rows_are_purged_after_their_retention(
    txworld: World, table: str, function: str, age: str
) -> None:
    t = await now(txworld)
    cutoff = await txworld.db.fetchval(f"SELECT $1::timestamptz - interval '{age}'", t)
    old = await txworld.make(table, created_at=cutoff - S)
    kept = await txworld.make(table, created_at=cutoff)
    assert await txworld.db.fetchval(f"SELECT market.{function}($1)", t) == 1
    assert not await txworld.exists(table, old)
    assert await txworld.exists(table, kept)


async def test_apply_retention_runs_every_purge_and_reports_counts(txworld: World) -> None:
    t = await now(txworld)
    await txworld.story(created_at=t - timedelta(days=100), expires_at=t - timedelta(days=99))
    await txworld.analytics_event(created_at=t - timedelta(days=400))
    await txworld.analytics_event(created_at=t - timedelta(days=400))
    await txworld.audit_log(created_at=t - timedelta(days=800))
    rows = await txworld.db.fetch("SELECT policy, deleted FROM market.apply_retention($1)", t)
    assert {r["policy"]: r["deleted"] for r in rows} == {
        "expired_stories": 1,
        "analytics_events": 2,
        "audit_logs": 1,
    }


async def test_completed_orders_are_archival_candidates_after_2_years(txworld: World) -> None:
    delivered = await txworld.order(status="in_transit")
    await txworld.db.execute("UPDATE market.orders SET status = 'delivered' WHERE id = $1",
                             delivered)  # fmt: skip
    cancelled = await txworld.order(status="cancelled")
    pending = await txworld.order()
    due = "SELECT array_agg(x) FROM market.orders_due_for_archival($1) x"
    t = await now(txworld)
    assert await txworld.db.fetchval(due, t + timedelta(days=730)) is None
    later = await txworld.db.fetchval("SELECT $1::timestamptz + interval '2 years 1 second'", t)
    assert sorted(await txworld.db.fetchval(due, later)) == sorted([delivered, cancelled])
    assert pending not in await txworld.db.fetchval(due, later)


async def test_users_inactive_for_3_years_are_archival_candidates(txworld: World) -> None:
    t = await now(txworld)
    three_years = await txworld.db.fetchval("SELECT $1::timestamptz - interval '3 years'", t)
    gone = await txworld.buyer(last_login_at=three_years - S)
    never = await txworld.buyer(created_at=three_years - timedelta(days=30))
    recent = await txworld.buyer(last_login_at=three_years)
    due = await txworld.db.fetchval(
        "SELECT array_agg(x) FROM market.users_due_for_archival($1) x", t
    )
    assert gone in due and never in due
    assert recent not in due
