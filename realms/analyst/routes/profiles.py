"""Analyst profiles: the analyst's own profile (/v1/me/profile), discovery and one profile
(/v1/analysts), and the admins' SEBI/RIA verification queue and decisions (/v1/admin)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from kernel.notify import notify
from kernel.web.auth import Caller, admin, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from kernel.web.paths import path_uuid

routes = web.RouteTableDef()

DisplayName = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"\S")]
Bio = Annotated[str, Meta(max_length=2000, description="Markdown, at most 2000 characters")]
Url = Annotated[str, Meta(max_length=500, pattern=r"^https?://\S+\Z")]
Tag = Annotated[str, Meta(min_length=1, max_length=50, pattern=r"\S")]
Tags = Annotated[list[Tag], Meta(max_length=20)]
Country = Annotated[str, Meta(pattern=r"^[A-Z]{2}\Z", description="ISO 3166-1 alpha-2")]
Registration = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=50,
        pattern=r"^\s*[A-Za-z0-9][A-Za-z0-9 ./-]*\s*\Z",
        description="stored trimmed and upper-cased; unique across analysts",
    ),
]
Reason = Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"\S")]


class VerificationDocument(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Metadata of one uploaded document (the file itself lives in object storage)."""

    document_type: Annotated[str, Meta(min_length=1, max_length=50, pattern=r"\S")]
    url: Url
    file_name: Annotated[str, Meta(max_length=255)] | None = None
    uploaded_at: datetime | None = None


Documents = Annotated[list[VerificationDocument], Meta(max_length=20)]


class ProfileCreate(Struct, forbid_unknown_fields=True):
    display_name: DisplayName
    bio: Bio | None = None
    photo_url: Url | None = None
    specializations: Tags | None = None
    languages: Tags | None = None
    country: Country = "IN"
    sebi_number: Registration | None = None
    ria_number: Registration | None = None
    verification_documents: Documents | None = None


class ProfileEdit(Struct, forbid_unknown_fields=True):
    """Only the fields present change; null clears a nullable field. Changing sebi_number,
    ria_number or verification_documents sends the profile (back) to 'pending'."""

    display_name: DisplayName | UnsetType = UNSET
    bio: Bio | UnsetType | None = UNSET
    photo_url: Url | UnsetType | None = UNSET
    specializations: Tags | UnsetType | None = UNSET
    languages: Tags | UnsetType | None = UNSET
    country: Country | UnsetType = UNSET
    sebi_number: Registration | UnsetType | None = UNSET
    ria_number: Registration | UnsetType | None = UNSET
    verification_documents: Documents | UnsetType | None = UNSET


class ProfileRejection(Struct, forbid_unknown_fields=True):
    rejection_reason: Reason


class AnalystDiscoveryQuery(PageQuery, kw_only=True):
    specialization: Tag | None = None
    language: Tag | None = None
    country: Country | None = None
    min_rating: Annotated[float, Meta(ge=0, le=5)] | None = None
    sort: Literal["rating", "subscribers"] = "rating"


class VerificationQueueQuery(PageQuery, kw_only=True):
    status: Literal["pending", "in_review"] | None = None


class ProfilePrivate(Struct):
    """What only the analyst and admins see."""

    verification_documents: list[dict[str, Any]] | None
    rejection_reason: str | None
    verified_by: uuid.UUID | None
    monthly_revenue: int
    commission_rate: float
    updated_at: datetime


class AnalystProfile(Struct):
    """An analyst's profile. The counters are maintained by triggers and jobs, never by
    clients. `private` is present only for the analyst and admins."""

    analyst_id: uuid.UUID
    display_name: str
    bio: str | None
    photo_url: str | None
    specializations: list[str]
    languages: list[str]
    country: str
    sebi_number: str | None
    ria_number: str | None
    verification_status: str
    verified_at: datetime | None
    avg_rating: float
    total_reviews: int
    total_subscribers: int
    active_subscribers: int
    total_posts: int
    is_featured: bool
    last_post_at: datetime | None
    created_at: datetime
    private: ProfilePrivate | None = None
    feature_position: int | None = None  # homepage order (1 first) while featured


