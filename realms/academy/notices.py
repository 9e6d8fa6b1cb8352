"""What the academy realm notifies its users of (issue 14, item 4), through the core's
kernel.notify: the in-app row (gateway.notifications, realm academy) always, push and e-mail
jobs per the user's preferences and reach. Each runs in the caller's transaction, as the
owner (inside `trusted(conn)` in a request, or in a job), and is idempotent by its event key:
a user is told of one event once, however often its cause runs again.

Categories (NOTIFICATION_CATEGORIES in realms/academy/__init__.py) are the notification
types: session_starting_soon, session_started, reply, achievement_unlocked, streak_at_risk,
subscription_past_due."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import asyncpg

from kernel.notify import notify
from realms.academy import REALM

# Registered users hear of a session this long before it starts (the reminder job runs every
# REMINDER_EVERY, so each is told between REMINDER_LEAD - REMINDER_EVERY and REMINDER_LEAD
# before the start).
REMINDER_LEAD = timedelta(minutes=15)
REMINDER_EVERY = timedelta(minutes=5)


def _session_url(session_id: uuid.UUID) -> str:
    return f"/v1/academy/sessions/{session_id}"


async def _registered(conn: asyncpg.Connection, session_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT user_id FROM academy.session_participants"
        " WHERE session_id = $1 AND attendance_status = 'registered'",
        session_id,
    )
    return [r["user_id"] for r in rows]


async def sessions_starting_soon(conn: asyncpg.Connection, now: datetime) -> int:
    """Registered users of every scheduled session starting within REMINDER_LEAD of `now`;
    returns the notifications created."""
    sessions = await conn.fetch(
        "SELECT id, title, scheduled_at FROM academy.live_sessions"
        " WHERE status = 'scheduled' AND scheduled_at > $1 AND scheduled_at <= $1 + $2::interval"
        " ORDER BY scheduled_at, id",
        now,
        REMINDER_LEAD,
    )
    created = 0
    for s in sessions:
        minutes = max(1, round((s["scheduled_at"] - now).total_seconds() / 60))
        created += await notify(
            conn,
            realm=REALM,
            event_key=f"session:{s['id']}:starting_soon",
            recipients=await _registered(conn, s["id"]),
            notification_type="session_starting_soon",
            title=f"Starting in {minutes} minutes: {s['title']}"[:255],
            message="The live session you registered for is about to start.",
            action_url=_session_url(s["id"]),
            related_entity_type="live_session",
            related_entity_id=s["id"],
            priority="high",
        )
    return created


async def session_started(conn: asyncpg.Connection, session_id: uuid.UUID, title: str) -> int:
    """The host went live: its registered users are told to join."""
    return await notify(
        conn,
        realm=REALM,
        event_key=f"session:{session_id}:started",
        recipients=await _registered(conn, session_id),
        notification_type="session_started",
        title=f"Live now: {title}"[:255],
        message="The session has started: join the room.",
        action_url=_session_url(session_id),
        related_entity_type="live_session",
        related_entity_id=session_id,
        priority="high",
    )


async def reply(
    conn: asyncpg.Connection,
    *,
    comment_id: uuid.UUID,
    post_id: uuid.UUID,
    post_title: str,
    excerpt: str,
    author_id: uuid.UUID,
    recipients: Sequence[uuid.UUID | None],
) -> int:
    """A comment replies to a post (its author is told) or to a comment (that comment's
    author too); nobody is told of their own reply."""
    told = [r for r in dict.fromkeys(recipients) if r is not None and r != author_id]
    if not told:
        return 0
    return await notify(
        conn,
        realm=REALM,
        event_key=f"comment:{comment_id}:reply",
        recipients=told,
        notification_type="reply",
        title=f"New reply on “{post_title}”"[:255],
        message=excerpt,
        action_url=f"/v1/academy/posts/{post_id}",
        related_entity_type="community_comment",
        related_entity_id=comment_id,
    )


async def achievement_unlocked(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    achievement_id: uuid.UUID,
    title: str,
    xp_reward: int,
) -> int:
    return await notify(
        conn,
        realm=REALM,
        event_key=f"achievement:{achievement_id}:unlocked",
        recipients=[user_id],
        notification_type="achievement_unlocked",
        title=f"Achievement unlocked: {title}"[:255],
        message=f"+{xp_reward} XP" if xp_reward else "Well done!",
        action_url="/v1/academy/me/achievements",
        related_entity_type="achievement",
        related_entity_id=achievement_id,
    )


async def streaks_at_risk(conn: asyncpg.Connection, today: date) -> int:
    """Users whose streak breaks tonight: active yesterday (UTC) but not yet today."""
    rows = await conn.fetch(
        "SELECT user_id FROM academy.user_streaks"
        " WHERE coalesce(current_streak, 0) > 0 AND last_activity_date = $1",
        today - timedelta(days=1),
    )
    if not rows:
        return 0
    return await notify(
        conn,
        realm=REALM,
        event_key=f"streak:{today.isoformat()}:at_risk",
        recipients=[r["user_id"] for r in rows],
        notification_type="streak_at_risk",
        title="Keep your streak alive",
        message="Complete a lesson before midnight (UTC) to keep your learning streak.",
        action_url="/v1/academy/lessons",
    )


async def subscription_past_due(
    conn: asyncpg.Connection,
    subscription_id: uuid.UUID,
    user_id: uuid.UUID,
    period_end: datetime,
) -> int:
    """A subscription's period ended unpaid (once per subscription and period)."""
    return await notify(
        conn,
        realm=REALM,
        event_key=f"subscription:{subscription_id}:past_due:{period_end.date().isoformat()}",
        recipients=[user_id],
        notification_type="subscription_past_due",
        title="Your subscription payment is past due",
        message="Your subscription period ended without a payment. Renew to keep access.",
        action_url="/v1/academy/subscriptions",
        related_entity_type="user_subscription",
        related_entity_id=subscription_id,
        priority="high",
    )
