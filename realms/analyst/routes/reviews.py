"""/v1/analysts/{analyst_id}/reviews and /v1/reviews: subscribers of 30 days or more rate an
analyst once, the analyst answers once, other users vote on helpfulness, admins moderate.
avg_rating and total_reviews are kept by the database trigger."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel import notify
from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.web.auth import Caller, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid

routes = web.RouteTableDef()

MIN_SUBSCRIBED_DAYS = 30

Rating = Annotated[int, Meta(ge=1, le=5)]
ReviewTitle = Annotated[str, Meta(min_length=1, max_length=255)]
ReviewText = Annotated[str, Meta(min_length=1, max_length=5000)]
Reason = Annotated[str, Meta(min_length=1, max_length=1000)]


class ReviewCreate(Struct, forbid_unknown_fields=True):
    rating: Rating
    review_title: ReviewTitle | None = None
    review_text: ReviewText | None = None


class ReviewUpdate(Struct, forbid_unknown_fields=True):
    """Only the fields given change; null clears the title or the text."""

    rating: Rating | UnsetType = UNSET
    review_title: ReviewTitle | UnsetType | None = UNSET
    review_text: ReviewText | UnsetType | None = UNSET


class AnalystResponse(Struct, forbid_unknown_fields=True):
    response: Annotated[str, Meta(min_length=1, max_length=2000)]


class HelpfulnessVote(Struct, forbid_unknown_fields=True):
    vote: Literal["up", "down"]


class Moderation(Struct, forbid_unknown_fields=True):
    """hide: is_approved false (off the analyst's page and out of the rating); flag: marked
    for attention with a reason, still shown; restore: approved, unflagged, reason cleared."""

    # flagging needs a reason
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "anyOf": [
                {"properties": {"action": {"enum": ["hide", "restore"]}}},
                {"required": ["reason"], "properties": {"reason": {"not": {"type": "null"}}}},
            ]
        },
    )
    action: Literal["hide", "flag", "restore"]
    reason: Reason | None = None


class ReviewListQuery(PageQuery, kw_only=True):
    include_hidden: Annotated[bool, Meta(description="admins only: also hidden reviews")] = False


class ReviewOut(Struct):
    """The moderation fields (is_flagged, flagged_reason, moderated_by, moderated_at) are
    null unless the caller is an admin."""

    id: uuid.UUID
    user_id: uuid.UUID
    analyst_id: uuid.UUID
    rating: int
    review_title: str | None
    review_text: str | None
    is_verified_subscriber: bool | None
    subscription_duration_days: int | None
    is_approved: bool
    helpfulness_upvotes: int
    helpfulness_downvotes: int
    analyst_response: str | None
    analyst_response_at: datetime | None
    created_at: datetime
    updated_at: datetime
    is_flagged: bool | None = None
    flagged_reason: str | None = None
    moderated_by: uuid.UUID | None = None
    moderated_at: datetime | None = None


_MODERATION = ("is_flagged", "flagged_reason", "moderated_by", "moderated_at")
_COLUMNS = ", ".join(ReviewOut.__struct_fields__)

# The caller's subscriptions to the analyst that were ever paid for, with how many whole days
# each ran: from start_date to the earliest of now, its expiry and (by status) its
# cancellation or suspension. `current`: one of them is active and unexpired now.
_TENURE = """
SELECT max(floor(extract(epoch FROM
           CASE s.status WHEN 'cancelled' THEN least(now(), s.expires_at, s.cancelled_at)
                         WHEN 'suspended' THEN least(now(), s.expires_at, s.suspended_at)
                         ELSE least(now(), s.expires_at) END - s.start_date) / 86400))::int AS days,
       coalesce(bool_or(s.status = 'active'
                        AND (s.expires_at IS NULL OR s.expires_at > now())), false) AS current
  FROM analyst.subscriptions s
 WHERE s.user_id = $1 AND s.analyst_id = $2 AND s.deleted_at IS NULL
   AND s.status IN ('active', 'cancelled', 'expired', 'suspended') AND s.start_date IS NOT NULL
"""


def _review_out(row: asyncpg.Record, who: Caller) -> ReviewOut:
    values = {name: row[name] for name in ReviewOut.__struct_fields__}
    if not who.is_admin:
        values.update(dict.fromkeys(_MODERATION))
    return ReviewOut(**values)


async def _live_review(
    conn: asyncpg.Connection, review_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.reviews WHERE id = $1 AND deleted_at IS NULL"
        + (" FOR UPDATE" if lock else ""),
        review_id,
    )
    if row is None:
        raise NotFound("review not found")
    return row


def _may_see(row: asyncpg.Record, who: Caller) -> bool:
    """Approved reviews are public; a hidden one only to its author, its analyst and admins."""
    return (
        bool(row["is_approved"])
        or who.is_admin
        or who.user_id
        in (
            row["user_id"],
            row["analyst_id"],
        )
    )


async def _require_analyst(conn: asyncpg.Connection, analyst_id: uuid.UUID) -> None:
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM analyst.users WHERE id = $1"
        " AND user_type = 'analyst' AND deleted_at IS NULL)",
        analyst_id,
    ):
        raise NotFound("analyst not found")


@endpoint(
    routes,
    "POST",
    "/v1/analysts/{analyst_id}/reviews",
    summary="Review an analyst after 30 days of subscription (once)",
    tag="reviews",
    body=ReviewCreate,
    response=ReviewOut,
    status=201,
    errors=(403, 404, 409),
)
async def create_review(request: web.Request, body: ReviewCreate) -> ReviewOut:
    who = await caller(request)
    analyst_id = path_uuid(request, "analyst_id")
    if analyst_id == who.user_id:
        raise BadRequest("you cannot review yourself")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _require_analyst(conn, analyst_id)
        tenure = await conn.fetchrow(_TENURE, who.user_id, analyst_id)
        if tenure["days"] is None or tenure["days"] < MIN_SUBSCRIBED_DAYS:
            raise Forbidden(
                f"you can review an analyst after {MIN_SUBSCRIBED_DAYS} days of subscription"
            )
        try:
            row = await conn.fetchrow(
                f"""INSERT INTO analyst.reviews (user_id, analyst_id, rating, review_title,
                        review_text, is_verified_subscriber, subscription_duration_days)
                    VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}""",
                who.user_id,
                analyst_id,
                body.rating,
                body.review_title,
                body.review_text,
                tenure["current"],
                tenure["days"],
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("you have already reviewed this analyst") from None
        await notify.notify(
            conn,
            event_key=f"review:{row['id']}:created",
            recipients=[analyst_id],
            notification_type="new_review",
            title=f"New {body.rating}-star review",
            message=body.review_title,
            action_url=f"/analysts/{analyst_id}/reviews",
            related_entity_type="review",
            related_entity_id=row["id"],
        )
    return _review_out(row, who)


@endpoint(
    routes,
    "GET",
    "/v1/analysts/{analyst_id}/reviews",
    summary="An analyst's approved reviews, newest first",
    tag="reviews",
    query=ReviewListQuery,
    response=Page[ReviewOut],
    errors=(403, 404),
)
async def list_reviews(request: web.Request, query: ReviewListQuery) -> Page[ReviewOut]:
    who = await caller(request)
    analyst_id = path_uuid(request, "analyst_id")
    if query.include_hidden and not who.is_admin:
        raise Forbidden("only admins may list hidden reviews")
    after = decode_cursor(query.cursor, datetime, uuid.UUID) or (None, None)
    async with request.app[POOL].acquire() as conn:
        await _require_analyst(conn, analyst_id)
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM analyst.reviews
                 WHERE analyst_id = $1 AND deleted_at IS NULL AND (is_approved OR $2)
                   AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
                 ORDER BY created_at DESC, id DESC LIMIT $5""",
            analyst_id,
            query.include_hidden,
            *after,
            query.limit + 1,
        )
    return page_of([_review_out(r, who) for r in rows], query.limit, lambda r: (r.created_at, r.id))


