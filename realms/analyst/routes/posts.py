"""/v1/posts, /v1/feed and /v1/analysts/{analyst_id}/posts: analysts publish calls and other
posts; readers see them by audience, and a 'paid' post is locked (returned without its content,
structured data or the call's terms) for anyone without a paid subscription to its analyst."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel import notify
from kernel.errors import BadRequest, Conflict, Forbidden, NotFound, RateLimited
from kernel.web.auth import Caller, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid

routes = web.RouteTableDef()

PostType = Literal["call", "update", "analysis", "commentary", "educational"]
Strategy = Literal["intraday", "swing", "positional", "long_term", "options"]
Audience = Literal["free", "paid", "both"]
Action = Literal["BUY", "SELL", "HOLD"]
Confidence = Literal["LOW", "MEDIUM", "HIGH", "VERY_HIGH"]
Outcome = Literal["target_hit", "stop_loss_hit", "closed", "expired"]
Title = Annotated[str, Meta(min_length=1, max_length=255)]
Content = Annotated[str, Meta(min_length=1, max_length=50_000)]
Symbol = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9&._:-]{0,49}\Z")]
Price = Annotated[
    float,
    Meta(
        gt=0,
        lt=1e10,
        description="at most 2 decimal places",
        extra_json_schema={"multipleOf": 0.01},  # checked by _money (decimal, not binary)
    ),
]
Ratio = Annotated[str, Meta(pattern=r"^1:[0-9]{1,13}(\.[0-9]{1,2})?\Z", description='"1:N"')]


_CALL_ONLY = (
    "action",
    "entry_price",
    "target_price",
    "stop_loss",
    "risk_reward_ratio",
    "confidence_level",
)


def _call_terms_rule() -> dict[str, Any]:
    """check_call's rules a schema can state: a call names its stock and action, a BUY or SELL
    call also its prices; any other post carries none of the call-only fields. (The order of
    the prices and the ratio's value relate fields, which JSON Schema cannot.)"""
    given = {"not": {"type": "null"}}
    prices = ["entry_price", "target_price", "stop_loss"]
    return {
        "anyOf": [
            {
                "properties": {
                    "post_type": {"not": {"const": "call"}},
                    **{name: {"type": "null"} for name in _CALL_ONLY},
                }
            },
            {
                "required": ["stock_symbol", "action"],
                "properties": {
                    "post_type": {"const": "call"},
                    "stock_symbol": given,
                    "action": {"const": "HOLD"},
                },
            },
            {
                "required": ["stock_symbol", "action", *prices],
                "properties": {
                    "post_type": {"const": "call"},
                    "stock_symbol": given,
                    "action": {"enum": ["BUY", "SELL"]},
                    **{name: given for name in prices},
                },
            },
        ]
    }


class PostCreate(Struct, forbid_unknown_fields=True):
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (_call_terms_rule(),)
    post_type: PostType
    content: Content
    title: Title | None = None
    content_formatted: dict[str, Any] | None = None
    strategy_type: Strategy | None = None
    audience: Audience = "both"
    stock_symbol: Symbol | None = None
    action: Action | None = None
    entry_price: Price | None = None
    target_price: Price | None = None
    stop_loss: Price | None = None
    risk_reward_ratio: Ratio | None = None
    confidence_level: Confidence | None = None
    is_urgent: bool = False
    is_pinned: bool = False


class PostUpdate(Struct, forbid_unknown_fields=True):
    """Only the fields given change; null clears an optional field. post_type and action are
    fixed once published, and a call's prices only change while it is open."""

    title: Title | UnsetType | None = UNSET
    content: Content | UnsetType = UNSET
    content_formatted: dict[str, Any] | UnsetType | None = UNSET
    strategy_type: Strategy | UnsetType | None = UNSET
    audience: Audience | UnsetType = UNSET
    stock_symbol: Symbol | UnsetType | None = UNSET
    entry_price: Price | UnsetType | None = UNSET
    target_price: Price | UnsetType | None = UNSET
    stop_loss: Price | UnsetType | None = UNSET
    risk_reward_ratio: Ratio | UnsetType | None = UNSET
    confidence_level: Confidence | UnsetType | None = UNSET
    is_urgent: bool | UnsetType = UNSET
    is_pinned: bool | UnsetType = UNSET


class CallOutcome(Struct, forbid_unknown_fields=True):
    # the exit price, except for an expired call
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "anyOf": [
                {"properties": {"call_status": {"const": "expired"}}},
                {
                    "required": ["actual_exit_price"],
                    "properties": {"actual_exit_price": {"not": {"type": "null"}}},
                },
            ]
        },
    )
    call_status: Outcome
    actual_entry_price: Price | None = None
    actual_exit_price: Price | None = None


