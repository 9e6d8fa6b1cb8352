"""/v1/creator/profiles/{id or username} and /v1/creator/me/profile, /me/account: a user's
public profile (never their e-mail, date of birth, demographics or preferences), the caller's
own full profile and its edits (display name, bio, images, links, categories, messaging rule,
a creator's subscription prices), and the soft deletion of the caller's account (its tokens
then stop working, its sockets close, nothing renews)."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel.errors import BadRequest, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from realms.creator import content as posts
from realms.creator import subscriptions as plans
from realms.creator.accounts import current_account

routes = web.RouteTableDef()

NO_NUL = r"^[^\x00]*$"
NOT_BLANK = r"^[^\x00]*\S[^\x00]*$"
USERNAME = re.compile(r"^[A-Za-z0-9_.]{3,30}$")
Url = Annotated[str, Meta(max_length=1000, pattern=r"^https?://[^\s\x00]+$")]
Short = Annotated[str, Meta(min_length=1, max_length=100, pattern=NOT_BLANK)]
Cents = Annotated[int, Meta(ge=0, le=10**9, description="minor units (cents); 0 is free")]
AllowFrom = Literal["everyone", "followers", "subscribers", "nobody"]


class ProfileOut(Struct, kw_only=True):
    """What anyone signed in may read of a user. `subscription_prices` and
    `allow_messages_from` are a creator's (null for others)."""

    id: uuid.UUID
    username: str
    display_name: str | None
    account_type: str
    bio: str | None
    avatar_url: str | None
    cover_image_url: str | None
    website_url: str | None
    social_links: dict[str, Any]
    content_categories: list[str]
    languages: list[str]
    subscription_prices: plans.Prices | None
    allow_messages_from: str | None
    follower_count: int
    content_count: int
    is_following: bool
    is_subscribed: bool
    created_at: datetime


class MyProfile(ProfileOut, kw_only=True):
    """The caller's own profile: the public one and what only they see."""

    email: str
    date_of_birth: date | None
    age_verified: bool
    account_status: str
    gender: str | None
    country: str | None
    region: str | None
    city: str | None
    timezone: str | None


