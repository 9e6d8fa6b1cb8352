"""The academy realm's demo data (`make demo`, tools/demo.py): a host, two learners and an
admin, a small course of lessons, a live session in progress with its chat, a session
scheduled for tomorrow, and a community thread. Idempotent: users are found by e-mail,
lessons by (level_id, gate_id), sessions by host and title, posts by author and title, and a
room gets its chat only while it has none, so the demo can be seeded again and again."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import NamedTuple

import asyncpg

from realms.academy.progress import complete_lesson
from realms.academy.rls import API_ROLE

REALM = "academy"


class DemoUser(NamedTuple):
    role: str  # host, learner or admin
    name: str
    email: str
    user_id: uuid.UUID
    note: str


class DemoChannel(NamedTuple):
    name: str
    channel: str
    note: str


class DemoSeed(NamedTuple):
    users: list[DemoUser]
    channels: list[DemoChannel]
    live_session_id: uuid.UUID
    scheduled_session_id: uuid.UUID


# (level_id, gate_id, title, xp_reward, difficulty)
LESSONS = [
    (1, 1, "What a candlestick tells you", 50, "beginner"),
    (1, 2, "Support and resistance", 50, "beginner"),
    (1, 3, "Volume confirms the move", 75, "beginner"),
    (2, 1, "Position sizing and the 1 % rule", 100, "intermediate"),
    (2, 2, "Stop losses that survive noise", 100, "intermediate"),
    (2, 3, "Reading the order book", 150, "advanced"),
]

_ROOM_CHAT = [
    ("h", "Welcome everyone! Today: reading candlesticks on the daily chart."),
    ("l", "Hi Hana, glad to be here."),
    ("h", "First question: what does a long lower wick at support tell you?"),
    ("m", "Buyers stepped in and rejected the lows?"),
    ("h", "Exactly. Now look for volume to confirm it on the next candle."),
    ("l", "And if the volume is low, we wait?"),
    ("h", "We wait. No confirmation, no trade."),
]


async def _ensure_user(
    conn: asyncpg.Connection, email: str, name: str, password_hash: str, *, admin: bool = False
) -> uuid.UUID:
    """The live account with this e-mail (as it is), else a new confirmed one; its profile and
    streak row either way."""
    user_id: uuid.UUID | None = await conn.fetchval(
        "SELECT id FROM academy.users WHERE email = $1 AND deleted_at IS NULL", email
    )
    if user_id is None:
        user_id = await conn.fetchval(
            "INSERT INTO academy.users (email, encrypted_password, email_confirmed_at,"
            " raw_user_meta_data, is_super_admin) VALUES ($1, $2, now(), $3, $4) RETURNING id",
            email,
            password_hash,
            {"full_name": name},
            admin or None,
        )
    assert user_id is not None
    await conn.execute(
        "INSERT INTO academy.user_profiles (id, full_name) VALUES ($1, $2)"
        " ON CONFLICT (id) DO NOTHING",
        user_id,
        name,
    )
    await conn.execute(
        "INSERT INTO academy.user_streaks (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING",
        user_id,
    )
    return user_id


async def _ensure_lessons(conn: asyncpg.Connection, author: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "INSERT INTO academy.lessons AS l (level_id, gate_id, title, description, content_data,"
        " xp_reward, difficulty, estimated_time, order_index, created_by)"
        " SELECT level_id, gate_id, title, 'Demo lesson: ' || title,"
        "        jsonb_build_object('blocks', jsonb_build_array(jsonb_build_object("
        "            'type', 'text', 'text', title))),"
        "        xp, difficulty, interval '15 minutes', gate_id, $6"
        "   FROM unnest($1::int[], $2::int[], $3::text[], $4::int[], $5::text[])"
        "        AS t (level_id, gate_id, title, xp, difficulty)"
        " ON CONFLICT (level_id, gate_id) DO UPDATE SET level_id = l.level_id"
        " RETURNING id, level_id, gate_id",
        [x[0] for x in LESSONS],
        [x[1] for x in LESSONS],
        [x[2] for x in LESSONS],
        [x[3] for x in LESSONS],
        [x[4] for x in LESSONS],
        author,
    )
    order = {(r["level_id"], r["gate_id"]): r["id"] for r in rows}
    return [order[(x[0], x[1])] for x in LESSONS]


async def _ensure_session(
    conn: asyncpg.Connection,
    host: uuid.UUID,
    title: str,
    *,
    status: str,
    starts_in: timedelta,
    max_participants: int | None,
) -> uuid.UUID:
    found: uuid.UUID | None = await conn.fetchval(
        "SELECT id FROM academy.live_sessions WHERE host_id = $1 AND title = $2"
        " ORDER BY created_at DESC LIMIT 1",
        host,
        title,
    )
    if found is not None:
        return found
    created: uuid.UUID = await conn.fetchval(
        "INSERT INTO academy.live_sessions (title, description, host_id, session_type,"
        " scheduled_at, duration, max_participants, status, tags)"
        " VALUES ($1, $2, $3, 'workshop', now() + $4::interval, interval '1 hour', $5, $6,"
        " ARRAY['demo']) RETURNING id",
        title,
        f"Demo session: {title}",
        host,
        starts_in,
        max_participants,
        status,
    )
    return created


async def _register(conn: asyncpg.Connection, session: uuid.UUID, users: list[uuid.UUID]) -> None:
    await conn.execute(
        "INSERT INTO academy.session_participants (session_id, user_id)"
        " SELECT $1, u FROM unnest($2::uuid[]) u ON CONFLICT (session_id, user_id) DO NOTHING",
        session,
        users,
    )


async def _ensure_chat(
    conn: asyncpg.Connection, session: uuid.UUID, lines: list[tuple[uuid.UUID, str]]
) -> None:
    """The room's chat, oldest first and a minute apart, ending now; only into an empty room."""
    if await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM academy.session_rooms WHERE session_id = $1)", session
    ):
        return
    await conn.execute(
        "INSERT INTO academy.session_messages (session_id, seq, user_id, body, created_at)"
        " SELECT $1, n, u, b, now() - ($4 - n) * interval '1 minute'"
        "   FROM unnest($2::uuid[], $3::text[]) WITH ORDINALITY AS m (u, b, n)",
        session,
        [author for author, _ in lines],
        [text for _, text in lines],
        len(lines),
    )
    await conn.execute(
        "INSERT INTO academy.session_rooms (session_id, last_seq) VALUES ($1, $2)",
        session,
        len(lines),
    )


