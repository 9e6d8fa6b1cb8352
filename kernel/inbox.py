"""Read state of a user's in-app notifications in any realm, shared by the gateway, the REST
routes and the workers: where a realm's inbox lives (`Inbox`), the unread count, the unread
notifications a socket missed, and marking notifications read.

A realm's inbox is its `inbox_table` (kernel/realms.py): the core's gateway.notifications,
whose rows carry the realm and the user id as text, or a table of the realm's own (the
analyst realm's analyst.notifications) keyed by user ids of the realm's type. Callers pass
user ids as str, UUID or int; every query compares them in the table's own type, so the
indexes serve it. Only notifications meant for the inbox (send_in_app) count; unread means
read_at IS NULL. Marking read fires sb_notification_read (sql/0130, analyst 0026), which
every gateway turns into a `notifications_read` event on the user's sockets.
"""

from __future__ import annotations

import functools
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg

from kernel.errors import NotFound, Unauthorized
from kernel.realms import Realm, load_realm, realm_entries

UserId = str | uuid.UUID | int
# A realm, or the name of one this process serves.
RealmRef = Realm | str

SHARED_INBOX = "gateway.notifications"
_TABLE = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
_PARAM = re.compile(r"(?<!:):([a-z_]+)\b")


# --- realms and user ids --------------------------------------------------------------------


@functools.cache
def _named(spec: str, name: str) -> Realm:
    """The realm `name` among the entries of SWITCHBOARD_REALMS=`spec`, importing only that
    realm's package (or, for dotted entries, those modules), once per process."""
    entries = realm_entries({"SWITCHBOARD_REALMS": spec})
    if name in entries:
        return load_realm(name)
    for entry in entries:
        if "." in entry and (realm := load_realm(entry)).name == name:
            return realm
    raise ValueError(f"no realm {name!r} here (served: {', '.join(entries)})")


def resolve_realm(realm: RealmRef) -> Realm:
    """`realm` itself, or the served realm of that name (SWITCHBOARD_REALMS). A name is
    looked up once per process and only its own package is imported; processes that hold a
    registry of their own (gateway, workers, api routes) pass Realm objects instead."""
    if isinstance(realm, Realm):
        return realm
    return _named(os.environ.get("SWITCHBOARD_REALMS", "").strip(), realm)


def user_key(realm: Realm, user_id: UserId) -> str:
    """The canonical text of a user id of `realm` (a UUID's, or decimal digits); ValueError
    when it is not one (a UUID for a BIGINT realm, digits for a UUID realm, nonsense)."""
    if isinstance(user_id, bool):
        raise ValueError(f"{user_id!r} is not a user id of realm {realm.name!r}")
    try:
        if isinstance(user_id, uuid.UUID):
            if realm.user_id_type != "uuid":
                raise Unauthorized("not a user id")
            return str(user_id)
        return realm.parse_user_id(str(user_id))
    except Unauthorized:
        raise ValueError(f"{user_id!r} is not a user id of realm {realm.name!r}") from None


# --- where a realm's inbox lives ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inbox:
    """A realm's inbox table and how its rows name their user. SQL fragments from here are
    built from declared names only; every value stays a bound parameter (`bind`)."""

    realm: str
    table: str
    shared: bool  # gateway.notifications: a `realm` column, user_id text
    id_type: str  # the realm's user id type: 'uuid' or 'bigint'

    def key(self, text: str) -> str:
        """SQL converting the text expression `text` (a canonical user id) to user_id's type."""
        return text if self.shared else f"({text})::{self.id_type}"

    def owner(self, alias: str, text: str) -> str:
        """SQL true for the rows of alias that belong to the user whose id is `text`."""
        mine = f"{alias}.user_id = {self.key(text)}"
        return f"{alias}.realm = :realm AND {mine}" if self.shared else mine

    def of_realm(self, alias: str) -> str:
        """SQL true for the rows of this realm (all rows of a realm's own table)."""
        return f"{alias}.realm = :realm" if self.shared else "true"


@functools.cache
def _inbox(name: str, table: str, id_type: str) -> Inbox:
    if not _TABLE.match(table):
        raise ValueError(f"realm {name!r}: inbox_table must be schema.table, not {table!r}")
    return Inbox(realm=name, table=table, shared=table == SHARED_INBOX, id_type=id_type)


def inbox_of(realm: RealmRef) -> Inbox:
    """The inbox of `realm`."""
    r = resolve_realm(realm)
    return _inbox(r.name, r.inbox_table, r.user_id_type)


def bind(sql: str, values: Mapping[str, object]) -> tuple[str, list[object]]:
    """`sql` with its `:name` placeholders numbered $1, $2, ... in order of first use, and the
    values in that order. Names a query does not use are not passed (Postgres refuses a
    parameter whose type it cannot tell)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"no value for :{name}")
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    numbered = _PARAM.sub(number, sql)
    return numbered, [values[n] for n in names]


# --- queries --------------------------------------------------------------------------------

# Each is a template over an Inbox (see _sql): {t} the table, {mine} the user's rows of n.

_UNREAD = "SELECT count(*) FROM {t} n WHERE {mine} AND n.read_at IS NULL AND n.send_in_app"

# The newest :limit unread, with the total unread (the window count runs before LIMIT).
_MISSED = """
SELECT n.id, n.user_id::text AS user_id, n.notification_type, n.title, n.message,
       n.action_url, n.priority, n.created_at, count(*) OVER () AS unread
  FROM {t} n
 WHERE {mine} AND n.read_at IS NULL AND n.send_in_app
 ORDER BY n.created_at DESC, n.id DESC
 LIMIT :limit
