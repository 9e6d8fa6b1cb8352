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

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from loadtests.seed_command import SeedCommand
from loadtests.seeding import LoginConfig, RunReport, SeedRun, count

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "loadtests" / "results" / "creator_credentials.csv"
CREDENTIAL_COLUMNS = ("email", "password", "user_type", "user_id", "channels")
PREMIUM_PRICE = 999  # cents


@dataclass(frozen=True)
class CreatorSeedConfig(LoginConfig):
    max_tag = 12  # usernames lt_<tag>_<c|f><n> are 30 characters at most

    fans: int = 2_000
    creators: int = 50
    follows: int = 3  # creators each fan follows
    subscribed: int = 1_000  # fans with an active subscription and a conversation
    messages: int = 4  # per conversation
    premium_every: int = 5  # every n-th conversation has a premium message (0: none)
    streams: int = 5
    hot_share: float = 0.5

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
        super().check()


@dataclass(frozen=True)
class SeededStream:
    id: uuid.UUID
    creator_id: uuid.UUID
    viewers: int  # fans given this stream to watch

    @property
    def channel(self) -> str:
        return f"creator.live:{self.id}"


@dataclass
class CreatorSeedReport(RunReport):
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
    hot = round(config.hot_share * config.fans)
    async with SeedRun(conn, config, report, say, _TEMP_TABLES, width=13) as run:
        async with run.transaction():
            await conn.execute(_PLAN_USERS, config.creators, config.fans, config.tag, config.domain)
            await conn.execute(_USERS, run.password_hash)
            report.profiles = count(await conn.execute(_PROFILES))
            report.creators, report.fans = config.creators, config.fans
            run.step("users", f"{config.creators:,} creators, {config.fans:,} fans, with profiles")
            report.follows = count(await conn.execute(_FOLLOWS, config.follows, config.creators))
            run.step("follows", f"{report.follows:,}")
            await conn.execute(_PAIRS, config.subscribed, config.creators)
            report.subscriptions = count(await conn.execute(_SUBSCRIPTIONS))
            run.step("subscriptions", f"{report.subscriptions:,} active, monthly")
            report.conversations = count(await conn.execute(_CONVERSATIONS))
            report.messages = count(await conn.execute(_MESSAGES, config.messages))
            report.premium = count(
                await conn.execute(_PREMIUM, config.premium_every, PREMIUM_PRICE, config.domain)
            )
            report.messages += report.premium
            await conn.execute(_READ_ALL)
            run.step(
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
            run.step("streams", f"{len(report.streams)} live, free")
        await run.analyze(
            "creator.users, creator.user_profiles, creator.follows,"
            " creator.subscriptions, creator.conversations, creator.messages,"
            " creator.live_streams"
        )
        report.credentials = await run.write_credentials(_CREDENTIALS, out, config.password)
    return report


def _parse(command: SeedCommand, argv: list[str] | None) -> tuple[CreatorSeedConfig, Path]:
    parser = command.parser
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
    command.add_login_arguments(rounds_help="cost of the one hash")
    command.add_run_arguments(tag_help="tag of this run (default: random)")
    return command.parse(CreatorSeedConfig, DEFAULT_OUT, argv)


def _summary(report: CreatorSeedReport) -> list[str]:
    return [f"tag {report.tag}: done in {report.seconds:.1f} s"] + [
        f"stream {stream.channel}: {stream.viewers:,} fans given it to watch"
        for stream in report.streams[:3]
    ]


def main(argv: list[str] | None = None) -> None:
    command = SeedCommand("seed_creator", __doc__)
    config, out = _parse(command, argv)
    command.run("creator.live_streams", seed, config, out, None, _summary)


if __name__ == "__main__":
    main()