async def _complete_as(
    conn: asyncpg.Connection, user_id: uuid.UUID, lessons: list[uuid.UUID]
) -> None:
    """Complete lessons the way the api does (XP, level, leaderboards, streak, achievements):
    as the user under RLS, inside the caller's transaction. A lesson already completed
    changes nothing."""
    await conn.execute(f"SET LOCAL ROLE {API_ROLE}")
    await conn.execute("SELECT set_config('academy.user_id', $1, true)", str(user_id))
    for lesson in lessons:
        await complete_lesson(conn, user_id, lesson, score=90, time_spent_s=600)
    await conn.execute("RESET ROLE")
    await conn.execute("SELECT set_config('academy.user_id', '', true)")


async def _ensure_post(
    conn: asyncpg.Connection, author: uuid.UUID, title: str, content: str
) -> uuid.UUID:
    found: uuid.UUID | None = await conn.fetchval(
        "SELECT id FROM academy.community_posts WHERE author_id = $1 AND title = $2 LIMIT 1",
        author,
        title,
    )
    if found is not None:
        return found
    created: uuid.UUID = await conn.fetchval(
        "INSERT INTO academy.community_posts (author_id, title, content, post_type, category)"
        " VALUES ($1, $2, $3, 'question', 'technical-analysis') RETURNING id",
        author,
        title,
        content,
    )
    return created


async def seed_demo(conn: asyncpg.Connection, *, password_hash: str) -> DemoSeed:
    """Seed (or find) the demo data through `conn`, as the owner, in one transaction. Every
    demo user's password is the one `password_hash` was made from."""
    async with conn.transaction():
        host = await _ensure_user(conn, "hana.host@example.com", "Hana Host", password_hash)
        leo = await _ensure_user(conn, "leo.learner@example.com", "Leo", password_hash)
        mia = await _ensure_user(conn, "mia.learner@example.com", "Mia", password_hash)
        admin = await _ensure_user(
            conn, "ada.admin@example.com", "Ada Admin", password_hash, admin=True
        )
        lessons = await _ensure_lessons(conn, admin)
        await _complete_as(conn, leo, lessons[:4])
        await _complete_as(conn, mia, lessons[:1])
        live = await _ensure_session(
            conn,
            host,
            "Reading candlesticks, live",
            status="live",
            starts_in=timedelta(minutes=-10),
            max_participants=50,
        )
        await _register(conn, live, [leo, mia])
        authors = {"h": host, "l": leo, "m": mia}
        await _ensure_chat(conn, live, [(authors[who], text) for who, text in _ROOM_CHAT])
        later = await _ensure_session(
            conn,
            host,
            "Risk management Q&A",
            status="scheduled",
            starts_in=timedelta(days=1),
            max_participants=2,
        )
        await _register(conn, later, [leo])
        post = await _ensure_post(
            conn,
            mia,
            "Is a hammer at support enough to buy?",
            "I keep seeing hammers at support fail. What confirmation do you wait for?",
        )
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM academy.community_comments WHERE post_id = $1)", post
        ):
            await conn.execute(
                "INSERT INTO academy.community_comments (post_id, author_id, content)"
                " VALUES ($1, $2, 'Volume on the next candle, and a close above the hammer.')",
                post,
                host,
            )
            await conn.execute(
                "UPDATE academy.community_posts SET comments_count = 1 WHERE id = $1", post
            )
    users = [
        DemoUser("host", "Hana", "hana.host@example.com", host, "hosts the live session"),
        DemoUser("learner", "Leo", "leo.learner@example.com", leo, "level 2, registered"),
        DemoUser("learner", "Mia", "mia.learner@example.com", mia, "level 1, registered"),
        DemoUser("admin", "Ada", "ada.admin@example.com", admin, "manages lessons and plans"),
    ]
    channels = [
        DemoChannel(
            "Live session",
            f"academy.session:{live}",
            "live now: Hana (host), Leo and Mia may join",
        ),
        DemoChannel("Community", "academy.community:all", "the live feed of posts and votes"),
    ]
    return DemoSeed(users, channels, live, later)
