"""Market chats (seed tables chats, chat_participants, messages, message_reads): who may open
which chat with whom, who may join, admin rights in groups, support staff and assignment,
read positions and exact unread counts. Plain async functions over a connection, used by the
socket namespace and the REST routes alike.

Changes that other users' sockets must hear (a chat opened, members added or removed, a
rename, an assignment) are NOTIFYed on sb_server in the caller's transaction, so they reach
every gateway at commit as `{"op": "event", "kind": "server", "name": ..., "data": ...}`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg
import msgspec

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound

# The admin role that answers support chats (super_admin holds every role). The seed names
# none; technical_access is the platform's operations role.
SUPPORT_ROLE = "technical_access"
MAX_GROUP = 100

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


def chat_channel(chat_id: int) -> str:
    return f"market.chat:{chat_id}"


def user_stream(user_id: int | str) -> str:
    return f"market.user:{user_id}"


@dataclass(frozen=True)
class Admission:
    """A user's place in a chat: `role` is admin or member (participants) or staff (support
    staff let into a support chat)."""

    chat_id: int
    type: str
    role: str


async def tell(conn: Conn, channels: list[str], name: str, data: dict[str, Any]) -> None:
    """Publish a server event to `channels` on every gateway, at the caller's commit."""
    payload = [
        msgspec.json.encode({"op": "publish", "channel": c, "name": name, "data": data}).decode()
        for c in channels
    ]
    if payload:
        await conn.execute("SELECT pg_notify('sb_server', p) FROM unnest($1::text[]) p", payload)


async def is_support_staff(conn: Conn, user_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT u.role = 'admin' AND market.has_admin_role(u.id, $2)"
            "  FROM market.users u WHERE u.id = $1",
            user_id,
            SUPPORT_ROLE,
        )
    )


async def _active_users(conn: Conn, ids: list[int]) -> dict[int, str]:
    """role by id of the active, live users among `ids`; NotFound names the first other."""
    rows = await conn.fetch(
        "SELECT id, role::text AS role FROM market.users"
        " WHERE id = ANY ($1::bigint[]) AND status = 'active' AND deleted_at IS NULL",
        ids,
    )
    roles = {r["id"]: r["role"] for r in rows}
    for user in ids:
        if user not in roles:
            raise NotFound(f"user {user} does not exist or is not active")
    return roles


async def admit(conn: Conn, chat_id: int, user_id: int, *, enter: bool = True) -> Admission:
    """The user's admission to the chat: a participant, or support staff (who then become its
    participant with role admin, unless `enter` is false: looking is not answering).
    Forbidden for anyone else; NotFound for no such chat."""
    row = await conn.fetchrow(
        "SELECT c.type::text AS type, p.role::text AS role FROM market.chats c"
        " LEFT JOIN market.chat_participants p ON p.chat_id = c.id AND p.user_id = $2"
        " WHERE c.id = $1",
        chat_id,
        user_id,
    )
    if row is None:
        raise NotFound(f"chat {chat_id} does not exist")
    if row["role"] is not None:
        staff = row["type"] == "support" and row["role"] == "admin"
        return Admission(chat_id, row["type"], "staff" if staff else row["role"])
    if row["type"] == "support" and await is_support_staff(conn, user_id):
        if not enter:
            return Admission(chat_id, "support", "staff")
        await conn.execute(
            "INSERT INTO market.chat_participants (chat_id, user_id, role)"
            " VALUES ($1, $2, 'admin') ON CONFLICT (chat_id, user_id) DO NOTHING",
            chat_id,
            user_id,
        )
        return Admission(chat_id, "support", "staff")
    raise Forbidden("only the chat's participants may join it")


# --- opening chats ------------------------------------------------------------------------


async def _check_subject(
    conn: Conn, pair: tuple[int, int], product_id: int | None, order_id: int | None
) -> None:
    if product_id is not None:
        seller = await conn.fetchval(
            "SELECT seller_id FROM market.products WHERE id = $1 AND deleted_at IS NULL",
            product_id,
        )
        if seller is None:
            raise NotFound(f"product {product_id} does not exist")
        if seller not in pair:
            raise BadRequest("a chat about a product is with the product's seller")
    if order_id is not None:
        parties = await conn.fetchrow(
            "SELECT buyer_id, seller_id, courier_id FROM market.orders"
            " WHERE id = $1 AND deleted_at IS NULL",
            order_id,
        )
        if parties is None:
            raise NotFound(f"order {order_id} does not exist")
        if not set(pair) <= {parties["buyer_id"], parties["seller_id"], parties["courier_id"]}:
            raise BadRequest("a chat about an order is between the order's parties")


