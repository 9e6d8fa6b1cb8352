"""`python -m tools.demo` (`make demo`): demo data in every enabled realm that has users, then
ready-to-use logins, access tokens and sign-in links for the demo web app.

DATABASE_URL and SWITCHBOARD_SECRET as for the processes (`make demo` takes them the way
`make run` does: its private cluster and var/secret). Run it again at any time: nothing is
duplicated, and the tokens are new. `--json` prints the same as one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

import asyncpg

from kernel.config import Settings, load_settings
from kernel.db import connect
from kernel.realms import enabled_realms
from kernel.tokens import sign_access_token
from realms.analyst.credentials import hash_password
from tools import analyst

# Realm name -> its demo data. A realm with users (user_lookup_sql) and no entry here is
# reported, not skipped silently.
Seeder = Callable[[asyncpg.Connection, str], Awaitable[analyst.DemoData]]


async def _analyst(conn: asyncpg.Connection, password_hash: str) -> analyst.DemoData:
    return await analyst.seed_demo(conn, password_hash=password_hash)


async def _academy(conn: asyncpg.Connection, password_hash: str) -> analyst.DemoData:
    from realms.academy.demo import seed_demo

    seeded = await seed_demo(conn, password_hash=password_hash)
    return analyst.DemoData(
        realm="academy",
        password=analyst.DEMO_PASSWORD,
        users=[analyst.DemoUser(*u) for u in seeded.users],
        channels=[analyst.DemoChannel(*c) for c in seeded.channels],
    )


SEEDERS: dict[str, Seeder] = {"analyst": _analyst, "academy": _academy}


def token_ttl(settings: Settings) -> int:
    """As long as the gateway and the api accept (ACCESS_TOKEN_MAX_TTL): an hour by default."""
    return settings.access_token_max_ttl_s


@dataclass
class Login:
    role: str
    name: str
    email: str
    user_id: str
    note: str
    access_token: str
    app_link: str


@dataclass
class RealmDemo:
    realm: str
    password: str
    token_ttl_s: int
    users: list[Login]
    channels: list[analyst.DemoChannel]


@dataclass
class Demo:
    app_url: str
    realms: list[RealmDemo] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # realm -> why


async def seed(settings: Settings) -> Demo:
    """Seed every enabled realm that has users; the logins and tokens to print."""
    ttl = token_ttl(settings)
    demo = Demo(app_url=settings.public_base_url.rstrip("/") + "/")
    conn = await connect(settings.database_url, application_name="switchboard-demo")
    try:
        for realm in enabled_realms():
            seeder = SEEDERS.get(realm.name)
            if realm.user_lookup_sql is None:
                demo.skipped[realm.name] = "has no users to sign in"
                continue
            if seeder is None:
                demo.skipped[realm.name] = "has no demo data yet (tools/demo.py)"
                continue
            password_hash = await hash_password(analyst.DEMO_PASSWORD, settings.bcrypt_rounds)
            data = await seeder(conn, password_hash)
            logins = []
            for user in data.users:
                token = sign_access_token(settings.secret, str(user.user_id), data.realm, ttl)
                logins.append(
                    Login(
                        role=user.role,
                        name=user.name,
                        email=user.email,
                        user_id=str(user.user_id),
                        note=user.note,
                        access_token=token,
                        app_link=f"{demo.app_url}#token={token}",
                    )
                )
            demo.realms.append(RealmDemo(data.realm, data.password, ttl, logins, data.channels))
    finally:
        await conn.close()
    return demo


def render(demo: Demo) -> str:
    lines: list[str] = []
    for realm in demo.realms:
        minutes = realm.token_ttl_s // 60
        lines += [
            f"Demo data of realm {realm.realm} (run it again: nothing is duplicated).",
            "",
            f"Logins: password {realm.password!r}, or a code by e-mail (in dev mode the app"
            " shows it; /dev/mail lists them):",
        ]
        for u in realm.users:
            lines.append(f"  {u.role:<8} {u.email:<24} {u.name:<9} {u.note}  (id {u.user_id})")
        lines += ["", "Channels:"]
        for c in realm.channels:
            lines.append(f"  {c.name:<12} {c.channel}  {c.note}")
        lines += ["", f"Open the demo app signed in, one link per window (valid {minutes} min):"]
        for u in realm.users:
            lines.append(f"  {u.name:<9} {u.app_link}")
        lines += ["", f"Access tokens (Authorization: Bearer ...; valid {minutes} min):"]
        for u in realm.users:
            lines.append(f"  {u.name:<9} {u.access_token}")
        lines.append("")
    for name, why in demo.skipped.items():
        lines.append(f"Realm {name}: skipped, it {why}.")
    lines += [
        "",
        f"Demo app {demo.app_url}  ·  API docs {demo.app_url}docs"
        f"  ·  dev mail {demo.app_url}dev/mail",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    demo = asyncio.run(seed(load_settings()))
    print(json.dumps(asdict(demo), indent=2) if args.json else render(demo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
