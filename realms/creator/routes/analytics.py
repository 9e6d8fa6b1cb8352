"""/v1/creator/analytics: a creator's own analytics over a period: revenue (the hourly and daily
rollups in creator.revenue_analytics, kept by the creator_revenue_rollup job) with totals,
their content's engagement (creator.content_analytics) and their audience (creator.
user_analytics events aimed at them, followers, subscribers). Creators read their own; staff
may name a creator; anyone else 403."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from aiohttp import web
from msgspec import Meta, Struct, field

from kernel.errors import BadRequest, Forbidden, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.creator.accounts import current_account

routes = web.RouteTableDef()

TAG = "creator analytics"
# RFC 3339 with an offset (no leap seconds, no year 0000, no day past its month's end; 29
# February left out as most years have none), read as a string so a bare number is refused.
_DAY = (
    "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    "|02-(0[1-9]|1[0-9]|2[0-8]))"
)
_TIME = (
    "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
Instant = Annotated[
    str,
    Meta(
        pattern=f"^(?!0000)[0-9]{{4}}-{_DAY}T{_TIME}$",
        description="RFC 3339 date-time with an offset, e.g. 2025-01-31T00:00:00Z",
    ),
]
# The widest window one request reads, per grain (a year of days, a month of hours).
MAX_SPAN = {"day": timedelta(days=366), "hour": timedelta(days=31)}
DEFAULT_SPAN = {"day": timedelta(days=30), "hour": timedelta(hours=48)}


class PeriodQuery(Struct, kw_only=True):
    """`from`/`to` (ISO 8601 with a zone) bound the window; defaults: the last 30 days."""

    creator_id: uuid.UUID | None = None
    from_: Instant | None = field(default=None, name="from")
    to: Instant | None = None


class RevenueQuery(PeriodQuery, kw_only=True):
    period: Literal["hour", "day"] = "day"


class ContentQuery(PeriodQuery, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=100)] = 20


class Money(Struct, kw_only=True):
    currency: str
    gross_amount: int
    platform_fee: int
    net_amount: int
    transaction_count: int


class RevenueRow(Money, kw_only=True):
    period_start: datetime
    revenue_type: str


class RevenueByType(Money, kw_only=True):
    revenue_type: str


class Revenue(Struct, kw_only=True):
    creator_id: uuid.UUID
    period: str
    start: datetime
    end: datetime
    totals: list[Money]
    by_type: list[RevenueByType]
    series: list[RevenueRow]


class ContentStats(Struct, kw_only=True):
    content_id: uuid.UUID
    title: str | None
    content_type: str
    views: int
    unique_viewers: int
    view_seconds: int
    likes: int
    unlikes: int
    shares: int
    comments: int
    downloads: int
    purchases: int


class ContentReport(Struct, kw_only=True):
    creator_id: uuid.UUID
    start: datetime
    end: datetime
    totals: dict[str, int]
    items: list[ContentStats]


class CountOf(Struct, kw_only=True):
    key: str
    count: int


class Audience(Struct, kw_only=True):
    creator_id: uuid.UUID
    start: datetime
    end: datetime
    followers: int
    active_subscribers: int
    events: list[CountOf]
    countries: list[CountOf]
    devices: list[CountOf]


async def _subject(request: web.Request, asked: uuid.UUID | None) -> uuid.UUID:
    """Whose analytics: the calling creator's own; staff name any creator; others 403."""
    me = await current_account(request)
    if me.is_staff and asked is not None:
        kind = await request.app[POOL].fetchval(
            "SELECT account_type FROM creator.users WHERE id = $1", asked
        )
        if kind != "creator":
            raise NotFound(f"no creator {asked}")
        return asked
    if not me.is_creator or (asked is not None and asked != me.id):
        raise Forbidden("analytics are for the creator they describe")
    return me.id