class ProfileEdit(Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields present change; null clears a nullable one. Prices are a creator's:
    `subscription_price` is monthly (the seed's column), `yearly_price` / `lifetime_price`
    (null: plan not offered). New prices apply to new subscriptions."""

    display_name: Short | UnsetType | None = UNSET
    bio: Annotated[str, Meta(min_length=1, max_length=2000, pattern=NO_NUL)] | UnsetType | None = (
        UNSET
    )
    avatar_url: Url | UnsetType | None = UNSET
    cover_image_url: Url | UnsetType | None = UNSET
    website_url: Url | UnsetType | None = UNSET
    social_links: (
        Annotated[
            dict[Annotated[str, Meta(pattern=r"^[a-z0-9_]{1,30}$")], Url], Meta(max_length=20)
        ]
        | UnsetType
    ) = UNSET
    content_categories: (
        Annotated[list[Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,50}$")]], Meta(max_length=20)]
        | UnsetType
    ) = UNSET
    languages: (
        Annotated[
            list[Annotated[str, Meta(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]],
            Meta(max_length=20),
        ]
        | UnsetType
    ) = UNSET
    gender: (
        Annotated[str, Meta(min_length=1, max_length=30, pattern=NOT_BLANK)] | UnsetType | None
    ) = UNSET
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")] | UnsetType | None = UNSET
    region: Short | UnsetType | None = UNSET
    city: Short | UnsetType | None = UNSET
    timezone: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$")] | (
        UnsetType | None
    ) = UNSET
    allow_messages_from: AllowFrom | UnsetType = UNSET
    subscription_price: Cents | UnsetType | None = UNSET
    yearly_price: Cents | UnsetType | None = UNSET
    lifetime_price: Cents | UnsetType | None = UNSET


_USER_FIELDS = ("display_name", "subscription_price")
_PROFILE_FIELDS = (
    "bio",
    "avatar_url",
    "cover_image_url",
    "website_url",
    "social_links",
    "content_categories",
    "languages",
    "gender",
    "country",
    "region",
    "city",
    "timezone",
    "allow_messages_from",
)

# $1 the profile's user, $2 the reader.
_PROFILE = f"""
SELECT u.id, u.username, u.display_name, u.account_type, u.subscription_price, u.currency,
       u.email, u.date_of_birth, u.age_verified, u.account_status, u.created_at,
       p.bio, p.avatar_url, p.cover_image_url, p.website_url,
       coalesce(p.social_links, '{{}}') AS social_links,
       coalesce(p.content_categories, '{{}}') AS content_categories,
       coalesce(p.languages, '{{}}') AS languages,
       p.gender, p.country, p.region, p.city, p.timezone, p.preferences,
       coalesce(p.allow_messages_from, 'subscribers') AS allow_messages_from,
       (SELECT count(*) FROM creator.follows f
         WHERE f.following_id = u.id AND f.unfollowed_at IS NULL) AS follower_count,
       (SELECT count(*) FROM creator.content c
         WHERE c.creator_id = u.id AND {posts.PUBLIC}) AS content_count,
       EXISTS (SELECT 1 FROM creator.follows f WHERE f.following_id = u.id
                  AND f.follower_id = $2 AND f.unfollowed_at IS NULL) AS is_following,
       creator.has_active_subscription($2, u.id) AS is_subscribed
  FROM creator.users u LEFT JOIN creator.user_profiles p ON p.user_id = u.id
 WHERE u.id = $1 AND u.deleted_at IS NULL
"""


_DERIVED = ("subscription_prices", "allow_messages_from")


def _public(row: asyncpg.Record) -> dict[str, Any]:
    creator = row["account_type"] == "creator"
    fields = {name: row[name] for name in ProfileOut.__struct_fields__ if name not in _DERIVED}
    fields["subscription_prices"] = plans.prices_of(row) if creator else None
    fields["allow_messages_from"] = row["allow_messages_from"] if creator else None
    return fields


async def _profile_row(request: web.Request, user_id: uuid.UUID, reader: uuid.UUID) -> Any:
    row = await request.app[POOL].fetchrow(_PROFILE, user_id, reader)
    if row is None:
        raise NotFound("no such user")
    return row


_PRIVATE = tuple(f for f in MyProfile.__struct_fields__ if f not in ProfileOut.__struct_fields__)


async def _mine(request: web.Request, me: uuid.UUID) -> MyProfile:
    row = await _profile_row(request, me, me)
    return MyProfile(
        **_public(row),
        **{name: row[name] for name in _PRIVATE},
    )


@endpoint(
    routes,
    "GET",
    "/v1/profiles/{user}",
    summary="A user's public profile, by id or username",
    tag="creator profiles",
    response=ProfileOut,
    errors=(400, 404),
)
async def public_profile(request: web.Request) -> ProfileOut:
    me = await current_account(request)
    raw = request.match_info["user"]
    pool = request.app[POOL]
    try:
        user_id: uuid.UUID | None = uuid.UUID(raw)
    except ValueError:
        if not USERNAME.match(raw):
            raise BadRequest("`user` is neither a user id nor a username") from None
        user_id = await pool.fetchval(
            "SELECT id FROM creator.users WHERE lower(username) = lower($1)", raw
        )
    if user_id is None:
        raise NotFound("no such user")
    row = await _profile_row(request, user_id, me.id)
    if row["account_status"] != "active" and row["id"] != me.id:
        raise NotFound("no such user")
    if row["id"] != me.id:
        await pool.execute(
            "INSERT INTO creator.user_analytics (user_id, event_type, target_user_id)"
            " VALUES ($1, 'profile_view', $2)",
            me.id,
            row["id"],
        )
    return ProfileOut(**_public(row))


@endpoint(
    routes,
    "GET",
    "/v1/me/profile",
    summary="The caller's own profile, private fields included",
    tag="creator profiles",
    response=MyProfile,
    errors=(404,),
)
async def my_profile(request: web.Request) -> MyProfile:
    me = await current_account(request)
    return await _mine(request, me.id)


@endpoint(
    routes,
    "PATCH",
    "/v1/me/profile",
    summary="Edit the caller's profile (a creator's subscription prices too)",
    tag="creator profiles",
    body=ProfileEdit,
    response=MyProfile,
    errors=(400, 404),
)
async def edit_profile(request: web.Request, body: ProfileEdit) -> MyProfile:
    me = await current_account(request)
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not UNSET}
    prices = {k: changes.pop(k) for k in ("yearly_price", "lifetime_price") if k in changes}
    if (prices or "subscription_price" in changes) and not me.is_creator:
        raise BadRequest("only creators set subscription prices")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('creator.user_id', $1, true)", str(me.id))
        await conn.execute(
            "INSERT INTO creator.user_profiles (user_id) VALUES ($1) ON CONFLICT DO NOTHING",
            me.id,
        )
        current = await conn.fetchrow(
            "SELECT u.subscription_price, u.currency, p.preferences FROM creator.users u"
            " JOIN creator.user_profiles p ON p.user_id = u.id WHERE u.id = $1 FOR UPDATE",
            me.id,
        )
        offered = plans.prices_of(current)
        monthly = changes.get("subscription_price", offered.monthly)
        yearly = prices.get("yearly_price", offered.yearly)
        if yearly is not None and monthly and yearly >= 12 * monthly:
            raise BadRequest(
                f"`yearly_price` is a discount: below 12 x the monthly price ({12 * monthly})"
            )
        for table, names, key in (
            ("users", _USER_FIELDS, "id"),
            ("user_profiles", _PROFILE_FIELDS, "user_id"),
        ):
            given = [name for name in names if name in changes]
            if given:
                sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(given, start=2))
                await conn.execute(
                    f"UPDATE creator.{table} SET {sets} WHERE {key} = $1",
                    me.id,
                    *(changes[name] for name in given),
                )
        if prices:
            preferences = dict(current["preferences"] or {})
            stored = dict(preferences.get(plans.PRICES_KEY) or {})
            for name, price in prices.items():
                plan = name.removesuffix("_price")
                if price is None:
                    stored.pop(plan, None)
                else:
                    stored[plan] = price
            await conn.execute(
                "UPDATE creator.user_profiles SET preferences = $2 WHERE user_id = $1",
                me.id,
                {**preferences, plans.PRICES_KEY: stored},
            )
    return await _mine(request, me.id)


@endpoint(
    routes,
    "DELETE",
    "/v1/me/account",
    summary="Delete the caller's account (soft): its tokens stop working, nothing renews",
    tag="creator profiles",
    status=204,
    errors=(404,),
)
async def delete_account(request: web.Request) -> None:
    me = await current_account(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('creator.user_id', $1, true)", str(me.id))
        await conn.execute(
            "UPDATE creator.subscriptions SET status = 'cancelled', cancelled_at = now(),"
            " auto_renew = false, cancellation_reason = 'account deleted'"
            " WHERE $1 IN (subscriber_id, creator_id) AND status = 'active'"
            "   AND subscription_type <> 'lifetime'",
            me.id,
        )
        await conn.execute(
            "UPDATE creator.follows SET unfollowed_at = now()"
            " WHERE $1 IN (follower_id, following_id) AND unfollowed_at IS NULL",
            me.id,
        )
        await conn.execute(
            "UPDATE creator.user_sessions SET revoked_at = now()"
            " WHERE user_id = $1 AND revoked_at IS NULL",
            me.id,
        )
        await conn.execute(
            "UPDATE creator.users SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL",
            me.id,
        )