@endpoint(
    routes,
    "GET",
    "/v1/reviews/{id}",
    summary="One review",
    tag="reviews",
    response=ReviewOut,
    errors=(404,),
)
async def get_review(request: web.Request) -> ReviewOut:
    who = await caller(request)
    async with request.app[POOL].acquire() as conn:
        row = await _live_review(conn, path_uuid(request, "id"))
    if not _may_see(row, who):
        raise NotFound("review not found")
    return _review_out(row, who)


@endpoint(
    routes,
    "PATCH",
    "/v1/reviews/{id}",
    summary="Edit one's own review",
    tag="reviews",
    body=ReviewUpdate,
    response=ReviewOut,
    errors=(403, 404),
)
async def update_review(request: web.Request, body: ReviewUpdate) -> ReviewOut:
    who = await caller(request)
    review_id = path_uuid(request, "id")
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not UNSET}
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _live_review(conn, review_id, lock=True)
        if row["user_id"] != who.user_id:
            raise Forbidden("only its author may edit a review")
        if changes:
            assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=2))
            row = await conn.fetchrow(
                f"UPDATE analyst.reviews SET {assignments} WHERE id = $1 RETURNING {_COLUMNS}",
                review_id,
                *changes.values(),
            )
    return _review_out(row, who)


@endpoint(
    routes,
    "DELETE",
    "/v1/reviews/{id}",
    summary="Delete one's own review (soft delete; frees the slot for a new review)",
    tag="reviews",
    status=204,
    errors=(403, 404),
)
async def delete_review(request: web.Request) -> None:
    who = await caller(request)
    review_id = path_uuid(request, "id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _live_review(conn, review_id, lock=True)
        if row["user_id"] != who.user_id:
            raise Forbidden("only its author may delete a review")
        await conn.execute("UPDATE analyst.reviews SET deleted_at = now() WHERE id = $1", review_id)


@endpoint(
    routes,
    "POST",
    "/v1/reviews/{id}/response",
    summary="The reviewed analyst's one public response",
    tag="reviews",
    body=AnalystResponse,
    response=ReviewOut,
    errors=(403, 404, 409),
)
async def respond(request: web.Request, body: AnalystResponse) -> ReviewOut:
    who = await caller(request)
    review_id = path_uuid(request, "id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _live_review(conn, review_id, lock=True)
        if row["analyst_id"] != who.user_id:
            raise Forbidden("only the reviewed analyst may respond")
        if row["analyst_response"] is not None:
            raise Conflict("this review already has a response")
        row = await conn.fetchrow(
            f"""UPDATE analyst.reviews SET analyst_response = $2, analyst_response_at = now()
                 WHERE id = $1 RETURNING {_COLUMNS}""",
            review_id,
            body.response,
        )
    return _review_out(row, who)


@endpoint(
    routes,
    "POST",
    "/v1/reviews/{id}/votes",
    summary="Vote a review helpful (up) or not (down); one vote per user, changeable",
    tag="reviews",
    body=HelpfulnessVote,
    response=ReviewOut,
    errors=(403, 404),
)
async def vote(request: web.Request, body: HelpfulnessVote) -> ReviewOut:
    """One vote per user and review (analyst.review_votes): voting again the same way
    changes nothing, the other way switches the vote. The counters follow the votes
    (database trigger), see docs/api-notes-analyst-finish.md."""
    who = await caller(request)
    review_id = path_uuid(request, "id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _live_review(conn, review_id)
        if not row["is_approved"]:
            raise NotFound("review not found")
        if who.user_id in (row["user_id"], row["analyst_id"]):
            raise Forbidden("the author and the reviewed analyst cannot vote on a review")
        await conn.execute(
            "INSERT INTO analyst.review_votes AS v (review_id, user_id, vote)"
            " VALUES ($1, $2, $3) ON CONFLICT (review_id, user_id)"
            " DO UPDATE SET vote = EXCLUDED.vote WHERE v.vote <> EXCLUDED.vote",
            review_id,
            who.user_id,
            body.vote,
        )
        row = await _live_review(conn, review_id)
    return _review_out(row, who)


@endpoint(
    routes,
    "DELETE",
    "/v1/reviews/{id}/votes",
    summary="Withdraw one's helpfulness vote on a review",
    tag="reviews",
    response=ReviewOut,
    errors=(404,),
)
async def withdraw_vote(request: web.Request) -> ReviewOut:
    """404 when the review is not live, or the caller has no vote on it."""
    who = await caller(request)
    review_id = path_uuid(request, "id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _live_review(conn, review_id)
        if not _may_see(row, who):
            raise NotFound("review not found")
        if (
            await conn.execute(
                "DELETE FROM analyst.review_votes WHERE review_id = $1 AND user_id = $2",
                review_id,
                who.user_id,
            )
            == "DELETE 0"
        ):
            raise NotFound("you have no vote on this review")
        row = await _live_review(conn, review_id)
    return _review_out(row, who)


@endpoint(
    routes,
    "POST",
    "/v1/reviews/{id}/moderation",
    summary="Hide, flag or restore a review (admins)",
    tag="reviews",
    body=Moderation,
    response=ReviewOut,
    errors=(403, 404),
)
async def moderate(request: web.Request, body: Moderation) -> ReviewOut:
    who = await caller(request)
    if not who.is_admin:
        raise Forbidden("admins only")
    review_id = path_uuid(request, "id")
    if body.action == "flag" and body.reason is None:
        raise BadRequest("reason is required to flag a review")
    assignments = {
        "hide": "is_approved = false, flagged_reason = coalesce($3, flagged_reason)",
        "flag": "is_flagged = true, flagged_reason = $3",
        "restore": "is_approved = true, is_flagged = false, flagged_reason = NULL",
    }[body.action]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _live_review(conn, review_id, lock=True)
        row = await conn.fetchrow(
            f"""UPDATE analyst.reviews
                   SET {assignments}, moderated_by = $2, moderated_at = now()
                 WHERE id = $1 RETURNING {_COLUMNS}""",
            review_id,
            who.user_id,
            *((body.reason,) if body.action != "restore" else ()),
        )
    return _review_out(row, who)