"""

_UNREAD_BY_USER = """
SELECT u.id AS user_id, count(n.id) AS unread
  FROM unnest(:users::text[]) AS u(id)
  LEFT JOIN {t} n ON {mine_u} AND n.read_at IS NULL AND n.send_in_app
 GROUP BY u.id
"""

_MARK_ALL = """
UPDATE {t} n SET status = 'read', read_at = now()
 WHERE {mine} AND n.read_at IS NULL AND n.send_in_app
"""

# One statement, so the check and the update see the same rows: nothing changes when any id
# is not one of the user's in-app notifications; `missing` names those ids.
_MARK_SOME = """
WITH wanted AS (SELECT DISTINCT unnest(:ids::uuid[]) AS id),
     owned AS (SELECT n.id FROM {t} n JOIN wanted w ON w.id = n.id
                WHERE {mine} AND n.send_in_app),
     missing AS (SELECT w.id FROM wanted w WHERE w.id NOT IN (SELECT id FROM owned)),
     marked AS (UPDATE {t} x SET status = 'read', read_at = now()
                 WHERE x.id IN (SELECT id FROM owned) AND x.read_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM missing)
                RETURNING 1)
SELECT (SELECT array_agg(id ORDER BY id) FROM missing) AS missing,
       (SELECT count(*) FROM marked) AS marked
"""


# A page of the user's inbox, newest first, after the cursor (created_at, id) if any.
_PAGE = """
SELECT n.id, n.notification_type, n.title, n.message, n.action_url, n.related_entity_type,
       n.related_entity_id, n.priority, n.status, n.read_at, n.created_at
  FROM {t} n
 WHERE {mine} AND n.send_in_app AND (NOT :unread OR n.read_at IS NULL)
   AND (:after_at::timestamptz IS NULL OR (n.created_at, n.id) < (:after_at, :after_id::uuid))
 ORDER BY n.created_at DESC, n.id DESC
 LIMIT :limit
"""


@functools.cache
def _sql(template: str, box: Inbox) -> str:
    return template.format(
        t=box.table,
        mine=box.owner("n", ":user::text"),
        mine_u=box.owner("n", "u.id"),
    )


def _query(template: str, box: Inbox, **values: object) -> tuple[str, list[object]]:
    return bind(_sql(template, box), {"realm": box.realm, **values})


Db: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def unread_count(db: Db, user_id: UserId, realm: RealmRef = "analyst") -> int:
    """How many of the user's in-app notifications are unread (the badge)."""
    r = resolve_realm(realm)
    sql, args = _query(_UNREAD, inbox_of(r), user=user_key(r, user_id))
    return int(await db.fetchval(sql, *args))


async def unread_counts(
    db: Db, user_ids: Sequence[UserId], realm: RealmRef = "analyst"
) -> dict[str, int]:
    """The unread count of each of several users of one realm, in one query, by the
    canonical text of their ids."""
    r = resolve_realm(realm)
    keys = [user_key(r, u) for u in user_ids]
    sql, args = _query(_UNREAD_BY_USER, inbox_of(r), users=keys)
    rows = await db.fetch(sql, *args)
    return {row["user_id"]: int(row["unread"]) for row in rows}


async def missed(
    db: Db, user_id: UserId, limit: int, realm: RealmRef = "analyst"
) -> tuple[int, list[asyncpg.Record]]:
    """The unread count and the newest `limit` unread notifications, oldest first (user_id
    as text)."""
    if limit <= 0:
        return await unread_count(db, user_id, realm), []
    r = resolve_realm(realm)
    sql, args = _query(_MISSED, inbox_of(r), user=user_key(r, user_id), limit=limit)
    rows = await db.fetch(sql, *args)
    return (int(rows[0]["unread"]) if rows else 0), rows[::-1]


async def mark_read(
    db: Db,
    user_id: UserId,
    ids: Sequence[uuid.UUID] | None,
    realm: RealmRef = "analyst",
) -> int:
    """Mark the given notifications of the user read (None: all of them); return how many
    changed. An id that is not one of the user's in-app notifications in this realm raises
    NotFound and nothing changes; one already read is left as it is."""
    r = resolve_realm(realm)
    box, key = inbox_of(r), user_key(r, user_id)
    if ids is None:
        sql, args = _query(_MARK_ALL, box, user=key)
        return int((await db.execute(sql, *args)).split()[-1])
    sql, args = _query(_MARK_SOME, box, user=key, ids=list(ids))
    row = await db.fetchrow(sql, *args)
    if row["missing"]:
        raise NotFound(f"no notification {row['missing'][0]}")
    return int(row["marked"])


async def page(
    db: Db,
    user_id: UserId,
    realm: RealmRef,
    *,
    unread_only: bool,
    after: tuple[object, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to `limit` of the user's in-app notifications, newest first, older than `after`
    ((created_at, id) of the last one of the previous page) when given."""
    r = resolve_realm(realm)
    after_at, after_id = after if after is not None else (None, None)
    sql, args = _query(
        _PAGE,
        inbox_of(r),
        user=user_key(r, user_id),
        unread=unread_only,
        after_at=after_at,
        after_id=after_id,
        limit=limit,
    )
    return list(await db.fetch(sql, *args))