def _instant(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadRequest(f"`{name}` is not a date-time this API can hold") from None


def _before(end: datetime, span: timedelta) -> datetime:
    try:
        return end - span
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def _window(query: PeriodQuery, grain: str = "day") -> tuple[datetime, datetime]:
    """[start, end) of the query: `to` (default now) and `from` (default a grain's default
    span before it), clamped to at most MAX_SPAN before `to`; a `from` after `to` reads an
    empty window. The answer states the window it read."""
    end = _instant(query.to, "to") or datetime.now(UTC)
    start = _instant(query.from_, "from") or _before(end, DEFAULT_SPAN[grain])
    return min(max(start, _before(end, MAX_SPAN[grain])), end), end


_SERIES = """
SELECT period_start, revenue_type, currency, gross_amount, platform_fee, net_amount,
       transaction_count
  FROM creator.revenue_analytics
 WHERE creator_id = $1 AND period_type = $2
   AND period_start >= date_trunc($2, $3::timestamptz, 'UTC') AND period_start < $4
 ORDER BY period_start, revenue_type, currency
"""


def _totals(series: list[RevenueRow]) -> tuple[list[Money], list[RevenueByType]]:
    """Sums of the series per currency, and per revenue type and currency."""
    totals: dict[str, Money] = {}
    by_type: dict[tuple[str, str], RevenueByType] = {}
    for row in series:
        zero = {"gross_amount": 0, "platform_fee": 0, "net_amount": 0, "transaction_count": 0}
        total = totals.setdefault(row.currency, Money(currency=row.currency, **zero))
        typed = by_type.setdefault(
            (row.revenue_type, row.currency),
            RevenueByType(revenue_type=row.revenue_type, currency=row.currency, **zero),
        )
        for acc in (total, typed):
            acc.gross_amount += row.gross_amount
            acc.platform_fee += row.platform_fee
            acc.net_amount += row.net_amount
            acc.transaction_count += row.transaction_count
    return [totals[k] for k in sorted(totals)], [by_type[k] for k in sorted(by_type)]


@endpoint(
    routes,
    "GET",
    "/v1/analytics/revenue",
    summary="Revenue per hour or day (from the rollups) with totals per currency and per"
    " revenue type; query `from`, `to`, `period`",
    tag=TAG,
    query=RevenueQuery,
    response=Revenue,
    errors=(400, 403, 404),
)
async def revenue(request: web.Request, query: RevenueQuery) -> Revenue:
    creator = await _subject(request, query.creator_id)
    start, end = _window(query, query.period)
    rows = await request.app[POOL].fetch(_SERIES, creator, query.period, start, end)
    series = [RevenueRow(**dict(r)) for r in rows]
    totals, by_type = _totals(series)
    return Revenue(
        creator_id=creator,
        period=query.period,
        start=start,
        end=end,
        totals=totals,
        by_type=by_type,
        series=series,
    )


_CONTENT = """
SELECT c.id AS content_id, c.title, c.content_type,
       count(*) FILTER (WHERE a.event_type = 'view') AS views,
       count(DISTINCT a.user_id) FILTER (WHERE a.event_type = 'view') AS unique_viewers,
       coalesce(sum(a.view_duration_seconds), 0)::bigint AS view_seconds,
       count(*) FILTER (WHERE a.event_type = 'like') AS likes,
       count(*) FILTER (WHERE a.event_type = 'unlike') AS unlikes,
       count(*) FILTER (WHERE a.event_type = 'share') AS shares,
       count(*) FILTER (WHERE a.event_type = 'comment') AS comments,
       count(*) FILTER (WHERE a.event_type = 'download') AS downloads,
       count(*) FILTER (WHERE a.event_type = 'purchase') AS purchases
  FROM creator.content c
  JOIN creator.content_analytics a ON a.content_id = c.id
 WHERE c.creator_id = $1 AND a.created_at >= $2 AND a.created_at < $3
 GROUP BY c.id
 ORDER BY views DESC, c.id
"""


@endpoint(
    routes,
    "GET",
    "/v1/analytics/content",
    summary="Engagement of the creator's content in a window (views, unique viewers, watch"
    " seconds, likes, shares, comments, downloads, purchases), most viewed first, with totals",
    tag=TAG,
    query=ContentQuery,
    response=ContentReport,
    errors=(400, 403, 404),
)
async def content(request: web.Request, query: ContentQuery) -> ContentReport:
    creator = await _subject(request, query.creator_id)
    start, end = _window(query)
    rows = await request.app[POOL].fetch(_CONTENT, creator, start, end)
    stats = [ContentStats(**dict(r)) for r in rows]
    counted = ("views", "view_seconds", "likes", "unlikes", "shares", "comments", "downloads")
    totals = {name: sum(getattr(s, name) for s in stats) for name in (*counted, "purchases")}
    return ContentReport(
        creator_id=creator, start=start, end=end, totals=totals, items=stats[: query.limit]
    )


_AUDIENCE_COUNTS = """
SELECT kind, key, count FROM (
    SELECT 'event' AS kind, event_type AS key, count(*) AS count
      FROM creator.user_analytics
     WHERE target_user_id = $1 AND created_at >= $2 AND created_at < $3
     GROUP BY event_type
    UNION ALL
    SELECT 'country', coalesce(country, '??'), count(*)
      FROM creator.user_analytics
     WHERE target_user_id = $1 AND created_at >= $2 AND created_at < $3
     GROUP BY country
    UNION ALL
    SELECT 'device', coalesce(device_type, 'unknown'), count(*)
      FROM creator.user_analytics
     WHERE target_user_id = $1 AND created_at >= $2 AND created_at < $3
     GROUP BY device_type
) x ORDER BY kind, count DESC, key
"""


@endpoint(
    routes,
    "GET",
    "/v1/analytics/audience",
    summary="The creator's audience: followers and active subscribers now, and the events"
    " aimed at them in a window (profile views, subscriptions, tips...) by type, country, device",
    tag=TAG,
    query=PeriodQuery,
    response=Audience,
    errors=(400, 403, 404),
)
async def audience(request: web.Request, query: PeriodQuery) -> Audience:
    creator = await _subject(request, query.creator_id)
    start, end = _window(query)
    pool = request.app[POOL]
    now = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM creator.follows"
        "         WHERE following_id = $1 AND unfollowed_at IS NULL) AS followers,"
        " (SELECT count(DISTINCT subscriber_id) FROM creator.subscriptions"
        "   WHERE creator_id = $1 AND status IN ('active', 'cancelled')"
        "     AND (expires_at IS NULL OR expires_at > now())) AS active_subscribers",
        creator,
    )
    grouped: dict[str, list[CountOf]] = {"event": [], "country": [], "device": []}
    for r in await pool.fetch(_AUDIENCE_COUNTS, creator, start, end):
        grouped[r["kind"]].append(CountOf(key=r["key"], count=r["count"]))
    return Audience(
        creator_id=creator,
        start=start,
        end=end,
        followers=now["followers"],
        active_subscribers=now["active_subscribers"],
        events=grouped["event"],
        countries=grouped["country"],
        devices=grouped["device"],
    )
