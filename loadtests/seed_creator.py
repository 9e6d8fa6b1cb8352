"""Seed a creator load-test population, set-based, and write the credentials file that
`loadtests/locust_creator.py` reads (and that loadtests/bench_creator.py builds on).

    python -m loadtests.seed_creator --fans 20000 --creators 100 --subscribed 10000 \\
        --streams 5 --out loadtests/results/creator_credentials.csv

DATABASE_URL names the database (migrated: `make run` does that). The population (one run,
one tag; seeding again adds another population beside it):

- `--creators` creators (subscription price 4.99-13.99) and `--fans` fans, every one active,
  age-verified, with a profile (creators: a bio and a content category; they take messages
  from subscribers, the default). Same password for all behind ONE bcrypt hash at
  `--bcrypt-rounds` (default 4: a cheap login for the load generator). Usernames are
  `lt_<tag>_<c|f><n>`, e-mails `lt-<tag>-<c|f><n>@<domain>`, left unverified (no e-mail jobs).
- Each fan follows `--follows` creators (fan n: creators n, n+1, ... round-robin).
- Fans 1..`--subscribed` hold an active monthly subscription to creator n (round-robin) and
  have the one conversation of that pair, with `--messages` messages alternating fan and
  creator, every one read by both; every `--premium-every`-th of those conversations also
  has a premium (priced, still unbought) image message from the creator.
- `--streams` free streams that are `live` now, stream k hosted by creator k. Each fan is
  given one to watch: a `--hot-share` of the fans stream 1 (the hot room), the rest
  round-robin over all streams.

Every table is filled by one INSERT ... SELECT over generate_series in one transaction, as the
owner (row security does not apply: this is the server's own bulk load; the schema's triggers
run: seqs, unread counters, audit rows). The credentials file has one row per user:
`email,password,user_type,user_id,channels` with user_type `creator` or `fan` (creators
first) and channels the space-separated channels the user may join: `creator.dm:<id>` for
each of their conversations, then `creator.live:<id>` for the stream they host (creators) or
were given to watch (fans).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import bcrypt

from loadtests.seeding import (
    count,
    drop_temp_tables,
    progress,
    seed_database,
    write_credentials,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "loadtests" / "results" / "creator_credentials.csv"
CREDENTIAL_COLUMNS = ("email", "password", "user_type", "user_id", "channels")
PREMIUM_PRICE = 999  # cents


@dataclass(frozen=True)
class CreatorSeedConfig:
    fans: int = 2_000
    creators: int = 50
    follows: int = 3  # creators each fan follows
    subscribed: int = 1_000  # fans with an active subscription and a conversation
    messages: int = 4  # per conversation
    premium_every: int = 5  # every n-th conversation has a premium message (0: none)
    streams: int = 5
    hot_share: float = 0.5
    password: str = "loadtest-password"
    bcrypt_rounds: int = 4
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    domain: str = "loadtest.example.com"

    def check(self) -> None:
        if self.fans < 0 or self.creators < 1:
            raise ValueError("--fans must be at least 0 and --creators at least 1")
        if not 0 <= self.follows <= self.creators:
            raise ValueError("--follows must be between 0 and --creators")
        if not 0 <= self.subscribed <= self.fans:
            raise ValueError("--subscribed must be between 0 and --fans")
        if self.messages < 0 or self.premium_every < 0:
            raise ValueError("--messages and --premium-every must be at least 0")
        if not 0 <= self.streams <= self.creators:
            raise ValueError("--streams must be between 0 and --creators (one per host)")
        if not 0 <= self.hot_share <= 1:
            raise ValueError("--hot-share must be between 0 and 1")
        if not 4 <= self.bcrypt_rounds <= 16:
            raise ValueError("--bcrypt-rounds must be between 4 and 16")
        if len(self.password) < 8 or len(self.password.encode()) > 72:
            raise ValueError("--password must be 8 characters to 72 bytes (bcrypt's limit)")
        if not self.tag.isalnum() or self.tag != self.tag.lower() or len(self.tag) > 12:
            raise ValueError("--tag must be 1 to 12 lower-case letters and digits")


@dataclass(frozen=True)
class SeededStream:
    id: uuid.UUID
    creator_id: uuid.UUID
    viewers: int  # fans given this stream to watch

    @property
    def channel(self) -> str:
        return f"creator.live:{self.id}"


@dataclass
class CreatorSeedReport:
    tag: str
    creators: int = 0
    fans: int = 0
    profiles: int = 0
    follows: int = 0
    subscriptions: int = 0
    conversations: int = 0
    messages: int = 0
    premium: int = 0
    credentials: int = 0
    streams: list[SeededStream] = field(default_factory=list)  # stream 1 (hot) first
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.timings.values())


_TEMP_TABLES = ("lt_cr_users", "lt_cr_pairs", "lt_cr_streams", "lt_cr_watch")

# Every seeded user with its run-local number n within its role, ids drawn up front.
_PLAN_USERS = """
CREATE TEMP TABLE lt_cr_users AS
WITH wanted AS (
    SELECT 'creator'::text AS role, 'c' AS k, g AS n FROM generate_series(1, $1) g
    UNION ALL SELECT 'fan', 'f', g FROM generate_series(1, $2) g
)
SELECT role, n, gen_random_uuid() AS id, 'lt_' || $3 || '_' || k || n AS username,
       'lt-' || $3 || '-' || k || n || '@' || $4 AS email
  FROM wanted