class PostOut(Struct):
    """A post as the caller may see it. When `locked`, content, content_formatted, action,
    the prices and risk_reward_ratio are null."""

    id: uuid.UUID
    analyst_id: uuid.UUID
    post_type: str
    audience: str
    title: str | None
    content: str | None
    content_formatted: Any
    strategy_type: str | None
    stock_symbol: str | None
    action: str | None
    entry_price: float | None
    target_price: float | None
    stop_loss: float | None
    risk_reward_ratio: str | None
    confidence_level: str | None
    call_status: str | None
    actual_entry_price: float | None
    actual_exit_price: float | None
    actual_profit_percent: float | None
    closed_at: datetime | None
    views_count: int
    bookmarks_count: int
    comments_count: int
    is_urgent: bool
    is_pinned: bool
    is_featured: bool
    created_at: datetime
    updated_at: datetime
    locked: bool


class TimelineQuery(PageQuery, kw_only=True):
    post_type: PostType | None = None


class SearchQuery(PageQuery, kw_only=True):
    q: Annotated[str, Meta(min_length=1, max_length=200, description="web search syntax")]


_PRICES = ("entry_price", "target_price", "stop_loss", "actual_entry_price", "actual_exit_price")
_REDACTED = ("content", "content_formatted", "action", "risk_reward_ratio", *_PRICES)
_COLUMNS = ", ".join(
    [
        f"p.{name}::float8 AS {name}"
        if name in (*_PRICES, "actual_profit_percent")
        else f"p.{name}"
        for name in PostOut.__struct_fields__
        if name != "locked"
    ]
)

# Every read binds $1 = the viewer's user id and $2 = whether the viewer is an admin. A paid
# post is open to its analyst, to admins, and to users with an active, unexpired subscription
# to its analyst on a tier that is not the free one.
PAID_ACCESS = """EXISTS (
    SELECT 1 FROM analyst.subscriptions s
      JOIN analyst.subscription_tiers t ON t.id = s.tier_id
     WHERE s.user_id = $1 AND s.analyst_id = p.analyst_id AND s.status = 'active'
       AND s.deleted_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > now())
       AND NOT t.is_free_tier)"""
LOCKED = f"(p.audience = 'paid' AND p.analyst_id <> $1 AND NOT $2::boolean AND NOT {PAID_ACCESS})"
POST_COLUMNS = f"{_COLUMNS}, {LOCKED} AS locked"
SELECT_POSTS = f"SELECT {POST_COLUMNS} FROM analyst.posts p"


def post_out(row: asyncpg.Record) -> PostOut:
    """The post of a SELECT_POSTS row, redacted when it is locked for the viewer."""
    values = {name: row[name] for name in PostOut.__struct_fields__}
    if values["locked"]:
        values.update(dict.fromkeys(_REDACTED))
    return PostOut(**values)


async def visible_post(conn: asyncpg.Connection, who: Caller, post_id: uuid.UUID) -> PostOut:
    """The live post as `who` sees it (possibly locked); NotFound when missing or deleted."""
    row = await conn.fetchrow(
        f"{SELECT_POSTS} WHERE p.id = $3 AND p.deleted_at IS NULL",
        who.user_id,
        who.is_admin,
        post_id,
    )
    if row is None:
        raise NotFound("post not found")
    return post_out(row)


