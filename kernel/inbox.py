"""Read state of a user's in-app notifications, shared by the gateway and the REST inbox: the
unread count, the unread notifications a socket missed, and marking notifications read.

Only notifications meant for the inbox (send_in_app) count; unread means read_at IS NULL.
Marking read fires sb_notification_read (sql/0015), which every gateway turns into a
`notifications_read` event on the user's sockets, whoever marked them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from kernel.errors import NotFound

_UNREAD = """
SELECT count(*) FROM analyst.notifications
 WHERE user_id = $1 AND read_at IS NULL AND send_in_app
"""

# The newest $2 unread, with the total unread (the window count runs before LIMIT).
_MISSED = """
SELECT id, user_id, notification_type, title, message, action_url, priority, created_at,
       count(*) OVER () AS unread
  FROM analyst.notifications
 WHERE user_id = $1 AND read_at IS NULL AND send_in_app
 ORDER BY created_at DESC, id DESC
 LIMIT $2
"""

_UNREAD_BY_USER = """
SELECT u.id AS user_id, count(n.id) AS unread
  FROM unnest($1::uuid[]) AS u(id)
  LEFT JOIN analyst.notifications n
         ON n.user_id = u.id AND n.read_at IS NULL AND n.send_in_app
 GROUP BY u.id
"""

_MARK_ALL = """
UPDATE analyst.notifications SET status = 'read', read_at = now()
 WHERE user_id = $1 AND read_at IS NULL AND send_in_app
"""

# One statement, so the check and the update see the same rows: nothing changes when any id
# is not one of the user's in-app notifications; `missing` names those ids.
_MARK_SOME = """
WITH wanted AS (SELECT DISTINCT unnest($2::uuid[]) AS id),
     owned AS (SELECT n.id FROM analyst.notifications n JOIN wanted w ON w.id = n.id
                WHERE n.user_id = $1 AND n.send_in_app),
     missing AS (SELECT w.id FROM wanted w WHERE w.id NOT IN (SELECT id FROM owned)),
     marked AS (UPDATE analyst.notifications SET status = 'read', read_at = now()
                 WHERE id IN (SELECT id FROM owned) AND read_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM missing)
                RETURNING 1)
SELECT (SELECT array_agg(id ORDER BY id) FROM missing) AS missing,
       (SELECT count(*) FROM marked) AS marked
"""


async def unread_count(db: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID) -> int:
    """How many of the user's in-app notifications are unread (the badge)."""
    return int(await db.fetchval(_UNREAD, user_id))


async def unread_counts(
    db: asyncpg.Pool | asyncpg.Connection, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The unread count of each of several users, in one query."""
    rows = await db.fetch(_UNREAD_BY_USER, list(user_ids))
    return {row["user_id"]: int(row["unread"]) for row in rows}


async def missed(
    db: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID, limit: int
) -> tuple[int, list[asyncpg.Record]]:
    """The unread count and the newest `limit` unread notifications, oldest first."""
    if limit <= 0:
        return await unread_count(db, user_id), []
    rows = await db.fetch(_MISSED, user_id, limit)
    return (int(rows[0]["unread"]) if rows else 0), rows[::-1]


async def mark_read(
    db: asyncpg.Pool | asyncpg.Connection,
    user_id: uuid.UUID,
    ids: Sequence[uuid.UUID] | None,
) -> int:
    """Mark the given notifications of the user read (None: all of them); return how many
    changed. An id that is not one of the user's in-app notifications raises NotFound and
    nothing changes; one already read is left as it is."""
    if ids is None:
        return int((await db.execute(_MARK_ALL, user_id)).split()[-1])
    row = await db.fetchrow(_MARK_SOME, user_id, list(ids))
    if row["missing"]:
        raise NotFound(f"no notification {row['missing'][0]}")
    return int(row["marked"])