"""

_USERS = """
INSERT INTO creator.users (id, username, email, password_hash, display_name, account_type,
                           subscription_price, date_of_birth, age_verified, age_verified_at)
SELECT id, username, email, $1, initcap(role) || ' ' || n, role,
       CASE WHEN role = 'creator' THEN 499 + 100 * (n % 10) END,
       date '1975-01-01' + (n % 9000), true, now()
  FROM lt_cr_users ORDER BY role, n
"""

_PROFILES = """
INSERT INTO creator.user_profiles (user_id, bio, content_categories, languages, timezone)
SELECT id,
       CASE WHEN role = 'creator' THEN 'Load-test creator ' || n || ': live most evenings.' END,
       CASE WHEN role = 'creator'
            THEN ARRAY[(ARRAY['fitness', 'music', 'art', 'gaming', 'cooking'])[1 + n % 5]]
            ELSE '{}'::text[] END,
       ARRAY['en'], 'UTC'
  FROM lt_cr_users
"""

_FOLLOWS = """
INSERT INTO creator.follows (follower_id, following_id)
SELECT f.id, c.id
  FROM lt_cr_users f
 CROSS JOIN generate_series(0, $1 - 1) AS k
  JOIN lt_cr_users c ON c.role = 'creator' AND c.n = 1 + (f.n - 1 + k) % $2
 WHERE f.role = 'fan'
"""

# Fan n (n <= subscribed) and creator n, round-robin: one subscription, one conversation.
_PAIRS = """
CREATE TEMP TABLE lt_cr_pairs AS
SELECT f.n, f.id AS fan_id, c.id AS creator_id, gen_random_uuid() AS conversation_id
  FROM lt_cr_users f
  JOIN lt_cr_users c ON c.role = 'creator' AND c.n = 1 + (f.n - 1) % $2
 WHERE f.role = 'fan' AND f.n <= $1
"""

_SUBSCRIPTIONS = """
INSERT INTO creator.subscriptions (subscriber_id, creator_id, subscription_type, status, price,
                                   started_at, current_period_start, expires_at)
SELECT p.fan_id, p.creator_id, 'monthly', 'active', u.subscription_price, s.at, s.at,
       s.at + interval '1 month'
  FROM lt_cr_pairs p
  JOIN creator.users u ON u.id = p.creator_id
 CROSS JOIN LATERAL (SELECT now() - make_interval(days => p.n % 20) AS at) s
 ORDER BY p.n
"""

_CONVERSATIONS = """
INSERT INTO creator.conversations (id, creator_id, fan_id)
SELECT conversation_id, creator_id, fan_id FROM lt_cr_pairs ORDER BY n
"""

# Alternating fan (odd k) and creator (even k); seq and the counters come from the triggers.
_MESSAGES = """
INSERT INTO creator.messages (conversation_id, sender_id, message_type, body)
SELECT p.conversation_id, CASE WHEN k % 2 = 1 THEN p.fan_id ELSE p.creator_id END, 'text',
       (ARRAY['Hi! Loved the last set.', 'Thank you so much!', 'Any plans for a live soon?',
              'Friday evening, come say hi.', 'Can''t wait!', 'See you there.'])[1 + (k - 1) % 6]
  FROM lt_cr_pairs p
 CROSS JOIN generate_series(1, $1) AS k
 ORDER BY p.conversation_id, k
