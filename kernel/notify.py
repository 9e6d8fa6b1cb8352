"""The one way in for notifications, in any realm: `notify()` writes a domain event's
notifications (to the realm's inbox table) and their delivery jobs (the outbox) in the caller's
transaction, set-based and idempotent, and the few writes users make about them (devices,
preferences, settings), keyed by (realm, user id). docs/notifications.md."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg

from kernel.inbox import Inbox, RealmRef, UserId, inbox_of, resolve_realm, user_key
from kernel.realms import Realm
from kernel.request_context import current_request_id

Priority = Literal["low", "medium", "high", "urgent"]
Channel = Literal["in_app", "push", "email", "sms"]
Platform = Literal["android", "ios", "web"]

PRIORITIES: tuple[str, ...] = ("low", "medium", "high", "urgent")
DIGEST_GROUP = "daily_digest"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# --- recipients -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _AudienceQuery:
    sql: str  # selects one uuid column of user ids; parameters $1..$n, each cast in the SQL
    params: tuple[type, ...]


# Named recipient queries. Callers choose one by name and pass its parameters, so no caller
# ever writes SQL and every value stays a bound parameter. notify() drops users that are
# deleted or inactive, and duplicates, whatever the query returns.
AUDIENCES: dict[str, _AudienceQuery] = {
    "users": _AudienceQuery("SELECT unnest($1::uuid[])", (list,)),
    "analyst_active_subscribers": _AudienceQuery(
        """SELECT s.user_id FROM analyst.subscriptions s
            WHERE s.analyst_id = $1::uuid AND s.status = 'active' AND s.deleted_at IS NULL
              AND (s.expires_at IS NULL OR s.expires_at > now())""",
        (uuid.UUID,),
    ),
    "tier_active_subscribers": _AudienceQuery(
        """SELECT s.user_id FROM analyst.subscriptions s
            WHERE s.tier_id = $1::uuid AND s.status = 'active' AND s.deleted_at IS NULL
              AND (s.expires_at IS NULL OR s.expires_at > now())""",
        (uuid.UUID,),
    ),
    "admins": _AudienceQuery("SELECT u.id FROM analyst.users u WHERE u.user_type = 'admin'", ()),
}


@dataclass(frozen=True, slots=True)
class Audience:
    """A named recipient query with its parameters; build it with `audience()` or a helper."""

    name: str
    args: tuple[object, ...]


def audience(name: str, *args: object) -> Audience:
    """`Audience` for the AUDIENCES entry `name`; raises ValueError on a bad name or arguments."""
    query = AUDIENCES.get(name)
    if query is None:
        raise ValueError(f"unknown audience {name!r}; known: {', '.join(sorted(AUDIENCES))}")
    if len(args) != len(query.params) or not all(
        isinstance(a, t) for a, t in zip(args, query.params, strict=True)
    ):
        wanted = ", ".join(t.__name__ for t in query.params)
        raise ValueError(f"audience {name!r} takes ({wanted})")
    return Audience(name, args)


def users(ids: Sequence[uuid.UUID]) -> Audience:
    return audience("users", list(ids))


def subscribers_of(analyst_id: uuid.UUID) -> Audience:
    """Users with an active, unexpired subscription to the analyst (a user id)."""
    return audience("analyst_active_subscribers", analyst_id)


def subscribers_of_tier(tier_id: uuid.UUID) -> Audience:
    return audience("tier_active_subscribers", tier_id)


def admins() -> Audience:
    return audience("admins")


# --- notify ---------------------------------------------------------------------------------

# Audiences are queries over the tables of this realm; other realms pass explicit user ids.
AUDIENCE_REALM = "analyst"

# Who an audience reaches in AUDIENCE_REALM: active, undeleted users, with whether their
# e-mail may be used. Its SQL is spliced in whole and its parameters come first ($1..$k).
# The analyst realm texts nobody (its users' phone numbers are for sign-in codes only).
_AUDIENCE_RECIPIENTS = """
    SELECT u.id::text AS user_id, u.email IS NOT NULL AND u.email_verified AS email_ok,
           NULL::text AS phone
      FROM analyst.users u
     WHERE u.id IN ({audience}) AND u.deleted_at IS NULL AND u.is_active