_COLUMNS = (
    "p.user_id, p.display_name, p.bio, p.photo_url, p.specializations, p.languages, p.country,"
    " p.sebi_number, p.ria_number, p.verification_status, p.verified_at,"
    " p.avg_rating::float8 AS avg_rating, p.total_reviews, p.total_subscribers,"
    " p.active_subscribers, p.total_posts, p.is_featured, p.feature_position, p.last_post_at,"
    " p.created_at,"
    " p.verification_documents, p.rejection_reason, p.verified_by, p.monthly_revenue,"
    " p.commission_rate::float8 AS commission_rate, p.updated_at, p.deleted_at"
)
_PUBLIC = "p.verification_status = 'approved' AND p.deleted_at IS NULL"
_CREDENTIALS = ("sebi_number", "ria_number", "verification_documents")
_SORT_COLUMNS = {"rating": "avg_rating", "subscribers": "active_subscribers"}
_UNIQUE_MESSAGES = {
    "analyst_profiles_user_id_key": "you already have a profile (edit it with PATCH)",
    "analyst_profiles_sebi_number_key": "this SEBI number is registered to another analyst",
    "analyst_profiles_ria_number_key": "this RIA number is registered to another analyst",
}


def _profile(row: asyncpg.Record, *, private: bool) -> AnalystProfile:
    return AnalystProfile(
        analyst_id=row["user_id"],
        display_name=row["display_name"],
        bio=row["bio"],
        photo_url=row["photo_url"],
        specializations=list(row["specializations"] or []),
        languages=list(row["languages"] or []),
        country=row["country"],
        sebi_number=row["sebi_number"],
        ria_number=row["ria_number"],
        verification_status=row["verification_status"],
        verified_at=row["verified_at"],
        avg_rating=row["avg_rating"],
        total_reviews=row["total_reviews"],
        total_subscribers=row["total_subscribers"],
        active_subscribers=row["active_subscribers"],
        total_posts=row["total_posts"],
        is_featured=row["is_featured"],
        feature_position=row["feature_position"],
        last_post_at=row["last_post_at"],
        created_at=row["created_at"],
        private=ProfilePrivate(
            verification_documents=row["verification_documents"],
            rejection_reason=row["rejection_reason"],
            verified_by=row["verified_by"],
            monthly_revenue=row["monthly_revenue"],
            commission_rate=row["commission_rate"],
            updated_at=row["updated_at"],
        )
        if private
        else None,
    )


# For the other modules that list profiles (featuring): the same columns and view.
PROFILE_COLUMNS = _COLUMNS
PUBLIC_PROFILE = _PUBLIC
profile_out = _profile


def _registration(value: str | None) -> str | None:
    return value.strip().upper() if value is not None else None


def _constraint_error(exc: asyncpg.IntegrityConstraintViolationError) -> Exception:
    name = getattr(exc, "constraint_name", None) or ""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(_UNIQUE_MESSAGES.get(name, "this profile conflicts with another one"))
    return BadRequest(f"the profile breaks the rule `{name}`")


async def _analyst(request: web.Request) -> Caller:
    who = await caller(request)
    if who.user_type != "analyst":
        raise Forbidden("only analysts have profiles")
    return who


# --- the analyst's own profile ----------------------------------------------------------------


@endpoint(
    routes,
    "GET",
    "/v1/me/profile",
    summary="The caller's analyst profile, in any verification state",
    tag="profiles",
    response=AnalystProfile,
    errors=(404,),
)
async def own_profile(request: web.Request) -> AnalystProfile:
    who = await caller(request)
    row = await request.app[POOL].fetchrow(
        f"SELECT {_COLUMNS} FROM analyst.analyst_profiles p"
        " WHERE p.user_id = $1 AND p.deleted_at IS NULL",
        who.user_id,
    )
    if row is None:
        raise NotFound("you have no analyst profile")
    return _profile(row, private=True)