"""

_PREMIUM = """
INSERT INTO creator.messages (conversation_id, sender_id, message_type, body, attachments,
                              preview, price)
SELECT conversation_id, creator_id, 'image', 'A set just for you.',
       jsonb_build_array(jsonb_build_object(
           'url', 'https://media.' || $3 || '/premium/' || conversation_id || '.jpg',
           'mime_type', 'image/jpeg', 'size', 480000, 'width', 1080, 'height', 1350)),
       jsonb_build_object('blur_hash', 'LEHV6nWB2yk8pyo0adR*.7kCMdnj', 'width', 1080,
                          'height', 1350, 'media_count', 1,
                          'media_types', jsonb_build_array('image'),
                          'caption', 'Something special'),
       $2
  FROM lt_cr_pairs
 WHERE $1 > 0 AND n % greatest($1, 1) = 0
 ORDER BY conversation_id
"""

_READ_ALL = """
UPDATE creator.conversations c
   SET fan_last_read_seq = c.last_seq, creator_last_read_seq = c.last_seq
  FROM lt_cr_pairs p
 WHERE c.id = p.conversation_id AND c.last_seq > 0
"""

_PLAN_STREAMS = """
CREATE TEMP TABLE lt_cr_streams AS
SELECT n, id AS creator_id, gen_random_uuid() AS id
  FROM lt_cr_users WHERE role = 'creator' AND n <= $1
"""

_STREAMS = """
INSERT INTO creator.live_streams (id, creator_id, title, description, status, started_at,
                                  chat_enabled)
SELECT id, creator_id, 'Load-test live ' || n, 'A seeded free stream, live now.', 'live', now(),
       true
  FROM lt_cr_streams ORDER BY n
"""

# Which stream each fan watches: the hot share stream 1, the others round-robin.
_WATCH = """
CREATE TEMP TABLE lt_cr_watch AS
SELECT f.id AS fan_id, s.id AS stream_id
  FROM lt_cr_users f
  JOIN lt_cr_streams s ON s.n = CASE WHEN f.n <= $1 THEN 1 ELSE 1 + (f.n - 1) % $2 END
 WHERE f.role = 'fan'
"""

_SEEDED_STREAMS = """
SELECT s.id, s.creator_id, (SELECT count(*) FROM lt_cr_watch w WHERE w.stream_id = s.id) AS viewers
  FROM lt_cr_streams s ORDER BY s.n
"""

_CREDENTIALS = """
SELECT u.email, $1 AS password, u.role AS user_type, u.id AS user_id,
       concat_ws(' ',
           (SELECT string_agg('creator.dm:' || p.conversation_id, ' ' ORDER BY p.n)
              FROM lt_cr_pairs p WHERE u.id IN (p.fan_id, p.creator_id)),
           (SELECT string_agg('creator.live:' || s.id, ' ' ORDER BY s.n)
              FROM lt_cr_streams s WHERE s.creator_id = u.id),
           (SELECT 'creator.live:' || w.stream_id FROM lt_cr_watch w WHERE w.fan_id = u.id)
       ) AS channels
  FROM lt_cr_users u
 ORDER BY CASE u.role WHEN 'creator' THEN 0 ELSE 1 END, u.n
