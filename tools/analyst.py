"""The analyst realm's demo data and admin accounts (tools/demo.py, tools/admin.py).

Everything here is idempotent: users are found by e-mail before they are created, channels
by their analyst and name, and a channel gets its demo messages only while it has none, so
`make demo` can run again and again (it prints fresh tokens each time)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from kernel import notify

REALM = "analyst"
DEMO_PASSWORD = "switchboard-demo"  # noqa: S105 - the documented password of the demo users


@dataclass(frozen=True)
class DemoUser:
    role: str  # analyst, trader or admin
    name: str
    email: str
    user_id: uuid.UUID
    note: str


@dataclass(frozen=True)
class DemoChannel:
    name: str
    channel: str  # the gateway channel, community:<id>
    note: str


@dataclass
class DemoData:
    realm: str
    password: str
    users: list[DemoUser] = field(default_factory=list)
    channels: list[DemoChannel] = field(default_factory=list)


async def user_by_email(conn: asyncpg.Connection, email: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, user_type FROM analyst.users WHERE lower(email) = lower($1)"
        " AND deleted_at IS NULL",
        email,
    )
    return row


async def ensure_user(
    conn: asyncpg.Connection, *, email: str, user_type: str, password_hash: str
) -> uuid.UUID:
    """The live user with this e-mail (as it is), else a new one with this password."""
    row = await user_by_email(conn, email)
    if row is not None:
        user_id: uuid.UUID = row["id"]
        return user_id
    created: uuid.UUID = await conn.fetchval(
        "INSERT INTO analyst.users (email, password_hash, user_type) VALUES ($1, $2, $3)"
        " RETURNING id",
        email,
        password_hash,
        user_type,
    )
    return created


async def create_admin(
    conn: asyncpg.Connection, *, email: str, password_hash: str
) -> tuple[uuid.UUID, str]:
    """An admin with this e-mail: `created` (with this password), `promoted` (a trader made
    admin; their password is unchanged) or `unchanged` (already an admin). An analyst is not
    promoted (their channels and tiers would be orphaned): ValueError."""
    async with conn.transaction():
        row = await user_by_email(conn, email)
        if row is None:
            return await ensure_user(
                conn, email=email, user_type="admin", password_hash=password_hash
            ), "created"
        if row["user_type"] == "admin":
            return row["id"], "unchanged"
        if row["user_type"] == "analyst":
            raise ValueError(f"{email} is an analyst; use another e-mail for the admin")
        await conn.execute("UPDATE analyst.users SET user_type = 'admin' WHERE id = $1", row["id"])
        return row["id"], "promoted"


async def _ensure_channel(
    conn: asyncpg.Connection, analyst: uuid.UUID, name: str, **fields: object
) -> uuid.UUID:
    found: uuid.UUID | None = await conn.fetchval(
        "SELECT id FROM analyst.chat_channels WHERE analyst_id = $1 AND channel_name = $2"
        " AND deleted_at IS NULL",
        analyst,
        name,
    )
    if found is not None:
        return found
    values = {"analyst_id": analyst, "channel_name": name, **fields}
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    created: uuid.UUID = await conn.fetchval(
        f"INSERT INTO analyst.chat_channels ({columns}) VALUES ({params}) RETURNING id",
        *values.values(),
    )
    return created


async def _ensure_messages(
    conn: asyncpg.Connection,
    channel: uuid.UUID,
    analyst: uuid.UUID,
    lines: list[tuple[uuid.UUID, str]],
    spacing: timedelta,
) -> None:
    """The demo conversation, oldest first, ending now; only into an empty channel."""
    if await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM analyst.chat_messages WHERE channel_id = $1)", channel
    ):
        return
    for i, (author, text) in enumerate(lines):
        await conn.execute(
            "INSERT INTO analyst.chat_messages (channel_id, user_id, analyst_id, message,"
            " created_at) VALUES ($1, $2, $3, $4, now() - $5::interval)",
            channel,
            author,
            analyst,
            text,
            spacing * (len(lines) - i),
        )


_DESK = [
    ("a", "Good morning! Pre-market: GIFT NIFTY indicates a flat open around 24,350."),
    ("t", "Morning Asha. Any levels for BANKNIFTY today?"),
    ("a", "Support 51,800, resistance 52,600. Range day unless 52,600 breaks on volume."),
    ("u", "Watching IT after the results. INFY looks heavy."),
    ("a", "Agreed, I'd wait for the first 30 minutes before taking any position there."),
    ("t", "Opening bell: flat as expected."),
    ("a", "Metals leading, PSU banks lagging. Breadth slightly positive."),
    ("u", "RELIANCE testing the 2,950 zone again."),
    ("a", "That's the third test this week. A close above 2,960 would be constructive."),
    ("t", "Booked partial profits in HDFCBANK at 1,720."),
    ("a", "Nice. Trail the rest with a stop at cost."),
    ("u", "Closing note, please?"),
]
_PRO = [
    ("a", "Welcome to the Pro Room: positional ideas with entries, targets and stops."),
    ("a", "Idea: TATASTEEL above 168, target 182, stop 161. Size small, results next week."),
    ("t", "Entered at 168.5. Thanks!"),
    ("a", "Update: TATASTEEL at 175, move the stop to 168 (cost)."),
    ("t", "Done. Holding for the target."),
]


async def seed_demo(conn: asyncpg.Connection, *, password_hash: str) -> DemoData:
    """An approved analyst with a Pro tier (chat access), an open community channel and a
    premium one for Pro subscribers, both with history; a trader subscribed to Pro, another
    without a subscription, an admin; a welcome notification for the traders."""
    data = DemoData(realm=REALM, password=DEMO_PASSWORD)
    async with conn.transaction():
        analyst = await ensure_user(
            conn, email="asha.rao@example.com", user_type="analyst", password_hash=password_hash
        )
        await conn.execute(
            "INSERT INTO analyst.analyst_profiles (user_id, display_name, bio, specializations,"
            " languages, verification_status, verified_at) VALUES ($1, 'Asha Rao',"
            " 'Index options and positional equity ideas.', ARRAY['options', 'equity'],"
            " ARRAY['en', 'hi'], 'approved', now()) ON CONFLICT (user_id) DO NOTHING",
            analyst,
        )
        trader = await ensure_user(
            conn, email="tom.trader@example.com", user_type="trader", password_hash=password_hash
        )
        other = await ensure_user(
            conn, email="tara.trader@example.com", user_type="trader", password_hash=password_hash
        )
        admin = await ensure_user(
            conn, email="ada.admin@example.com", user_type="admin", password_hash=password_hash
        )
        tier: uuid.UUID | None = await conn.fetchval(
            "SELECT id FROM analyst.subscription_tiers WHERE analyst_id = $1 AND tier_name = 'Pro'"
            " AND deleted_at IS NULL",
            analyst,
        )
        if tier is None:
            tier = await conn.fetchval(
                "INSERT INTO analyst.subscription_tiers (analyst_id, tier_name, tier_description,"
                " tier_order, price_monthly, price_yearly, chat_access) VALUES ($1, 'Pro',"
                " 'Daily ideas and the Pro Room chat', 1, 99900, 999000, true) RETURNING id",
                analyst,
            )
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM analyst.subscriptions WHERE user_id = $1"
            " AND tier_id = $2 AND status = 'active' AND expires_at > now())",
            trader,
            tier,
        ):
            await conn.execute(
                "INSERT INTO analyst.subscriptions (user_id, analyst_id, tier_id, status,"
                " billing_cycle, start_date, expires_at) VALUES ($1, $2, $3, 'active', 'monthly',"
                " now(), now() + interval '30 days')",
                trader,
                analyst,
                tier,
            )
        desk = await _ensure_channel(
            conn,
            analyst,
            "Market Desk",
            channel_type="community",
            channel_description="Open to everyone: the day's levels and chatter",
            require_subscription=False,
            message_rate_limit=30,
        )
        pro = await _ensure_channel(
            conn,
            analyst,
            "Pro Room",
            channel_type="premium",
            channel_description="Positional ideas for Pro subscribers",
            require_subscription=True,
            minimum_tier_required=tier,
            message_rate_limit=30,
        )
        authors = {"a": analyst, "t": trader, "u": other}
        desk_lines = [
            (authors[who], f"{text} (day {day})") for day in (1, 2, 3) for who, text in _DESK
        ]
        await _ensure_messages(conn, desk, analyst, desk_lines, timedelta(minutes=20))
        pro_lines = [(authors[who], text) for who, text in _PRO]
        await _ensure_messages(conn, pro, analyst, pro_lines, timedelta(hours=2))
        await notify.notify(
            conn,
            event_key="demo:welcome",
            recipients=[trader, other],
            notification_type="welcome",
            title="Welcome to Switchboard",
            message="Asha Rao's Market Desk is open to everyone; the Pro Room needs the Pro tier.",
            send_email=False,
            send_push=False,
        )
    # As they are now: a demo user may have been changed since (made an admin, say).
    roles = dict(
        await conn.fetch(
            "SELECT id, user_type FROM analyst.users WHERE id = ANY($1::uuid[])",
            [analyst, trader, other, admin],
        )
    )
    data.users = [
        DemoUser(roles[analyst], "Asha Rao", "asha.rao@example.com", analyst, "owns both channels"),
        DemoUser(roles[trader], "Tom", "tom.trader@example.com", trader, "subscribed to Pro"),
        DemoUser(roles[other], "Tara", "tara.trader@example.com", other, "no subscription"),
        DemoUser(roles[admin], "Ada", "ada.admin@example.com", admin, "staff: joins every channel"),
    ]
    data.channels = [
        DemoChannel("Market Desk", f"community:{desk}", "open to every user"),
        DemoChannel("Pro Room", f"community:{pro}", "premium: Pro subscribers, analyst, admins"),
    ]
    return data