async def open_direct(
    conn: asyncpg.Connection,
    me: int,
    peer: int,
    product_id: int | None = None,
    order_id: int | None = None,
) -> tuple[int, bool]:
    """(chat id, created): the pair's one direct chat, opened if it does not exist. One of the
    two is a seller (buyer<->seller is the seed's case). A subject, when given, becomes what
    the chat is about."""
    if peer == me:
        raise BadRequest("a direct chat is with someone else")
    roles = await _active_users(conn, [me, peer])
    if "seller" not in roles.values():
        raise Forbidden("direct chats are with a seller")
    if "admin" in roles.values():
        raise Forbidden("admins answer support chats, not direct ones")
    await _check_subject(conn, (me, peer), product_id, order_id)
    for _attempt in range(2):
        existing = await conn.fetchval(
            "SELECT c.id FROM market.chats c"
            "  JOIN market.chat_participants a ON a.chat_id = c.id AND a.user_id = $1"
            "  JOIN market.chat_participants b ON b.chat_id = c.id AND b.user_id = $2"
            " WHERE c.type = 'direct'",
            me,
            peer,
        )
        if existing is not None:
            if product_id is not None or order_id is not None:
                await conn.execute(
                    "UPDATE market.chats SET product_id = coalesce($2, product_id),"
                    " order_id = coalesce($3, order_id) WHERE id = $1",
                    existing,
                    product_id,
                    order_id,
                )
            return existing, False
        try:
            async with conn.transaction():
                chat_id = await conn.fetchval(
                    "INSERT INTO market.chats (type, created_by, product_id, order_id)"
                    " VALUES ('direct', $1, $2, $3) RETURNING id",
                    me,
                    product_id,
                    order_id,
                )
                await conn.execute(
                    "INSERT INTO market.chat_participants (chat_id, user_id)"
                    " VALUES ($1, $2), ($1, $3)",
                    chat_id,
                    me,
                    peer,
                )
                await _tell_added(conn, chat_id, "direct", {me: "member", peer: "member"}, me)
        except asyncpg.UniqueViolationError:  # chats_one_direct_per_pair: opened meanwhile
            continue
        return chat_id, True
    raise Conflict("the direct chat is being opened; retry")


async def open_group(conn: asyncpg.Connection, me: int, members: list[int], name: str) -> int:
    """A group named `name` of the creator (its admin) and `members`."""
    others = list(dict.fromkeys(m for m in members if m != me))
    if not others:
        raise BadRequest("a group needs at least one member besides you")
    if len(others) >= MAX_GROUP:
        raise BadRequest(f"a group has at most {MAX_GROUP} members")
    if not name.strip():
        raise BadRequest("a group needs a name")
    await _active_users(conn, [me, *others])
    async with conn.transaction():
        chat_id: int = await conn.fetchval(
            "INSERT INTO market.chats (type, name, created_by) VALUES ('group', $1, $2)"
            " RETURNING id",
            name.strip(),
            me,
        )
        roles = {me: "admin", **{m: "member" for m in others}}
        await conn.execute(
            "INSERT INTO market.chat_participants (chat_id, user_id, role)"
            " SELECT $1, u, r::market.chat_role_enum"
            "   FROM unnest($2::bigint[], $3::text[]) AS x(u, r)",
            chat_id,
            list(roles),
            list(roles.values()),
        )
        await _tell_added(conn, chat_id, "group", roles, me)
    return chat_id


async def open_support(conn: asyncpg.Connection, me: int, name: str | None) -> int:
    """A support chat of the user; support staff join it from the queue."""
    await _active_users(conn, [me])
    async with conn.transaction():
        chat_id: int = await conn.fetchval(
            "INSERT INTO market.chats (type, name, created_by) VALUES ('support', $1, $2)"
            " RETURNING id",
            name.strip() if name else None,
            me,
        )
        await conn.execute(
            "INSERT INTO market.chat_participants (chat_id, user_id) VALUES ($1, $2)", chat_id, me
        )
        await _tell_added(conn, chat_id, "support", {me: "member"}, me)
    return chat_id


async def _tell_added(conn: Conn, chat_id: int, type_: str, roles: dict[int, str], by: int) -> None:
    channel = chat_channel(chat_id)
    for user, role in roles.items():
        await tell(
            conn,
            [user_stream(user)],
            "chat_added",
            {"chat": channel, "chat_id": chat_id, "type": type_, "role": role, "by": str(by)},
        )