"""


async def seed(
    conn: asyncpg.Connection,
    config: CreatorSeedConfig,
    out: Path | None = DEFAULT_OUT,
    say: Callable[[str], None] = lambda _m: None,
) -> CreatorSeedReport:
    """Seed `config`'s population through `conn` in one transaction and write the
    credentials file to `out` (None: no file)."""
    config.check()
    report = CreatorSeedReport(tag=config.tag)
    clock = time.perf_counter()

    def step(name: str, detail: str = "") -> None:
        nonlocal clock
        now = time.perf_counter()
        report.timings[name] = now - clock
        clock = now
        say(f"{name:<13} {report.timings[name]:6.2f} s  {detail}".rstrip())

    password_hash = bcrypt.hashpw(
        config.password.encode(), bcrypt.gensalt(config.bcrypt_rounds)
    ).decode()
    step("bcrypt", f"one hash at cost {config.bcrypt_rounds}, shared by every user")
    hot = round(config.hot_share * config.fans)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute(_PLAN_USERS, config.creators, config.fans, config.tag, config.domain)
            await conn.execute(_USERS, password_hash)
            report.profiles = count(await conn.execute(_PROFILES))
            report.creators, report.fans = config.creators, config.fans
            step("users", f"{config.creators:,} creators, {config.fans:,} fans, with profiles")
            report.follows = count(await conn.execute(_FOLLOWS, config.follows, config.creators))
            step("follows", f"{report.follows:,}")
            await conn.execute(_PAIRS, config.subscribed, config.creators)
            report.subscriptions = count(await conn.execute(_SUBSCRIPTIONS))
            step("subscriptions", f"{report.subscriptions:,} active, monthly")
            report.conversations = count(await conn.execute(_CONVERSATIONS))
            report.messages = count(await conn.execute(_MESSAGES, config.messages))
            report.premium = count(
                await conn.execute(_PREMIUM, config.premium_every, PREMIUM_PRICE, config.domain)
            )
            report.messages += report.premium
            await conn.execute(_READ_ALL)
            step(
                "conversations",
                f"{report.conversations:,}, {report.messages:,} messages"
                f" ({report.premium:,} premium)",
            )
            await conn.execute(_PLAN_STREAMS, config.streams)
            await conn.execute(_STREAMS)
            await conn.execute(_WATCH, hot, max(config.streams, 1))
            report.streams = [
                SeededStream(r["id"], r["creator_id"], r["viewers"])
                for r in await conn.fetch(_SEEDED_STREAMS)
            ]
            step("streams", f"{len(report.streams)} live, free")
        await conn.execute(
            "ANALYZE creator.users, creator.user_profiles, creator.follows,"
            " creator.subscriptions, creator.conversations, creator.messages,"
            " creator.live_streams"
        )
        step("analyze")
        if out is not None:
            report.credentials = await write_credentials(conn, _CREDENTIALS, out, config.password)
        step("credentials", f"{report.credentials:,} rows -> {out}" if out else "not written")
    finally:
        await drop_temp_tables(conn, _TEMP_TABLES)
    return report


def _parse(argv: list[str] | None) -> tuple[CreatorSeedConfig, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.seed_creator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = CreatorSeedConfig()
    for name in (
        "fans",
        "creators",
        "follows",
        "subscribed",
        "messages",
        "premium-every",
        "streams",
    ):
        parser.add_argument(
            f"--{name}",
            type=int,
            default=getattr(defaults, name.replace("-", "_")),
            help="(default %(default)s)",
        )
    parser.add_argument(
        "--hot-share", type=float, default=defaults.hot_share, help="(default %(default)s)"
    )
    parser.add_argument("--password", default=defaults.password, help="the password")
    parser.add_argument("--bcrypt-rounds", type=int, default=4, help="cost of the one hash")
    parser.add_argument("--tag", default=None, help="tag of this run (default: random)")
    parser.add_argument("--domain", default=defaults.domain, help="e-mail domain")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="credentials CSV")
    args = parser.parse_args(argv)
    config = CreatorSeedConfig(
        fans=args.fans,
        creators=args.creators,
        follows=args.follows,
        subscribed=args.subscribed,
        messages=args.messages,
        premium_every=args.premium_every,
        streams=args.streams,
        hot_share=args.hot_share,
        password=args.password,
        bcrypt_rounds=args.bcrypt_rounds,
        domain=args.domain,
        **({"tag": args.tag} if args.tag else {}),
    )
    try:
        config.check()
    except ValueError as exc:
        parser.error(str(exc))
    return config, args.out


async def _main(config: CreatorSeedConfig, out: Path) -> None:
    say = progress("seed_creator")
    async with seed_database("creator.live_streams") as conn:
        report = await seed(conn, config, out, say)
    say(f"tag {config.tag}: done in {report.seconds:.1f} s")
    for stream in report.streams[:3]:
        say(f"stream {stream.channel}: {stream.viewers:,} fans given it to watch")
    say(f"password for every seeded user: {config.password}")
    say(f"credentials: {out}")


def main(argv: list[str] | None = None) -> None:
    config, out = _parse(argv)
    asyncio.run(_main(config, out))


if __name__ == "__main__":
    main()
