"""Attempt limits on login and OTP endpoints, per account and per client address, counted in
Postgres so they hold across API processes.

An attempt is *reserved* before it is evaluated: under a transaction-scoped advisory lock per
(action, scope, subject), the window is counted and, when there is room, a row is written at
once. So N concurrent attempts are admitted one at a time and at most the limit of them is
ever evaluated (issue 18: 30 concurrent wrong passwords used to get 19 bcrypt checks against
a limit of 10). A login or code check is written as a failure when admitted and turned into a
success afterwards (`succeeded`); an attempt whose process dies half-way stays a failure.
"""

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


async def reserve(conn: asyncpg.Connection, action: str, account: str, address: str) -> list[int]:
    """Admit one attempt at `action` for `account` from `address`, or raise RateLimited.

    Logins and code checks count failures only (the reserved rows count as failures until
    `succeeded` is called with the returned ids); OTP requests count every request. The
    check and the write are one transaction under advisory locks taken in one order (the
    account's, then the address's), so concurrent attempts cannot both see room for one.
    Returns the ids of the two rows written (account and address)."""
    subjects = (("account", account.lower()), ("address", address))
    every = action == "otp_request"
    async with conn.transaction():
        for scope, subject in subjects:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"auth_attempts:{action}:{scope}:{subject}",
            )
        for scope, subject in subjects:
            # Two statements, not one with an OR, so failures are counted from the partial index.
            counted = _EVERY if every else _FAILURES
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
        rows = await conn.fetch(
            "INSERT INTO gateway.auth_attempts (scope, subject, action, succeeded)"
            " VALUES ('account', $1, $3, $4), ('address', $2, $3, $4) RETURNING id",
            subjects[0][1],
            address,
            action,
            every,
        )
    return [r["id"] for r in rows]


async def succeeded(conn: asyncpg.Connection, reserved: list[int]) -> None:
    """The reserved attempt succeeded: it no longer counts against the failure limits."""
    await conn.execute(
        "UPDATE gateway.auth_attempts SET succeeded = true WHERE id = ANY($1::bigint[])", reserved
    )
