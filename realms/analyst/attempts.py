"""Attempt limits on login and OTP endpoints, per account and per client address, counted in
Postgres so they hold across API processes."""

from __future__ import annotations

import asyncpg

from kernel.errors import RateLimited

WINDOW_S = 15 * 60
LIMITS = {  # (scope, action) -> failed-or-total attempts allowed per window
    ("account", "login"): 10,
    ("address", "login"): 50,
    ("account", "otp_request"): 5,
    ("address", "otp_request"): 30,
    ("account", "otp_verify"): 10,
    ("address", "otp_verify"): 50,
}


_WINDOW = (
    " FROM gateway.auth_attempts WHERE scope = $1 AND subject = $2 AND action = $3"
    " AND at > now() - make_interval(secs => $4)"
)
_EVERY = "SELECT count(*) AS n, min(at) AS oldest" + _WINDOW
_FAILURES = _EVERY + " AND NOT succeeded"


async def check(conn: asyncpg.Connection, action: str, account: str, address: str) -> None:
    """Raise RateLimited when `account` or `address` used up its attempts for `action`.

    Logins count failures only; OTP requests count every request.
    """
    for scope, subject in (("account", account.lower()), ("address", address)):
        # Two statements, not one with an OR, so failures are counted from the partial index.
        counted = _EVERY if action == "otp_request" else _FAILURES
        row = await conn.fetchrow(counted, scope, subject, action, WINDOW_S)
        if row["n"] >= LIMITS[(scope, action)]:
            retry_ms = await conn.fetchval(
                "SELECT greatest(1, ceil(extract(epoch FROM ($1::timestamptz"
                " + make_interval(secs => $2) - now())) * 1000))::bigint",
                row["oldest"],
                WINDOW_S,
            )
            raise RateLimited(
                f"too many {action.replace('_', ' ')} attempts; try later",
                retry_after_ms=int(retry_ms),
            )


async def record(
    conn: asyncpg.Connection, action: str, account: str, address: str, succeeded: bool
) -> None:
    await conn.execute(
        "INSERT INTO gateway.auth_attempts (scope, subject, action, succeeded)"
        " VALUES ('account', $1, $3, $4), ('address', $2, $3, $4)",
        account.lower(),
        address,
        action,
        succeeded,
    )