# --- the terms of a call --------------------------------------------------------------------


def _money(name: str, value: float | Decimal | None) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    amount = Decimal(repr(value))
    if int(amount.as_tuple().exponent) < -2:
        raise BadRequest(f"`{name}` has more than 2 decimal places")
    return amount


def _rounded(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def ratio_text(reward_per_risk: Decimal) -> str:
    """'1:N' with N rounded half up to at most 2 decimals, trailing zeros dropped."""
    return f"1:{_rounded(reward_per_risk, 2).normalize():f}"


def check_call(terms: dict[str, Any]) -> None:
    """Validate the call columns a post will have after a write, and set its risk_reward_ratio.

    `terms` holds post_type, stock_symbol and the _CALL_ONLY columns (prices as Decimal or
    float). Non-calls carry none of the call-only columns. A call names its stock and action;
    a BUY or SELL also its entry, target and stop loss, on the right sides of the entry (BUY:
    target > entry > stop loss; SELL: target < entry < stop loss), and its ratio is computed
    as reward:risk. A ratio given for a BUY or SELL must be the computed one rounded to the
    decimals it is written with. A HOLD has no side, so its prices are not ordered."""
    if terms["post_type"] != "call":
        given = [name for name in _CALL_ONLY if terms[name] is not None]
        if given:
            raise BadRequest(f"{', '.join(given)}: only a post_type 'call' carries these")
        return
    side = terms["action"]
    needed = ["stock_symbol", "action"]
    if side in ("BUY", "SELL"):
        needed += ["entry_price", "target_price", "stop_loss"]
    missing = [name for name in needed if terms[name] is None]
    if missing:
        raise BadRequest(f"a {side or ''} call needs {', '.join(missing)}".replace("  ", " "))
    for name in ("entry_price", "target_price", "stop_loss"):
        terms[name] = _money(name, terms[name])
    if side == "HOLD":
        return
    entry, target, stop = terms["entry_price"], terms["target_price"], terms["stop_loss"]
    if side == "BUY" and not target > entry > stop:
        raise BadRequest("a BUY call needs target_price > entry_price > stop_loss")
    if side == "SELL" and not target < entry < stop:
        raise BadRequest("a SELL call needs target_price < entry_price < stop_loss")
    exact = abs(target - entry) / abs(entry - stop)
    given = terms["risk_reward_ratio"]
    if given is not None:
        number = given.split(":")[1]
        places = len(number.partition(".")[2])
        if _rounded(exact, places) != Decimal(number):
            raise BadRequest(
                f"risk_reward_ratio {given!r} does not match the prices ({ratio_text(exact)})"
            )
    terms["risk_reward_ratio"] = ratio_text(exact)


def profit_percent(action: str | None, entry: Decimal | None, exit_: Decimal | None) -> Decimal:
    """Percent gained by following a BUY or SELL call from `entry` to `exit_`."""
    if action not in ("BUY", "SELL") or entry is None or exit_ is None:
        raise ValueError("profit is defined for a BUY or SELL call with both prices")
    moved = exit_ - entry if action == "BUY" else entry - exit_
    return _rounded(moved / entry * 100, 2)


# --- tier limits: posts_per_day ------------------------------------------------------------

# The day a tier's posts_per_day counts is the calendar day in India (IST, UTC+05:30): the
# platform's market, currency and analysts are Indian, and a trading day starts there.
POSTING_DAY_ZONE = "Asia/Kolkata"

# Which of the analyst's tiers a post reaches, by its audience: a 'free' post is for the free
# tier, a 'paid' one for the paid tiers, 'both' for every tier ($2 = the audience, `t` a tier).
_REACHES = (
    "(CASE WHEN t.is_free_tier THEN {audience} IN ('free', 'both')"
    " ELSE {audience} IN ('paid', 'both') END)"
)
_DAILY_LIMITS = f"""
WITH day AS (
    SELECT (date_trunc('day', now() AT TIME ZONE '{POSTING_DAY_ZONE}')
            AT TIME ZONE '{POSTING_DAY_ZONE}') AS starts
)
SELECT t.id, t.tier_name, t.posts_per_day, day.starts + interval '1 day' AS resets_at,
       greatest(1, ceil(extract(epoch FROM day.starts + interval '1 day' - now()) * 1000))::bigint
           AS retry_ms,
       (SELECT count(*) FROM analyst.posts p
         WHERE p.analyst_id = $1 AND p.created_at >= day.starts
           AND ($3::uuid IS NULL OR p.id <> $3)
           AND {_REACHES.format(audience="p.audience")}) AS used
  FROM analyst.subscription_tiers t CROSS JOIN day
 WHERE t.analyst_id = $1 AND t.is_active AND t.deleted_at IS NULL
   AND t.posts_per_day IS NOT NULL AND {_REACHES.format(audience="$2::text")}
 ORDER BY t.posts_per_day, t.tier_order, t.id
"""


async def check_daily_limits(
    conn: asyncpg.Connection,
    analyst_id: uuid.UUID,
    audience: str,
    *,
    excluding: uuid.UUID | None = None,
) -> None:
    """Raise RateLimited (429) when a post for `audience` would exceed the posts_per_day of an
    active tier it reaches: the tier has already received that many of the analyst's posts
    this IST day (soft-deleted ones included: posting is what is limited, as in chat).
    `excluding` leaves one post out of the count (an edit that widens its audience). Call it
    under the analyst's posting lock (`lock_posting`), in the transaction that writes."""
    for tier in await conn.fetch(_DAILY_LIMITS, analyst_id, audience, excluding):
        if tier["used"] >= tier["posts_per_day"]:
            limited = RateLimited(
                f"daily post limit reached: tier {tier['tier_name']!r} gets at most"
                f" {tier['posts_per_day']} post(s) a day (IST) and has had {tier['used']} today;"
                f" a post for audience {audience!r} reaches it",
                retry_after_ms=int(tier["retry_ms"]),
            )
            limited.details.update(
                tier_id=str(tier["id"]),
                tier_name=tier["tier_name"],
                posts_per_day=tier["posts_per_day"],
                used_today=int(tier["used"]),
                resets_at=tier["resets_at"].isoformat(),
            )
            raise limited


async def lock_posting(conn: asyncpg.Connection, analyst_id: uuid.UUID) -> None:
    """Serialise one analyst's publishing until the transaction ends, so two posts sent at
    once cannot both take a tier's last post of the day."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"posting:{analyst_id}"
    )


# --- events ---------------------------------------------------------------------------------


async def _announce(conn: asyncpg.Connection, post: PostOut, *, urgent: bool) -> None:
    """Notify the analyst's active subscribers who may read `post` (paid: paid tiers only)."""
    recipients: notify.Audience | list[uuid.UUID]
    if post.audience == "paid":
        recipients = [
            r["user_id"]
            for r in await conn.fetch(
                """SELECT s.user_id FROM analyst.subscriptions s
                     JOIN analyst.subscription_tiers t ON t.id = s.tier_id
                    WHERE s.analyst_id = $1 AND s.status = 'active' AND s.deleted_at IS NULL
                      AND (s.expires_at IS NULL OR s.expires_at > now())
                      AND NOT t.is_free_tier""",
                post.analyst_id,
            )
        ]
    else:
        recipients = notify.subscribers_of(post.analyst_id)
    name = await conn.fetchval(
        "SELECT display_name FROM analyst.analyst_profiles WHERE user_id = $1", post.analyst_id
    )
    await notify.notify(
        conn,
        event_key=f"post:{post.id}:{'urgent' if urgent else 'published'}",
        recipients=recipients,
        notification_type="urgent_post" if urgent else "new_post",
        title=(f"Urgent from {name}" if urgent else f"New post from {name}")[:255],
        message=post.title,
        action_url=f"/posts/{post.id}",
        related_entity_type="post",
        related_entity_id=post.id,
        priority="urgent" if urgent else "medium",
    )


# --- routes: static paths first ---------------------------------------------------------------


@endpoint(
    routes,
    "POST",
    "/v1/posts",
    summary="Publish a post or a call (analysts)",
    tag="posts",
    body=PostCreate,
    response=PostOut,
    status=201,
    errors=(403, 429),
)
async def create_post(request: web.Request, body: PostCreate) -> PostOut:
    """429 when the post would exceed the daily post limit (posts_per_day) of one of the
    analyst's active tiers its audience reaches; details name the tier and when the day
    resets (docs/api-notes-analyst-finish.md)."""
    who = await caller(request)
    if who.user_type != "analyst":
        raise Forbidden("only analysts publish posts")
    terms = {name: getattr(body, name) for name in ("post_type", "stock_symbol", *_CALL_ONLY)}
    if terms["stock_symbol"] is not None:
        terms["stock_symbol"] = terms["stock_symbol"].upper()
    check_call(terms)
    is_call = body.post_type == "call"
    title = body.title or (f"{terms['stock_symbol']} call" if is_call else None)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await lock_posting(conn, who.user_id)
        await check_daily_limits(conn, who.user_id, body.audience)
        post_id = await conn.fetchval(
            """INSERT INTO analyst.posts (analyst_id, post_type, audience, title, content,
                   content_formatted, strategy_type, stock_symbol, action, entry_price,
                   target_price, stop_loss, risk_reward_ratio, confidence_level, call_status,
                   is_urgent, is_pinned)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
               RETURNING id""",
            who.user_id,
            body.post_type,
            body.audience,
            title,
            body.content,
            body.content_formatted,
            body.strategy_type,
            terms["stock_symbol"],
            terms["action"],
            terms["entry_price"],
            terms["target_price"],
            terms["stop_loss"],
            terms["risk_reward_ratio"],
            terms["confidence_level"],
            "open" if is_call else None,
            body.is_urgent,
            body.is_pinned,
        )
        post = await visible_post(conn, who, post_id)
        await _announce(conn, post, urgent=post.is_urgent)
    return post


@endpoint(
    routes,
    "GET",
    "/v1/posts/search",
    summary="Full-text search over the posts the caller may read",
    tag="posts",
    query=SearchQuery,
    response=Page[PostOut],
)
async def search_posts(request: web.Request, query: SearchQuery) -> Page[PostOut]:
    """Newest first. Posts locked for the caller are left out, since a match would reveal
    their content."""
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID) or (None, None)
    rows = await request.app[POOL].fetch(
        f"""{SELECT_POSTS}
            WHERE to_tsvector('english', coalesce(p.title, '') || ' ' || p.content)
                  @@ websearch_to_tsquery('english', $3)
              AND p.deleted_at IS NULL AND NOT {LOCKED}
              AND ($4::timestamptz IS NULL OR (p.created_at, p.id) < ($4, $5::uuid))
            ORDER BY p.created_at DESC, p.id DESC LIMIT $6""",
        who.user_id,
        who.is_admin,
        query.q,
        *after,
        query.limit + 1,
    )
    return page_of([post_out(r) for r in rows], query.limit, lambda p: (p.created_at, p.id))


