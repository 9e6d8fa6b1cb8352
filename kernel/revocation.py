"""Revoking a user's sessions in any realm: tokens issued before the revocation are refused
everywhere, and the user's open sockets close on every gateway (close 4004). Used by realms'
logout-everywhere and password changes, and by the server API. `revoke_session` ends one
sign-in session only: tokens whose `sid` claim names it are refused and the sockets opened
with them close, while the user's other sessions keep working."""

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


_REVOKE_SESSION = """
WITH revoked AS (
    INSERT INTO gateway.session_revocations (realm, session_id, user_id)
    VALUES ($1, $3, $2) ON CONFLICT (realm, session_id) DO NOTHING
)
SELECT pg_notify('sb_membership', json_build_object(
           'kind', 'account', 'realm', $1::text, 'user_id', $2::text, 'sid', $3::text,
           'reason', 'session ended')::text)
"""


async def revoke_session(
    conn: asyncpg.Connection | asyncpg.Pool, realm: str, user_id: str, session_id: str
) -> None:
    """Revoke the sign-in session `session_id` of the user (in the caller's transaction):
    every token whose `sid` is this session is refused from now on, and the sockets that
    authenticated with one close on every gateway (4004)."""
    await conn.execute(_REVOKE_SESSION, realm, user_id, session_id)


async def check_not_revoked(
    conn: asyncpg.Connection | asyncpg.Pool,
    realm: str,
    user_id: str,
    issued_at: int,
    session_id: str | None = None,
) -> None:
    """Raise Unauthorized when the token (issued at `issued_at`, of the sign-in session
    `session_id` when it names one) was revoked."""
    if session_id is None:
        before = await conn.fetchval(
            "SELECT extract(epoch FROM revoked_before)::bigint FROM gateway.token_revocations"
            " WHERE realm = $1 AND user_id = $2",
            realm,
            user_id,
        )
        ended = False
    else:
        row = await conn.fetchrow(
            "SELECT (SELECT extract(epoch FROM revoked_before)::bigint"
            "          FROM gateway.token_revocations WHERE realm = $1 AND user_id = $2),"
            "       EXISTS (SELECT FROM gateway.session_revocations"
            "                WHERE realm = $1 AND session_id = $3)",
            realm,
            user_id,
            session_id,
        )
        assert row is not None
        before, ended = row[0], row[1]
    if ended:
        raise Unauthorized("this session has ended: sign in again")
    if before is not None and issued_at < before:
        raise Unauthorized("token was revoked: sign in again")
