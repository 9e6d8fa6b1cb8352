"""OTP codes and refresh tokens (random, stored as SHA-256, rotated on every use; reusing a
rotated token revokes its whole family)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

import asyncpg

from kernel.errors import Unauthorized

# Passwords are the kernel's (every realm hashes them alike); re-exported for analyst code.
from kernel.passwords import hash_password as hash_password
from kernel.passwords import password_matches as password_matches


def new_otp() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_refresh_token(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    ttl_s: int,
    family_id: uuid.UUID | None = None,
    user_agent: str | None = None,
) -> str:
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO gateway.refresh_tokens (user_id, token_hash, family_id, expires_at,"
        " user_agent) VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)",
        user_id,
        _digest(token),
        family_id or uuid.uuid4(),
        ttl_s,
        (user_agent or "")[:300],
    )
    return token


class RefreshReplayed(Unauthorized):
    """An already-rotated refresh token came back: it was stolen or replayed. The caller
    must revoke `family_id` in a transaction of its own (this one is being rolled back)."""

    def __init__(self, family_id: uuid.UUID) -> None:
        super().__init__("refresh token was already used; every session of it is revoked")
        self.family_id = family_id


async def rotate_refresh_token(
    conn: asyncpg.Connection, token: str, ttl_s: int
) -> tuple[uuid.UUID, str]:
    """Spend `token` and return (user_id, its successor). Raises Unauthorized if it is
    unknown, expired or revoked, and RefreshReplayed if it was already rotated. Call inside
    a transaction."""
    row = await conn.fetchrow(
        "SELECT id, user_id, family_id, expires_at, used_at, revoked_at, now() AS now"
        " FROM gateway.refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        _digest(token),
    )
    if row is None:
        raise Unauthorized("refresh token is not valid")
    if row["revoked_at"] is not None:
        raise Unauthorized("refresh token was revoked")
    if row["used_at"] is not None:
        raise RefreshReplayed(row["family_id"])
    if row["expires_at"] <= row["now"]:
        raise Unauthorized("refresh token has expired")
    await conn.execute("UPDATE gateway.refresh_tokens SET used_at = now() WHERE id = $1", row["id"])
    successor = await issue_refresh_token(conn, row["user_id"], ttl_s, row["family_id"])
    return row["user_id"], successor


async def revoke_family(conn: asyncpg.Connection, family_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE gateway.refresh_tokens SET revoked_at = now()"
        " WHERE family_id = $1 AND revoked_at IS NULL",
        family_id,
    )


async def revoke_token(conn: asyncpg.Connection, token: str) -> bool:
    """Revoke the login `token` belongs to (logout); False when the token is unknown."""
    family = await conn.fetchval(
        "SELECT family_id FROM gateway.refresh_tokens WHERE token_hash = $1", _digest(token)
    )
    if family is None:
        return False
    await revoke_family(conn, family)
    return True


async def revoke_all(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE gateway.refresh_tokens SET revoked_at = now()"
        " WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
    )


def expiry(now: datetime, seconds: int) -> datetime:
    return now + timedelta(seconds=seconds)