# --- managing groups ------------------------------------------------------------------------


async def _require_group_admin(conn: Conn, chat_id: int, me: int) -> None:
    row = await conn.fetchrow(
        "SELECT c.type::text AS type, p.role::text AS role FROM market.chats c"
        " LEFT JOIN market.chat_participants p ON p.chat_id = c.id AND p.user_id = $2"
        " WHERE c.id = $1",
        chat_id,
        me,
    )
    if row is None:
        raise NotFound(f"chat {chat_id} does not exist")
    if row["role"] is None:
        raise Forbidden("only the chat's participants may")
    if row["type"] != "group":
        raise Forbidden(f"members and names are changed in groups only, not in {row['type']} chats")
    if row["role"] != "admin":
        raise Forbidden("only the group's admins may")


async def add_members(
    conn: asyncpg.Connection, chat_id: int, me: int, users: list[int]
) -> list[int]:
    """Add users to a group (its admins only); returns those not already in it."""
    await _require_group_admin(conn, chat_id, me)
    await _active_users(conn, users)
    async with conn.transaction():
        rows = await conn.fetch(
            "INSERT INTO market.chat_participants (chat_id, user_id)"
            " SELECT $1, u FROM unnest($2::bigint[]) u"
            " WHERE (SELECT count(*) FROM market.chat_participants WHERE chat_id = $1)"
            "       + cardinality($2::bigint[]) <= $3"
            " ON CONFLICT (chat_id, user_id) DO NOTHING RETURNING user_id",
            chat_id,
            list(dict.fromkeys(users)),
            MAX_GROUP,
        )
        if not rows and users:
            present = await conn.fetchval(
                "SELECT count(*) FROM market.chat_participants"
                " WHERE chat_id = $1 AND user_id = ANY ($2::bigint[])",
                chat_id,
                users,
            )
            if present < len(set(users)):
                raise Conflict(f"a group has at most {MAX_GROUP} members")
        added = [r["user_id"] for r in rows]
        if added:
            await _tell_added(conn, chat_id, "group", dict.fromkeys(added, "member"), me)
            await tell(
                conn,
                [chat_channel(chat_id)],
                "members_added",
                {"chat_id": chat_id, "users": [str(u) for u in added], "by": str(me)},
            )
    return added


async def remove_member(conn: asyncpg.Connection, chat_id: int, me: int, user_id: int) -> None:
    """Remove a member from a group: its admins remove anyone, anyone may leave. The removed
    user's sockets leave the chat (trg_chat_participants_notify_removed)."""
    if user_id != me:
        await _require_group_admin(conn, chat_id, me)
    else:
        kind = await conn.fetchval("SELECT type::text FROM market.chats WHERE id = $1", chat_id)
        if kind is None:
            raise NotFound(f"chat {chat_id} does not exist")
        if kind == "direct":
            raise Forbidden("nobody leaves a direct chat")
    async with conn.transaction():
        status = await conn.execute(
            "DELETE FROM market.chat_participants WHERE chat_id = $1 AND user_id = $2",
            chat_id,
            user_id,
        )
        if status.endswith(" 0"):
            raise NotFound(f"user {user_id} is not in chat {chat_id}")
        await tell(
            conn,
            [chat_channel(chat_id)],
            "member_removed",
            {"chat_id": chat_id, "user_id": str(user_id), "by": str(me)},
        )


async def rename(conn: asyncpg.Connection, chat_id: int, me: int, name: str) -> None:
    if not name.strip():
        raise BadRequest("a group needs a name")
    await _require_group_admin(conn, chat_id, me)
    async with conn.transaction():
        await conn.execute("UPDATE market.chats SET name = $2 WHERE id = $1", chat_id, name.strip())
        await tell(
            conn,
            [chat_channel(chat_id)],
            "renamed",
            {"chat_id": chat_id, "name": name.strip(), "by": str(me)},
        )


async def claim(conn: Conn, chat_id: int, staff: int) -> bool:
    """Assign a support chat to `staff` if nobody answers it yet; True when it did."""
    claimed = await conn.fetchval(
        "UPDATE market.chats SET assigned_to = $2"
        " WHERE id = $1 AND type = 'support' AND assigned_to IS NULL RETURNING id",
        chat_id,
        staff,
    )
    if claimed is None:
        return False
    await tell(
        conn,
        [chat_channel(chat_id)],
        "assigned",
        {"chat_id": chat_id, "assigned_to": str(staff)},
    )
    return True