"""

# Any other realm: the recipients its contact_sql let through, decided in Python (one query).
_LISTED_RECIPIENTS = """
    SELECT r.user_id, r.email_ok, r.phone
      FROM unnest(:ids, :email_ok, :phones) AS r(user_id, email_ok, phone)
"""

# One statement: recipients -> preferences -> notifications -> jobs. notify's own parameters
# follow the audience's, numbered by _numbered(). Data-modifying CTEs all run, referenced or
# not. {recipients} yields (user_id text, email_ok boolean, phone text); {inbox_*} name the
# realm's inbox table (kernel/inbox.py): its columns, the user id in its type, its idempotency
# key.
_NOTIFY_SQL = """
WITH recipients AS (
    SELECT r.user_id, r.email_ok, r.phone,
           EXISTS (SELECT 1 FROM gateway.push_devices d
                    WHERE d.realm = :realm AND d.user_id = r.user_id) AS has_device
      FROM ({recipients}) r
),
decided AS (
    SELECT r.user_id,
           :in_app AND (:bypass OR coalesce(p.in_app, true)) AS in_app,
           :push AND (:bypass OR coalesce(p.push, true)) AND r.has_device
               AND NOT :digest AS push,
           :email AND (:bypass OR coalesce(p.email, true)) AND r.email_ok AS email,
           :sms AND (:bypass OR coalesce(p.sms, true)) AND r.phone IS NOT NULL
               AND NOT :digest AS sms
      FROM recipients r
      LEFT JOIN LATERAL (
          -- The most specific row wins: the category before '*', then the channel before '*'.
          SELECT (array_agg(p.enabled ORDER BY p.category = '*', p.channel = '*')
                      FILTER (WHERE p.channel IN ('in_app', '*')))[1] AS in_app,
                 (array_agg(p.enabled ORDER BY p.category = '*', p.channel = '*')
                      FILTER (WHERE p.channel IN ('push', '*')))[1] AS push,
                 (array_agg(p.enabled ORDER BY p.category = '*', p.channel = '*')
                      FILTER (WHERE p.channel IN ('email', '*')))[1] AS email,
                 (array_agg(p.enabled ORDER BY p.category = '*', p.channel = '*')
                      FILTER (WHERE p.channel IN ('sms', '*')))[1] AS sms
            FROM gateway.notification_preferences p
           WHERE p.realm = :realm AND p.user_id = r.user_id AND p.category IN (:category, '*')
      ) p ON true
),
ins AS (
    INSERT INTO {inbox_table} AS n
        ({inbox_realm_column}user_id, notification_type, title, message, action_url,
         related_entity_type, related_entity_id, send_email, send_push, send_in_app, status,
         sent_at, priority, notification_group, idempotency_key)
    SELECT {inbox_realm_value}{inbox_user}, :type, :title, :message, :action_url,
           :entity_type, :entity_id, d.email, d.push, d.in_app,
           -- In-app is delivered by being stored (the inbox); otherwise a worker decides.
           CASE WHEN d.in_app THEN 'sent' ELSE 'pending' END,
           CASE WHEN d.in_app THEN now() END,
           :priority, :group, :event_key || ':' || d.user_id
      FROM decided d
     WHERE d.in_app OR d.push OR d.email OR d.sms
    ON CONFLICT {inbox_key} DO NOTHING
    RETURNING n.id, n.user_id::text AS user_id, n.send_push, n.send_email
),
jobs AS (
    INSERT INTO gateway.notification_deliveries
        (realm, notification_id, user_id, channel, priority, request_id)
    SELECT :realm, i.id, i.user_id, c.channel, :priority, :request_id
      FROM ins i
      -- The inbox row has no send_sms column: whether to text comes from the decision.
      JOIN decided d ON d.user_id = i.user_id
     CROSS JOIN LATERAL (
          VALUES ('push', i.send_push), ('email', i.send_email), ('sms', d.sms)
     ) c (channel, wanted)
     WHERE c.wanted AND NOT :digest
),
digests AS (
    -- One digest job per user and local day, due at the user's digest time the next day.
    INSERT INTO gateway.notification_deliveries
        (realm, user_id, channel, digest_date, priority, next_attempt_at, request_id)
    SELECT :realm, i.user_id, 'digest', l.day, 'low',
           ((l.day + 1) + coalesce(s.digest_at, time '08:00')) AT TIME ZONE l.tz, :request_id
      FROM ins i
      LEFT JOIN gateway.notification_settings s
             ON s.realm = :realm AND s.user_id = i.user_id
     CROSS JOIN LATERAL (
          SELECT coalesce(s.time_zone, 'UTC') AS tz,
                 (now() AT TIME ZONE coalesce(s.time_zone, 'UTC'))::date AS day
     ) l
     WHERE :digest AND i.send_email
    ON CONFLICT (realm, user_id, digest_date) WHERE channel = 'digest' DO NOTHING
)
SELECT count(*) FROM ins
"""

_PARAM = re.compile(r"(?<!:):([a-z_]+)\b")
# notify's parameters and their types: each placeholder is written `$n::type`, so Postgres
# never has to guess a type from context.
_TYPES = {
    "realm": "text",
    "ids": "text[]",
    "email_ok": "boolean[]",
    "phones": "text[]",
    "in_app": "boolean",
    "push": "boolean",
    "email": "boolean",
    "sms": "boolean",
    "bypass": "boolean",
    "digest": "boolean",
    "category": "text",
    "type": "text",
    "title": "text",
    "message": "text",
    "action_url": "text",
    "entity_type": "text",
    "entity_id": "uuid",
    "priority": "text",
    "group": "text",
    "event_key": "text",
    "request_id": "text",
}


def _numbered(sql: str, first: int) -> tuple[str, list[str]]:
    """Replace `:name` placeholders with $first, $first+1, ...; return the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${first + names.index(name)}::{_TYPES[name]}"

    return _PARAM.sub(number, sql), names