@endpoint(
    routes,
    "POST",
    "/v1/me/profile",
    summary="Create the caller's analyst profile (analysts without one)",
    tag="profiles",
    body=ProfileCreate,
    response=AnalystProfile,
    status=201,
    errors=(403, 409),
)
async def create_profile(request: web.Request, body: ProfileCreate) -> AnalystProfile:
    """The profile starts 'pending' verification; 409 if the analyst already has one."""
    who = await _analyst(request)
    try:
        row = await request.app[POOL].fetchrow(
            "INSERT INTO analyst.analyst_profiles AS p (user_id, display_name, bio, photo_url,"
            " specializations, languages, country, sebi_number, ria_number,"
            " verification_documents) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            f" RETURNING {_COLUMNS}",
            who.user_id,
            body.display_name.strip(),
            body.bio,
            body.photo_url,
            body.specializations,
            body.languages,
            body.country,
            _registration(body.sebi_number),
            _registration(body.ria_number),
            body.verification_documents,
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise _constraint_error(exc) from None
    return _profile(row, private=True)


@endpoint(
    routes,
    "PATCH",
    "/v1/me/profile",
    summary="Edit the caller's analyst profile",
    tag="profiles",
    body=ProfileEdit,
    response=AnalystProfile,
    errors=(403, 404, 409),
)
async def edit_profile(request: web.Request, body: ProfileEdit) -> AnalystProfile:
    who = await _analyst(request)
    changes: dict[str, Any] = {
        name: getattr(body, name)
        for name in body.__struct_fields__
        if getattr(body, name) is not UNSET
    }
    if isinstance(changes.get("display_name"), str):
        changes["display_name"] = changes["display_name"].strip()
    for name in ("sebi_number", "ria_number"):
        if name in changes:
            changes[name] = _registration(changes[name])
    async with request.app[POOL].acquire() as conn, conn.transaction():
        current = await conn.fetchrow(
            "SELECT sebi_number, ria_number, verification_documents, verification_status"
            " FROM analyst.analyst_profiles WHERE user_id = $1 AND deleted_at IS NULL FOR UPDATE",
            who.user_id,
        )
        if current is None:
            raise NotFound("you have no analyst profile; create it with POST /v1/me/profile")
        resubmitted = any(
            msgspec.to_builtins(changes[name]) != current[name]
            for name in _CREDENTIALS
            if name in changes
        )
        assignments = [f"{name} = ${i}" for i, name in enumerate(changes, start=2)]
        if resubmitted and current["verification_status"] != "pending":
            assignments.append(
                "verification_status = 'pending', verified_at = NULL, verified_by = NULL,"
                " rejection_reason = NULL"
            )
        statement = (
            f"UPDATE analyst.analyst_profiles AS p SET {', '.join(assignments)}"
            f" WHERE p.user_id = $1 RETURNING {_COLUMNS}"
            if assignments
            else f"SELECT {_COLUMNS} FROM analyst.analyst_profiles p WHERE p.user_id = $1"
        )
        try:
            row = await conn.fetchrow(statement, who.user_id, *changes.values())
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise _constraint_error(exc) from None
    return _profile(row, private=True)


# --- discovery and one profile ----------------------------------------------------------------


@endpoint(
    routes,
    "GET",
    "/v1/analysts",
    summary="Discover approved analysts, best rated or most subscribed first",
    tag="profiles",
    query=AnalystDiscoveryQuery,
    response=Page[AnalystProfile],
)
async def discover(request: web.Request, query: AnalystDiscoveryQuery) -> Page[AnalystProfile]:
    """Only approved, non-deleted profiles of active users. A cursor belongs to the sort it
    was issued for."""
    await caller(request)
    column = _SORT_COLUMNS[query.sort]
    after = decode_cursor(query.cursor, str, str, uuid.UUID)
    after_value: Decimal | None = None
    after_id: uuid.UUID | None = None
    if after is not None:
        sort, value, after_id = after
        try:
            after_value = Decimal(value)
        except InvalidOperation:
            after_value = Decimal("NaN")
        if not after_value.is_finite():
            raise BadRequest("cursor is not valid; start again without it")
        if sort != query.sort:
            raise BadRequest("cursor was issued for another sort; start again without it")
    min_rating = Decimal(str(query.min_rating)) if query.min_rating is not None else None
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM analyst.analyst_profiles p"
        " JOIN analyst.users u ON u.id = p.user_id"
        f" WHERE {_PUBLIC} AND u.deleted_at IS NULL AND u.is_active"
        " AND ($1::text IS NULL OR p.specializations @> ARRAY[$1::text])"
        " AND ($2::text IS NULL OR p.languages @> ARRAY[$2::text])"
        " AND ($3::text IS NULL OR p.country = $3::text)"
        " AND ($4::numeric IS NULL OR p.avg_rating >= $4::numeric)"
        f" AND ($5::numeric IS NULL OR (p.{column}, p.user_id) < ($5::numeric, $6::uuid))"
        f" ORDER BY p.{column} DESC, p.user_id DESC LIMIT $7",
        query.specialization,
        query.language,
        query.country,
        min_rating,
        after_value,
        after_id,
        query.limit + 1,
    )
    profiles = [_profile(row, private=False) for row in rows]
    return page_of(
        profiles,
        query.limit,
        lambda p: (
            query.sort,
            str(p.avg_rating if query.sort == "rating" else p.active_subscribers),
            p.analyst_id,
        ),
    )