@endpoint(
    routes,
    "GET",
    "/v1/feed",
    summary="Posts of the analysts the caller actively subscribes to, newest first",
    tag="posts",
    query=PageQuery,
    response=Page[PostOut],
)
async def feed(request: web.Request, query: PageQuery) -> Page[PostOut]:
    who = await caller(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID) or (None, None)
    rows = await request.app[POOL].fetch(
        f"""{SELECT_POSTS}
            WHERE p.analyst_id IN (
                      SELECT s.analyst_id FROM analyst.subscriptions s
                       WHERE s.user_id = $1 AND s.status = 'active' AND s.deleted_at IS NULL
                         AND (s.expires_at IS NULL OR s.expires_at > now()))
              AND p.deleted_at IS NULL
              AND ($3::timestamptz IS NULL OR (p.created_at, p.id) < ($3, $4::uuid))
            ORDER BY p.created_at DESC, p.id DESC LIMIT $5""",
        who.user_id,
        who.is_admin,
        *after,
        query.limit + 1,
    )
    return page_of([post_out(r) for r in rows], query.limit, lambda p: (p.created_at, p.id))


@endpoint(
    routes,
    "GET",
    "/v1/analysts/{analyst_id}/posts",
    summary="An analyst's timeline: pinned posts first, then newest first",
    tag="posts",
    query=TimelineQuery,
    response=Page[PostOut],
    errors=(404,),
)
async def timeline(request: web.Request, query: TimelineQuery) -> Page[PostOut]:
    who = await caller(request)
    analyst_id = path_uuid(request, "analyst_id")
    after = decode_cursor(query.cursor, bool, datetime, uuid.UUID) or (None, None, None)
    async with request.app[POOL].acquire() as conn:
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM analyst.users WHERE id = $1"
            " AND user_type = 'analyst' AND deleted_at IS NULL)",
            analyst_id,
        ):
            raise NotFound("analyst not found")
        rows = await conn.fetch(
            f"""{SELECT_POSTS}
                WHERE p.analyst_id = $3 AND p.deleted_at IS NULL
                  AND ($4::text IS NULL OR p.post_type = $4)
                  AND ($5::boolean IS NULL
                       OR (p.is_pinned, p.created_at, p.id) < ($5, $6::timestamptz, $7::uuid))
                ORDER BY p.is_pinned DESC, p.created_at DESC, p.id DESC LIMIT $8""",
            who.user_id,
            who.is_admin,
            analyst_id,
            query.post_type,
            *after,
            query.limit + 1,
        )
    return page_of(
        [post_out(r) for r in rows], query.limit, lambda p: (p.is_pinned, p.created_at, p.id)
    )


