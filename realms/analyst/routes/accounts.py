"""Deleting an account (issue 21 item 7), by the user themselves (DELETE /v1/me, with their
password) or by an admin (DELETE /v1/admin/users/{id}): a soft delete, as the seed's
principles ask ("soft deletes: deleted_at instead of hard deletes, to preserve data for
compliance and auditing"), that removes or anonymises the person behind the account
("security considerations").

What happens, in the caller's transaction (docs/api-notes-analyst-finish.md has the table):

- The users row stays (its id keeps every foreign key and record valid) with `deleted_at`,
  `is_active = false`, its e-mail replaced by `deleted-<id>@deleted.invalid` (so the address
  can sign up again), its phone cleared, its password made unusable, verifications cleared.
  Every token is refused from then on: the realm's user lookup reads deleted_at/is_active on
  every request and connection, and every refresh token is revoked.
- Personal traces go: OTP codes, login attempts, notifications (and archived ones), delivery
  jobs, push devices, notification preferences and settings, read positions, bookmarks,
  helpfulness votes.
- What the person published for others is withdrawn: reviews are soft-deleted (ratings are
  recomputed). Comments and chat messages stay in their threads, attributed to the deleted
  account, which no longer carries a name or contact.
- Subscriptions the user holds are cancelled (open orders with them); the gateway hears it.
- An analyst's business closes: the profile is soft-deleted, its name, bio, photo, tags and
  verification documents cleared, taken off the homepage; tiers are deleted, their
  subscribers' subscriptions cancelled, chat channels archived, posts soft-deleted, discount
  codes and invite links deactivated. SEBI/RIA numbers and the payout fund account are kept:
  the first are regulatory identifiers kept for audit, the second is how earnings already
  owed are still paid (an admin pays them out; the batch skips inactive accounts).
- Payments, subscriptions and support tickets stay as financial and audit records.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Conflict, Forbidden, NotFound
from kernel.web.auth import admin, caller
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.paths import path_uuid
from realms.analyst import attempts
from realms.analyst.credentials import password_matches, revoke_all
from realms.analyst.routes.subscriptions import cancel

routes = web.RouteTableDef()

DELETED_EMAIL_DOMAIN = "deleted.invalid"
UNUSABLE_PASSWORD = "!deleted"  # noqa: S105 - not a bcrypt hash: no password matches it
DELETED_ANALYST_NAME = "Deleted analyst"

_OPEN = ("active", "pending_payment", "suspended")


def deleted_email(user_id: uuid.UUID) -> str:
    return f"deleted-{user_id.hex}@{DELETED_EMAIL_DOMAIN}"


async def delete_account(conn: asyncpg.Connection, user_id: uuid.UUID, now: datetime) -> None:
    """Delete the account `user_id` (see the module's docstring). The caller has locked the
    users row and checked it is not deleted yet; run it in one transaction."""
    user = await conn.fetchrow(
        "SELECT email, phone, user_type FROM analyst.users WHERE id = $1", user_id
    )
    if user is None:
        raise LookupError(f"no user {user_id}")

    # Subscriptions the user holds, and (analysts) those held with them.
    for row in await conn.fetch(
        "SELECT id FROM analyst.subscriptions WHERE (user_id = $1 OR analyst_id = $1)"
        " AND status = ANY($2::text[]) AND deleted_at IS NULL ORDER BY id FOR UPDATE",
        user_id,
        list(_OPEN),
    ):
        await cancel(conn, row["id"], now)

    if user["user_type"] == "analyst":
        await _close_business(conn, user_id, now)

    # What the user published for others to read, and private marks on others' content.
    await conn.execute(
        "UPDATE analyst.reviews SET deleted_at = $2 WHERE user_id = $1 AND deleted_at IS NULL",
        user_id,
        now,
    )
    await conn.execute("DELETE FROM analyst.review_votes WHERE user_id = $1", user_id)
    await conn.execute("DELETE FROM analyst.bookmarks WHERE user_id = $1", user_id)

    # Personal traces.
    contacts = [c for c in (user["email"], user["phone"]) if c is not None]
    await conn.execute(
        "DELETE FROM analyst.otp_verifications WHERE user_id = $1"
        " OR lower(email) = ANY($2::text[]) OR phone = ANY($2::text[])",
        user_id,
        [c.lower() for c in contacts] + contacts,
    )
    await conn.execute(
        "DELETE FROM gateway.auth_attempts WHERE scope = 'account' AND subject = ANY($1::text[])",
        [c.lower() for c in contacts] + [str(user_id)],
    )
    await conn.execute(
        "DELETE FROM gateway.notification_deliveries WHERE realm = 'analyst' AND user_id = $1",
        str(user_id),
    )
    await conn.execute("DELETE FROM analyst.notifications WHERE user_id = $1", user_id)
    await conn.execute("DELETE FROM analyst.notifications_archive WHERE user_id = $1", user_id)
    await conn.execute(
        "DELETE FROM gateway.push_devices WHERE realm = 'analyst' AND user_id = $1",
        str(user_id),
    )
    await conn.execute(
        "DELETE FROM gateway.notification_preferences WHERE realm = 'analyst' AND user_id = $1",
        str(user_id),
    )
    await conn.execute(
        "DELETE FROM gateway.notification_settings WHERE realm = 'analyst' AND user_id = $1",
        str(user_id),
    )
    await conn.execute("DELETE FROM gateway.channel_reads WHERE user_id = $1", str(user_id))
    await revoke_all(conn, user_id)

    # Last: the users trigger of 0017 (kind "account") tells every gateway at commit, and
    # each closes the user's sockets.
    await conn.execute(
        "UPDATE analyst.users SET email = $2, phone = NULL, password_hash = $3,"
        " email_verified = false, phone_verified = false, is_active = false, deleted_at = $4"
        " WHERE id = $1",
        user_id,
        deleted_email(user_id),
        UNUSABLE_PASSWORD,
        now,
    )


async def _close_business(conn: asyncpg.Connection, analyst_id: uuid.UUID, now: datetime) -> None:
    await conn.execute(
        "UPDATE analyst.subscription_tiers SET is_active = false,"
        " deleted_at = coalesce(deleted_at, $2) WHERE analyst_id = $1",
        analyst_id,
        now,
    )
    await conn.execute(
        "UPDATE analyst.chat_channels SET is_archived = true, is_active = false"
        " WHERE analyst_id = $1 AND deleted_at IS NULL AND (NOT is_archived OR is_active)",
        analyst_id,
    )
    await conn.execute(
        "UPDATE analyst.posts SET deleted_at = $2, is_featured = false"
        " WHERE analyst_id = $1 AND deleted_at IS NULL",
        analyst_id,
        now,
    )
    await conn.execute(
        "UPDATE analyst.discount_codes SET is_active = false WHERE analyst_id = $1 AND is_active",
        analyst_id,
    )
    await conn.execute(
        "UPDATE analyst.invite_links SET is_active = false WHERE analyst_id = $1 AND is_active",
        analyst_id,
    )
    await conn.execute(
        "UPDATE analyst.analyst_profiles SET display_name = $2, bio = NULL, photo_url = NULL,"
        " specializations = NULL, languages = NULL, verification_documents = NULL,"
        " rejection_reason = NULL, is_featured = false, feature_position = NULL,"
        " deleted_at = coalesce(deleted_at, $3) WHERE user_id = $1",
        analyst_id,
        DELETED_ANALYST_NAME,
        now,
    )


class DeleteAccountBody(Struct, forbid_unknown_fields=True):
    """The account's password, as a confirmation that the owner is asking."""

    password: Annotated[str, Meta(min_length=1, max_length=128)]


@endpoint(
    routes,
    "DELETE",
    "/v1/me",
    summary="Delete the caller's account for good (password required)",
    tag="account",
    body=DeleteAccountBody,
    status=204,
    errors=(401, 403, 409, 429),
)
async def delete_me(request: web.Request, body: DeleteAccountBody) -> None:
    """403 when the password does not match (it counts as a failed login attempt, so the
    login limit also bounds guessing through here: 429 past it). Afterwards every token of
    the account is refused: a second call is 401."""
    who = await caller(request)
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            "SELECT email, phone, password_hash FROM analyst.users WHERE id = $1", who.user_id
        )
        account = str(row["email"] or row["phone"]).lower()
        reserved = await attempts.reserve(conn, "login", account, request.remote or "unknown")
        if not await password_matches(body.password, row["password_hash"]):
            raise Forbidden("password: does not match; the account was not deleted")
        async with conn.transaction():
            await attempts.succeeded(conn, reserved)
            await _lock_live(conn, who.user_id)
            await delete_account(conn, who.user_id, datetime.now(UTC))


@endpoint(
    routes,
    "DELETE",
    "/v1/admin/users/{id}",
    summary="Delete a user's account for good (admins; not other admins)",
    tag="account",
    status=204,
    errors=(403, 404, 409),
)
async def delete_user(request: web.Request) -> None:
    """404 for an unknown user; 409 when the account is already deleted; 403 for an admin
    account (an admin deletes their own with DELETE /v1/me)."""
    await admin(request)
    user_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        user_type = await _lock_live(conn, user_id)
        if user_type == "admin":
            raise Forbidden("admin accounts are not deleted by other admins")
        await delete_account(conn, user_id, datetime.now(UTC))


async def _lock_live(conn: asyncpg.Connection, user_id: uuid.UUID) -> str:
    """Lock the users row; NotFound when there is none, Conflict when it is deleted already.
    Returns its user_type."""
    row = await conn.fetchrow(
        "SELECT user_type, deleted_at FROM analyst.users WHERE id = $1 FOR UPDATE", user_id
    )
    if row is None:
        raise NotFound("no such user")
    if row["deleted_at"] is not None:
        raise Conflict("the account is already deleted")
    return str(row["user_type"])