@functools.cache
def _notify_sql(box: Inbox, recipients: str) -> str:
    """The statement for one realm's inbox, with `recipients` spliced in (not yet numbered)."""
    return (
        _NOTIFY_SQL.replace("{recipients}", recipients)
        .replace("{inbox_table}", box.table)
        .replace("{inbox_realm_column}", "realm, " if box.shared else "")
        .replace("{inbox_realm_value}", ":realm, " if box.shared else "")
        .replace("{inbox_user}", box.key("d.user_id"))
        .replace("{inbox_key}", "(realm, idempotency_key)" if box.shared else "(idempotency_key)")
    )


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


async def _contacts(
    conn: asyncpg.Connection, realm: Realm, keys: Sequence[str]
) -> tuple[list[str], list[bool], list[str | None]]:
    """The recipients among `keys` (canonical ids) that the realm's contact_sql calls active,
    with whether a verified e-mail address reaches them and the phone number to text, if any
    (its optional `phone` column). A realm without contact_sql has no address the core may
    use: every listed user, none by e-mail or SMS."""
    if realm.contact_sql is None:
        return list(keys), [False] * len(keys), [None] * len(keys)
    rows = await conn.fetch(realm.contact_sql, [realm.user_id_value(k) for k in keys])
    reachable = {
        user_key(realm, row["id"]): (
            bool(row["email"] is not None and row["email_verified"]),
            row.get("phone") or None,
        )
        for row in rows
        if row["active"]
    }
    listed = [k for k in keys if k in reachable]
    return listed, [reachable[k][0] for k in listed], [reachable[k][1] for k in listed]