@endpoint(
    routes,
    "GET",
    "/v1/posts/{id}",
    summary="One post; counts a view unless the caller wrote it",
    tag="posts",
    response=PostOut,
    errors=(404,),
)
async def get_post(request: web.Request) -> PostOut:
    who = await caller(request)
    post_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn:
        await conn.execute(
            "UPDATE analyst.posts SET views_count = views_count + 1"
            " WHERE id = $1 AND deleted_at IS NULL AND analyst_id <> $2",
            post_id,
            who.user_id,
        )
        return await visible_post(conn, who, post_id)


async def _own_post_for_update(
    conn: asyncpg.Connection, who: Caller, post_id: uuid.UUID
) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT * FROM analyst.posts WHERE id = $1 AND deleted_at IS NULL FOR UPDATE", post_id
    )
    if row is None:
        raise NotFound("post not found")
    if row["analyst_id"] != who.user_id:
        raise Forbidden("only the post's analyst may change it")
    return row


@endpoint(
    routes,
    "PATCH",
    "/v1/posts/{id}",
    summary="Edit one's own post",
    tag="posts",
    body=PostUpdate,
    response=PostOut,
    errors=(403, 404, 409, 429),
)
async def update_post(request: web.Request, body: PostUpdate) -> PostOut:
    """Changing the audience of a post published today counts it, from then on, against the
    daily limits of the tiers it then reaches (429 when one of them is full)."""
    who = await caller(request)
    post_id = path_uuid(request)
    changes = {
        name: value for name, value in msgspec.structs.asdict(body).items() if value is not UNSET
    }
    if isinstance(changes.get("stock_symbol"), str):
        changes["stock_symbol"] = changes["stock_symbol"].upper()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _own_post_for_update(conn, who, post_id)
        audience = changes.get("audience", row["audience"])
        if audience != row["audience"]:
            await lock_posting(conn, who.user_id)
            if await conn.fetchval(
                f"SELECT $1::timestamptz >= date_trunc('day', now() AT TIME ZONE"
                f" '{POSTING_DAY_ZONE}') AT TIME ZONE '{POSTING_DAY_ZONE}'",
                row["created_at"],
            ):
                await check_daily_limits(conn, who.user_id, audience, excluding=post_id)
        prices = {"entry_price", "target_price", "stop_loss", "risk_reward_ratio"} & set(changes)
        frozen = sorted(prices | ({"stock_symbol"} & set(changes)))
        if frozen and row["call_status"] not in (None, "open"):
            raise Conflict(
                f"the call is {row['call_status']}; {', '.join(frozen)} can no longer change"
            )
        terms = {name: row[name] for name in ("post_type", "stock_symbol", *_CALL_ONLY)}
        if terms.keys() & changes.keys():
            recompute = bool(prices) and row["action"] in ("BUY", "SELL")
            if recompute:  # the ratio follows the prices; a given one is only checked
                terms["risk_reward_ratio"] = None
            terms.update({k: v for k, v in changes.items() if k in terms})
            check_call(terms)
            changes.update(
                {k: terms[k] for k in _CALL_ONLY if k in changes}
                | ({"risk_reward_ratio": terms["risk_reward_ratio"]} if recompute else {})
            )
        if changes:
            assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=2))
            await conn.execute(
                f"UPDATE analyst.posts SET {assignments} WHERE id = $1", post_id, *changes.values()
            )
        post = await visible_post(conn, who, post_id)
        if post.is_urgent and not row["is_urgent"]:
            await _announce(conn, post, urgent=True)
    return post