# --- reading ----------------------------------------------------------------------------------

# Unread of a participant row `p`: messages of others after their read position.
UNREAD = (
    "(SELECT count(*) FROM market.messages m WHERE m.chat_id = p.chat_id"
    " AND m.seq > p.last_read_seq AND m.sender_id <> p.user_id)"
)


@dataclass(frozen=True)
class ReadState:
    read_seq: int
    unread: int
    last_seq: int


async def mark_read(conn: asyncpg.Connection, chat_id: int, user_id: int, seq: int) -> ReadState:
    """Move the user's read position forward to `seq` (never back, never past the last
    message): a message_reads row for every message of others it passes, last_read_at now.
    Serialised per participant row, so concurrent reads and sends keep the counts exact."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT p.last_read_seq,"
            "  (SELECT coalesce(max(m.seq), 0) FROM market.messages m WHERE m.chat_id = p.chat_id)"
            "    AS last_seq"
            "  FROM market.chat_participants p WHERE p.chat_id = $1 AND p.user_id = $2"
            "   FOR NO KEY UPDATE OF p",
            chat_id,
            user_id,
        )
        if row is None:
            raise Forbidden("only the chat's participants may read it")
        old, last = row["last_read_seq"], row["last_seq"]
        new = max(old, min(seq, last))
        if new > old:
            await conn.execute(
                "INSERT INTO market.message_reads (message_id, user_id)"
                " SELECT m.id, $2 FROM market.messages m"
                "  WHERE m.chat_id = $1 AND m.seq > $3 AND m.seq <= $4 AND m.sender_id <> $2"
                " ON CONFLICT (message_id, user_id) DO NOTHING",
                chat_id,
                user_id,
                old,
                new,
            )
            await conn.execute(
                "UPDATE market.chat_participants SET last_read_seq = $3, last_read_at = now()"
                " WHERE chat_id = $1 AND user_id = $2",
                chat_id,
                user_id,
                new,
            )
        unread = await conn.fetchval(
            "SELECT count(*) FROM market.messages"
            " WHERE chat_id = $1 AND seq > $3 AND sender_id <> $2",
            chat_id,
            user_id,
            new,
        )
    return ReadState(new, unread, last)


@dataclass(frozen=True)
class Participant:
    user_id: int
    role: str
    last_read_seq: int
    last_read_at: datetime | None
    is_muted: bool


async def participants(conn: Conn, chat_id: int) -> list[Participant]:
    rows = await conn.fetch(
        "SELECT user_id, role::text AS role, last_read_seq, last_read_at, is_muted"
        "  FROM market.chat_participants WHERE chat_id = $1 ORDER BY joined_at, user_id",
        chat_id,
    )
    return [Participant(**dict(r)) for r in rows]


async def set_muted(conn: Conn, chat_id: int, user_id: int, muted: bool) -> None:
    """A muted chat still counts unread and shows in the app, but pushes nothing."""
    status = await conn.execute(
        "UPDATE market.chat_participants SET is_muted = $3 WHERE chat_id = $1 AND user_id = $2",
        chat_id,
        user_id,
        muted,
    )
    if status.endswith(" 0"):
        raise Forbidden("only the chat's participants may mute it")


# A user's chats (or, for support staff asking for support, the whole support queue), newest
# activity first, with their unread counts.
LIST_SQL = f"""
SELECT c.id, c.type::text AS type, c.name, c.product_id, c.order_id, c.assigned_to,
       c.last_message_at, c.created_at,
       coalesce(p.role::text, 'staff') AS role, coalesce(p.is_muted, false) AS muted,
       (SELECT coalesce(max(m.seq), 0) FROM market.messages m WHERE m.chat_id = c.id) AS last_seq,
       CASE WHEN p.user_id IS NULL THEN 0 ELSE {UNREAD} END AS unread
  FROM market.chats c
  LEFT JOIN market.chat_participants p ON p.chat_id = c.id AND p.user_id = $1
 WHERE ($2::market.chat_type_enum IS NULL OR c.type = $2)
   AND (p.user_id IS NOT NULL OR ($3 AND c.type = 'support'))
   AND ($4::timestamptz IS NULL
        OR (coalesce(c.last_message_at, c.created_at), c.id) < ($4, $5))
 ORDER BY coalesce(c.last_message_at, c.created_at) DESC, c.id DESC
 LIMIT $6
"""
