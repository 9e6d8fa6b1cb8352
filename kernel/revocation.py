"""Revoking a user's sessions in any realm: tokens issued before the revocation are refused
everywhere, and the user's open sockets close on every gateway (close 4004). Used by realms'
logout-everywhere and password changes, and by the server API."""

from __future__ import annotations

import asyncpg

from kernel.errors import Unauthorized

_REVOKE = """
WITH revoked AS (
    INSERT INTO gateway.token_revocations AS r (realm, user_id, revoked_before)
    VALUES ($1, $2, date_trunc('second', now()) + interval '1 second')
    ON CONFLICT (realm, user_id) DO UPDATE SET revoked_before = EXCLUDED.revoked_before
    RETURNING r.revoked_before
)
SELECT extract(epoch FROM revoked_before)::bigint,
       pg_notify('sb_membership', json_build_object(
           'kind', 'account', 'realm', $1::text, 'user_id', $2::text,
           'reason', 'sessions revoked')::text)
  FROM revoked
"""


async def revoke_tokens(conn: asyncpg.Connection | asyncpg.Pool, realm: str, user_id: str) -> int:
    """Revoke every token of the user issued up to now (in the caller's transaction); returns
    the Unix second from which new tokens are good again."""
    row = await conn.fetchrow(_REVOKE, realm, user_id)
    assert row is not None
    return int(row[0])


async def check_not_revoked(
    conn: asyncpg.Connection | asyncpg.Pool, realm: str, user_id: str, issued_at: int
) -> None:
    """Raise Unauthorized when the token (issued at `issued_at`) was revoked."""
    before = await conn.fetchval(
        "SELECT extract(epoch FROM revoked_before)::bigint FROM gateway.token_revocations"
        " WHERE realm = $1 AND user_id = $2",
        realm,
        user_id,
    )
    if before is not None and issued_at < before:
        raise Unauthorized("token was revoked: sign in again")
