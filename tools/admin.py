"""`python -m tools.admin create-admin --email ops@example.com`: an admin (staff) user of the
analyst realm, who may moderate, answer support, see the jobs, and join every channel.

A new user gets the password given with `--password`, else a generated one, printed once
(they can also sign in with an e-mail code). An existing trader is promoted and keeps their
password. Prints the user id and an access token. DATABASE_URL and SWITCHBOARD_SECRET as for
the processes; `bash scripts/demo.sh create-admin --email …` sets them the way `make run`
does (its private cluster, var/secret)."""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys

from kernel.config import load_settings
from kernel.db import connect
from kernel.tokens import sign_access_token
from realms.analyst.credentials import hash_password
from tools import analyst

# The rule of analyst.users (users_email_format): anything else would fail in the database.
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\Z")


async def create_admin(email: str, password: str | None) -> str:
    if not EMAIL.match(email) or len(email) > 255:
        raise ValueError(f"not an e-mail address: {email!r}")
    settings = load_settings()
    generated = password is None
    chosen = password or secrets.token_urlsafe(12)
    if len(chosen) < 8:
        raise ValueError("the password must be at least 8 characters")
    password_hash = await hash_password(chosen, settings.bcrypt_rounds)
    conn = await connect(settings.database_url, application_name="switchboard-admin")
    try:
        user_id, status = await analyst.create_admin(conn, email=email, password_hash=password_hash)
    finally:
        await conn.close()
    ttl = settings.access_token_max_ttl_s
    token = sign_access_token(settings.secret, str(user_id), analyst.REALM, ttl)
    lines = [f"admin {email}: {status} (id {user_id}, realm {analyst.REALM})"]
    if status == "created":
        lines.append(f"password: {chosen}" + ("  (generated: keep it now)" if generated else ""))
    else:
        lines.append("password: unchanged (sign in with it, or with an e-mail code)")
    lines.append(f"access token (valid {ttl // 60} min): {token}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-admin", help="create an admin, or promote a trader")
    create.add_argument("--email", required=True)
    create.add_argument("--password", help="at least 8 characters (default: generated)")
    args = parser.parse_args(argv)
    try:
        print(asyncio.run(create_admin(args.email, args.password)))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