async def notify(
    conn: asyncpg.Connection,
    *,
    realm: RealmRef = AUDIENCE_REALM,
    event_key: str,
    recipients: Audience | Sequence[UserId],
    notification_type: str,
    title: str | None = None,
    message: str | None = None,
    action_url: str | None = None,
    related_entity_type: str | None = None,
    related_entity_id: uuid.UUID | None = None,
    priority: Priority = "medium",
    notification_group: str | None = None,
    send_email: bool = True,
    send_push: bool = True,
    send_in_app: bool = True,
    send_sms: bool = False,
    bypass_preferences: bool = False,
) -> int:
    """Create the notifications of one domain event in `realm`; return how many were created.

    Runs in the caller's transaction (a savepoint when one is open, else its own), so the
    notifications and their delivery jobs commit with the event that caused them, or not at
    all. `event_key` names the event ("post:<id>:published"): a user gets at most one
    notification per key, so replaying an event creates nothing new and returns 0 for them.

    Recipients are user ids of the realm (str, UUID or int; ValueError for anything else),
    or, in the analyst realm, an `Audience`. Users the realm calls inactive or does not know
    (its `contact_sql`; the analyst realm: deleted or inactive) are dropped, as are duplicates.
    The rows go to the realm's inbox table (kernel/inbox.py) and the jobs to
    gateway.notification_deliveries, naming the realm. `realm` is a Realm or the name of a
    realm this process serves.

    Per user, a channel fires when its send_* flag is set, the user's preferences for the
    notification_type (their category) allow it — unless `bypass_preferences`, for
    transactional notices — and the channel can reach them (a push device; a verified e-mail;
    for SMS, a phone number from the realm's contact_sql). In-app reaches open sockets at
    commit (NOTIFY sb_notification); push, e-mail and SMS are jobs for the delivery workers.
    SMS is off unless `send_sms`: texts cost money, so the caller opts in per event. A
    notification_group of 'daily_digest' sends no push, e-mail or SMS of its own: it joins the
    user's daily digest e-mail. A user no channel can reach gets no row.

    Delivery jobs record the request id bound in this context (the api binds each request's
    X-Request-Id), so a delivery can be traced to the request that queued it.
    """
    _check(0 < len(event_key) <= 200, "event_key must be 1-200 characters")
    _check(bool(_NAME.match(notification_type)), "notification_type must be lower_snake_case")
    _check(len(notification_type) <= 50, "notification_type is at most 50 characters")
    _check(priority in PRIORITIES, f"priority must be one of {', '.join(PRIORITIES)}")
    _check(title is None or len(title) <= 255, "title is at most 255 characters")
    _check(action_url is None or len(action_url) <= 500, "action_url is at most 500 characters")
    _check(
        related_entity_type is None or len(related_entity_type) <= 50,
        "related_entity_type is at most 50 characters",
    )
    _check(
        notification_group is None or len(notification_group) <= 100,
        "notification_group is at most 100 characters",
    )
    the_realm = resolve_realm(realm)
    box = inbox_of(the_realm)
    values: dict[str, object] = {
        "realm": the_realm.name,
        "in_app": send_in_app,
        "push": send_push,
        "email": send_email,
        "sms": send_sms,
        "bypass": bypass_preferences,
        "digest": notification_group == DIGEST_GROUP,
        "category": notification_type,
        "type": notification_type,
        "title": title,
        "message": message,
        "action_url": action_url,
        "entity_type": related_entity_type,
        "entity_id": related_entity_id,
        "priority": priority,
        "group": notification_group,
        "event_key": event_key,
        # The api request that caused this, if any (kernel/request_context.py); the worker
        # that delivers a job can name it.
        "request_id": current_request_id(),
    }
    async with conn.transaction():
        if the_realm.name == AUDIENCE_REALM:
            if not isinstance(recipients, Audience):
                recipients = users([uuid.UUID(user_key(the_realm, u)) for u in recipients])
            query = AUDIENCES[recipients.name]
            template = _notify_sql(box, _AUDIENCE_RECIPIENTS.replace("{audience}", query.sql))
            sql, names = _numbered(template, len(query.params) + 1)
            args = [*recipients.args, *(values[n] for n in names)]
        else:
            _check(
                not isinstance(recipients, Audience),
                f"audiences are {AUDIENCE_REALM} queries; pass user ids for {the_realm.name}",
            )
            assert not isinstance(recipients, Audience)
            keys = list(dict.fromkeys(user_key(the_realm, u) for u in recipients))
            values["ids"], values["email_ok"], values["phones"] = await _contacts(
                conn, the_realm, keys
            )
            sql, names = _numbered(_notify_sql(box, _LISTED_RECIPIENTS), 1)
            args = [values[n] for n in names]
        created = await conn.fetchval(sql, *args)
    return int(created)