@endpoint(
    routes,
    "GET",
    "/v1/analysts/{analyst_id}",
    summary="One analyst's profile, by the analyst's user id",
    tag="profiles",
    response=AnalystProfile,
    errors=(404,),
)
async def analyst_profile(request: web.Request) -> AnalystProfile:
    """Approved profiles are visible to every user; others only to their analyst and admins
    (404 for everyone else, so unapproved profiles are not revealed)."""
    who = await caller(request)
    analyst_id = path_uuid(request, "analyst_id")
    row = await request.app[POOL].fetchrow(
        f"SELECT {_COLUMNS}, u.is_active AND u.deleted_at IS NULL AS user_live"
        " FROM analyst.analyst_profiles p JOIN analyst.users u ON u.id = p.user_id"
        " WHERE p.user_id = $1",
        analyst_id,
    )
    own = who.user_id == analyst_id
    if row is None or not (
        who.is_admin
        or (own and row["deleted_at"] is None)
        or (
            row["verification_status"] == "approved"
            and row["deleted_at"] is None
            and row["user_live"]
        )
    ):
        raise NotFound("no such analyst profile")
    return _profile(row, private=own or who.is_admin)


# --- verification (admins) --------------------------------------------------------------------


@endpoint(
    routes,
    "GET",
    "/v1/admin/verification-queue",
    summary="Profiles awaiting verification (pending, in review), oldest first",
    tag="admin",
    query=VerificationQueueQuery,
    response=Page[AnalystProfile],
    errors=(403,),
)
async def verification_queue(
    request: web.Request, query: VerificationQueueQuery
) -> Page[AnalystProfile]:
    await admin(request)
    after = decode_cursor(query.cursor, datetime, uuid.UUID)
    statuses = [query.status] if query.status else ["pending", "in_review"]
    rows = await request.app[POOL].fetch(
        f"SELECT {_COLUMNS} FROM analyst.analyst_profiles p"
        " WHERE p.verification_status = ANY($1::text[]) AND p.deleted_at IS NULL"
        " AND ($2::timestamptz IS NULL OR (p.created_at, p.user_id) > ($2, $3::uuid))"
        " ORDER BY p.created_at, p.user_id LIMIT $4",
        statuses,
        after[0] if after else None,
        after[1] if after else None,
        query.limit + 1,
    )
    profiles = [_profile(row, private=True) for row in rows]
    return page_of(profiles, query.limit, lambda p: (p.created_at, p.analyst_id))