@endpoint(
    routes,
    "DELETE",
    "/v1/posts/{id}",
    summary="Delete a post (its analyst, or an admin); soft delete",
    tag="posts",
    status=204,
    errors=(403, 404),
)
async def delete_post(request: web.Request) -> None:
    who = await caller(request)
    post_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        author = await conn.fetchval(
            "SELECT analyst_id FROM analyst.posts WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
            post_id,
        )
        if author is None:
            raise NotFound("post not found")
        if author != who.user_id and not who.is_admin:
            raise Forbidden("only the post's analyst or an admin may delete it")
        await conn.execute("UPDATE analyst.posts SET deleted_at = now() WHERE id = $1", post_id)


@endpoint(
    routes,
    "POST",
    "/v1/posts/{id}/call-status",
    summary="Record the outcome of one's own open call",
    tag="posts",
    body=CallOutcome,
    response=PostOut,
    errors=(403, 404, 409),
)
async def set_call_status(request: web.Request, body: CallOutcome) -> PostOut:
    """open -> target_hit | stop_loss_hit | closed | expired, once. The exit price is required
    except for expired; the actual entry defaults to the call's entry price. The profit is
    computed for BUY and SELL calls when both actual prices are known."""
    who = await caller(request)
    post_id = path_uuid(request)
    exit_price = _money("actual_exit_price", body.actual_exit_price)
    if exit_price is None and body.call_status != "expired":
        raise BadRequest(f"actual_exit_price is required for {body.call_status}")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _own_post_for_update(conn, who, post_id)
        if row["post_type"] != "call":
            raise BadRequest("only a call has a call_status")
        if row["call_status"] != "open":
            raise Conflict(f"the call is already {row['call_status']}; it cannot change again")
        entry_price = _money("actual_entry_price", body.actual_entry_price) or row["entry_price"]
        profit = None
        if row["action"] in ("BUY", "SELL") and entry_price is not None and exit_price is not None:
            profit = profit_percent(row["action"], entry_price, exit_price)
            if abs(profit) >= 10_000:
                raise BadRequest("actual_profit_percent would be over 9999.99%; check the prices")
        await conn.execute(
            """UPDATE analyst.posts
                  SET call_status = $2, actual_entry_price = $3, actual_exit_price = $4,
                      actual_profit_percent = $5, closed_at = now()
                WHERE id = $1""",
            post_id,
            body.call_status,
            entry_price,
            exit_price,
            profit,
        )
        return await visible_post(conn, who, post_id)