# --- what users say about their notifications -----------------------------------------------
# Each takes the user's realm (a Realm or a served realm's name; default analyst, as before
# realms) and the user id as str, UUID or int; rows are keyed by (realm, canonical id text).


async def register_device(
    conn: asyncpg.Connection,
    user_id: UserId,
    token: str,
    platform: Platform,
    app_version: str | None = None,
    *,
    realm: RealmRef = AUDIENCE_REALM,
) -> uuid.UUID:
    """Record (or refresh) a push token for the user; a token seen before moves to this user
    (of whichever realm)."""
    the_realm = resolve_realm(realm)
    device_id = await conn.fetchval(
        """INSERT INTO gateway.push_devices (realm, user_id, token, platform, app_version)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (token) DO UPDATE
              SET realm = excluded.realm, user_id = excluded.user_id,
                  platform = excluded.platform, app_version = excluded.app_version,
                  last_seen_at = now()
           RETURNING id""",
        the_realm.name,
        user_key(the_realm, user_id),
        token,
        platform,
        app_version,
    )
    assert isinstance(device_id, uuid.UUID)
    return device_id


async def forget_device(
    conn: asyncpg.Connection, user_id: UserId, token: str, *, realm: RealmRef = AUDIENCE_REALM
) -> bool:
    """Delete the user's push token (logout); True when there was one."""
    the_realm = resolve_realm(realm)
    status = await conn.execute(
        "DELETE FROM gateway.push_devices WHERE realm = $1 AND user_id = $2 AND token = $3",
        the_realm.name,
        user_key(the_realm, user_id),
        token,
    )
    return bool(status != "DELETE 0")


async def set_preference(
    conn: asyncpg.Connection,
    user_id: UserId,
    category: str,
    channel: Channel | Literal["*"],
    enabled: bool,
    *,
    realm: RealmRef = AUDIENCE_REALM,
) -> None:
    """Allow or block `category` ('*': all) on `channel` ('*': all) for the user."""
    the_realm = resolve_realm(realm)
    await conn.execute(
        """INSERT INTO gateway.notification_preferences
               (realm, user_id, category, channel, enabled)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (realm, user_id, category, channel) DO UPDATE
              SET enabled = excluded.enabled, updated_at = now()""",
        the_realm.name,
        user_key(the_realm, user_id),
        category,
        channel,
        enabled,
    )


async def set_settings(
    conn: asyncpg.Connection,
    user_id: UserId,
    *,
    realm: RealmRef = AUDIENCE_REALM,
    time_zone: str = "UTC",
    quiet_hours: tuple[str, str] | None = None,
    digest_at: str = "08:00",
) -> None:
    """Set the user's time zone, quiet hours ("22:00", "07:00") or None, and digest time."""
    the_realm = resolve_realm(realm)
    start, end = quiet_hours if quiet_hours is not None else (None, None)
    await conn.execute(
        """INSERT INTO gateway.notification_settings
               (realm, user_id, time_zone, quiet_hours_start, quiet_hours_end, digest_at)
           VALUES ($1, $2, $3, $4::text::time, $5::text::time, $6::text::time)
           ON CONFLICT (realm, user_id) DO UPDATE
              SET time_zone = excluded.time_zone,
                  quiet_hours_start = excluded.quiet_hours_start,
                  quiet_hours_end = excluded.quiet_hours_end,
                  digest_at = excluded.digest_at""",
        the_realm.name,
        user_key(the_realm, user_id),
        time_zone,
        start,
        end,
        digest_at,
    )