_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "in_review": ("pending",),
    "approved": ("pending", "in_review", "rejected"),
    "rejected": ("pending", "in_review", "approved"),
}


async def _decide(
    request: web.Request,
    decision: Literal["in_review", "approved", "rejected"],
    reason: str | None = None,
) -> AnalystProfile:
    """Moves the profile in the path to `decision` in one transaction, if its current state
    allows it (_TRANSITIONS). The admin may not decide on a profile of their own."""
    who = await admin(request)
    analyst_id = path_uuid(request, "analyst_id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        current = await conn.fetchrow(
            "SELECT verification_status, sebi_number, ria_number FROM analyst.analyst_profiles"
            " WHERE user_id = $1 AND deleted_at IS NULL FOR UPDATE",
            analyst_id,
        )
        if current is None:
            raise NotFound("no such analyst profile")
        if analyst_id == who.user_id:
            raise Forbidden("an admin cannot verify their own profile")
        if current["verification_status"] not in _TRANSITIONS[decision]:
            raise Conflict(
                f"a profile that is {current['verification_status']} cannot become {decision}"
            )
        if decision == "approved" and not (current["sebi_number"] or current["ria_number"]):
            raise Conflict("the profile has no SEBI or RIA number to verify")
        row = await conn.fetchrow(
            "UPDATE analyst.analyst_profiles AS p SET verification_status = $2::text,"
            " verified_at = CASE WHEN $2::text = 'approved' THEN now() END,"
            " verified_by = CASE WHEN $2::text = 'approved' THEN $3::uuid END,"
            f" rejection_reason = $4::text WHERE p.user_id = $1 RETURNING {_COLUMNS}, p.id",
            analyst_id,
            decision,
            who.user_id,
            reason,
        )
        if decision != "in_review":
            await _notify_decision(conn, row)
    return _profile(row, private=True)


async def _notify_decision(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    """Event "verification decided": tells the analyst, in the deciding transaction."""
    approved = row["verification_status"] == "approved"
    await notify(
        conn,
        event_key=f"analyst_profile:{row['id']}:{row['verification_status']}:"
        f"{row['updated_at'].isoformat()}",
        recipients=[row["user_id"]],
        notification_type="verification_approved" if approved else "verification_rejected",
        title="Your profile is verified" if approved else "Your profile was not verified",
        message="Your profile now appears in discovery."
        if approved
        else f"Reason: {row['rejection_reason']}",
        action_url="/me/profile",
        related_entity_type="analyst_profile",
        related_entity_id=row["id"],
        priority="high",
        bypass_preferences=True,
    )


@endpoint(
    routes,
    "POST",
    "/v1/admin/analysts/{analyst_id}/review",
    summary="Take a pending profile into review",
    tag="admin",
    response=AnalystProfile,
    errors=(403, 404, 409),
)
async def start_review(request: web.Request) -> AnalystProfile:
    return await _decide(request, "in_review")


@endpoint(
    routes,
    "POST",
    "/v1/admin/analysts/{analyst_id}/approve",
    summary="Approve a profile's SEBI/RIA verification",
    tag="admin",
    response=AnalystProfile,
    errors=(403, 404, 409),
)
async def approve(request: web.Request) -> AnalystProfile:
    """Sets verified_at and verified_by (the admin). Pending, in-review and rejected profiles
    can be approved; the profile needs a SEBI or RIA number."""
    return await _decide(request, "approved")


@endpoint(
    routes,
    "POST",
    "/v1/admin/analysts/{analyst_id}/reject",
    summary="Reject a profile's verification, with a reason for the analyst",
    tag="admin",
    body=ProfileRejection,
    response=AnalystProfile,
    errors=(403, 404, 409),
)
async def reject(request: web.Request, body: ProfileRejection) -> AnalystProfile:
    """Pending, in-review and approved profiles can be rejected (an approval can be revoked);
    verified_at and verified_by are cleared."""
    return await _decide(request, "rejected", body.rejection_reason.strip())
