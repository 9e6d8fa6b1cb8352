"""Seed a load-test population, set-based and fast, and write the credentials file that
`loadtests/locustfile.py` reads.

    python -m loadtests.seed --users 100000 --analysts 200 --hot-channels 5 \\
        --out loadtests/results/credentials.csv

DATABASE_URL names the database (it must be migrated: `make run` does that). The population:

- `--analysts` analysts with approved profiles, each with 2-3 tiers (Free, Pro with chat
  access, and for every other analyst Elite with chat access) and 1-3 chat channels
  (`community`: any chat tier; `premium`: the analyst's top tier; `support`: any chat tier).
- `--users` traders, each with 1-3 subscriptions (30 % Free, the rest on chat tiers; 3 %
  already expired). Analysts are picked Zipf-like by rank; in addition a `--hot-share` of the
  traders' first subscriptions go to the `--hot-channels` top-ranked analysts, whose
  community channels are the hot channels, with thousands of members at the default sizes.
- Every user has the same password (printed, and written to the credentials file) behind ONE
  bcrypt hash computed once, at `--bcrypt-rounds` (default 4, so logging in is cheap for the
  load generator and the API; pass 12 to load the login path as production does).
- E-mail addresses are `lt-<tag>-a<rank>@<domain>` and `lt-<tag>-t<n>@<domain>`: each run has
  its own tag, so seeding again adds a new population instead of failing. E-mails are left
  unverified, so a post's notifications stay in-app (no e-mail jobs for the worker).

Nothing is inserted row by row: every table is filled by one INSERT ... SELECT over
generate_series and session temp tables, in one transaction, and the credentials file is
written with COPY (query) TO STDOUT. The credentials file has one row per user:
`email,password,user_type,user_id,channels`, where `channels` is the space-separated list of
`community:<id>` channels the user may join under the gateway's join rule (hot ones first),
analysts (in rank order, hottest first) before traders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from loadtests.seed_command import SeedCommand
from loadtests.seeding import LoginConfig, RunReport, SeedRun, count

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "loadtests" / "results" / "credentials.csv"
CREDENTIAL_COLUMNS = ("email", "password", "user_type", "user_id", "channels")


@dataclass(frozen=True)
class SeedConfig(LoginConfig):
    users: int = 100_000  # traders
    analysts: int = 200
    hot_channels: int = 5
    hot_share: float = 0.5
    zipf: float = 1.0
    message_rate_limit: int = 30
    random_seed: float | None = None

    def check(self) -> None:
        if self.users < 1 or self.analysts < 1:
            raise ValueError("--users and --analysts must be at least 1")
        if not 0 <= self.hot_channels <= self.analysts:
            raise ValueError("--hot-channels must be between 0 and --analysts")
        if not 0 <= self.hot_share <= 1:
            raise ValueError("--hot-share must be between 0 and 1")
        super().check()
        if not 1 <= self.message_rate_limit <= 100_000:
            raise ValueError("--message-rate-limit must be at least 1")


@dataclass
class SeedReport(RunReport):
    analysts: int = 0
    traders: int = 0
    tiers: int = 0
    channels: int = 0
    subscriptions: int = 0
    credentials: int = 0
    chat_users: int = 0  # traders with at least one channel to join
    hot: list[tuple[str, int]] = field(default_factory=list)  # (channel, members allowed in)


def zipf_bounds(n: int, exponent: float) -> list[float]:
    """Lower bounds of n buckets whose widths are proportional to 1/rank**exponent, for
    Postgres' width_bucket(random(), bounds): bucket r (1-based) is analyst rank r."""
    weights = [1.0 / (rank**exponent) for rank in range(1, n + 1)]
    total = sum(weights)
    bounds, acc = [], 0.0
    for w in weights:
        bounds.append(acc / total)
        acc += w
    return bounds


# --- the statements, in order ------------------------------------------------------------------
# Session temp tables (dropped at the end) hold the ids, so later steps join on them instead of
# on e-mail patterns. Every random choice is a volatile call in a SELECT list, so it is drawn
# per row.

_ANALYSTS = """
CREATE TEMP TABLE lt_analysts AS
SELECT g AS rank, gen_random_uuid() AS id,
       CASE WHEN g <= $2 THEN 3 ELSE 1 + (g % 3) END AS n_channels,
       (g <= $2 OR g % 2 = 1) AS has_elite
  FROM generate_series(1, $1) g
"""

_ANALYST_USERS = """
INSERT INTO analyst.users (id, email, password_hash, user_type, email_verified, login_count,
                           created_at, last_active)
SELECT a.id, 'lt-' || $1 || '-a' || a.rank || '@' || $2, $3, 'analyst', false, 0,
       now() - random() * interval '900 days', now() - random() * interval '3 days'
  FROM lt_analysts a
"""

_PROFILES = """
INSERT INTO analyst.analyst_profiles (user_id, display_name, bio, specializations, languages,
                                      country, sebi_number, verification_status, verified_at,
                                      commission_rate)
SELECT a.id,
       (ARRAY['Aarav', 'Diya', 'Kabir', 'Meera', 'Rohan', 'Saanvi', 'Vikram', 'Zoya'])
           [1 + a.rank % 8] || ' ' ||
       (ARRAY['Sharma', 'Iyer', 'Patel', 'Reddy', 'Gupta', 'Nair', 'Khan'])[1 + a.rank % 7]
           || ' #' || a.rank,
       'SEBI-registered analyst. Load-test profile ' || a.rank || ' (' || $1 || ').',
       ARRAY[(ARRAY['equity', 'options', 'commodities', 'forex', 'swing', 'intraday'])
                 [1 + a.rank % 6]],
       CASE WHEN a.rank % 3 = 0 THEN ARRAY['en', 'hi'] ELSE ARRAY['en'] END,
       'IN', 'INH' || upper($1) || lpad(a.rank::text, 7, '0'), 'approved',
       now() - random() * interval '300 days', 0.200
  FROM lt_analysts a
"""

_TIERS = """
CREATE TEMP TABLE lt_tiers AS
SELECT a.rank, a.id AS analyst_id, t.ord, gen_random_uuid() AS id, t.name, t.price, t.chat,
       t.free
  FROM lt_analysts a
 CROSS JOIN (VALUES (0, 'Free', 0, false, true),
                    (1, 'Pro', 49900, true, false),
                    (2, 'Elite', 149900, true, false)) t (ord, name, price, chat, free)
 WHERE t.ord < 2 OR a.has_elite
"""

_TIER_ROWS = """
INSERT INTO analyst.subscription_tiers (id, analyst_id, tier_name, tier_description, tier_order,
                                        price_monthly, price_yearly, features, posts_per_day,
                                        chat_access, priority_support, is_free_tier)
SELECT t.id, t.analyst_id, t.name, t.name || ' plan', t.ord, t.price, t.price * 10,
       CASE WHEN t.chat THEN '["calls", "chat"]'::jsonb ELSE '["calls"]'::jsonb END,
       CASE WHEN t.free THEN 1 END, t.chat, t.ord = 2, t.free
  FROM lt_tiers t
"""

_CHANNELS = """
CREATE TEMP TABLE lt_channels AS
SELECT a.rank, a.id AS analyst_id, c.no, gen_random_uuid() AS id,
       (ARRAY['community', 'premium', 'support'])[c.no] AS kind,
       (a.rank <= $1 AND c.no = 1) AS hot,
       CASE WHEN c.no = 2 THEN (SELECT t.id FROM lt_tiers t WHERE t.rank = a.rank
                                 ORDER BY t.ord DESC LIMIT 1) END AS min_tier
  FROM lt_analysts a
 CROSS JOIN generate_series(1, 3) c (no)
 WHERE c.no <= a.n_channels
"""

_CHANNEL_ROWS = """
INSERT INTO analyst.chat_channels (id, analyst_id, channel_name, channel_description,
                                   channel_type, message_rate_limit, is_rate_limited,
                                   require_subscription, minimum_tier_required)
SELECT c.id, c.analyst_id, initcap(c.kind) || ' room of analyst #' || c.rank,
       'Load-test ' || c.kind || ' channel', c.kind, $1, true, true, c.min_tier
  FROM lt_channels c
"""

_TRADERS = """
CREATE TEMP TABLE lt_traders AS
SELECT g AS n, gen_random_uuid() AS id, 1 + floor(random() * 3)::int AS n_subs
  FROM generate_series(1, $1) g
"""

_TRADER_USERS = """
INSERT INTO analyst.users (id, email, password_hash, user_type, email_verified, login_count,
                           created_at, last_active)
SELECT t.id, 'lt-' || $1 || '-t' || t.n || '@' || $2, $3, 'trader', false, 0,
       now() - random() * interval '700 days', now() - random() * interval '30 days'
  FROM lt_traders t
"""

# Slot 1 goes to a hot analyst with probability $1 (uniform over the $2 hot ranks), every
# other pick is Zipf over all ranks ($3: bucket lower bounds). A trader who drew the same
# analyst twice keeps the first slot's (DISTINCT ON), so some have fewer than n_subs. With
# setseed() the whole population is repeatable (ids aside).
_PICKS = """
CREATE TEMP TABLE lt_picks AS
SELECT DISTINCT ON (p.user_id, p.rank) p.*
  FROM (SELECT t.id AS user_id, k AS slot,
               CASE WHEN k = 1 AND $2::int > 0 AND random() < $1::float8
                    THEN 1 + floor(random() * $2::int)::int
                    ELSE width_bucket(random(), $3::float8[]) END AS rank,
               random() AS tier_roll, random() AS status_roll, random() AS age_roll,
               random() AS cycle_roll
          FROM lt_traders t
         CROSS JOIN LATERAL generate_series(1, t.n_subs) k) p
 ORDER BY p.user_id, p.rank, p.slot
"""

_SUBSCRIPTIONS = """
INSERT INTO analyst.subscriptions (user_id, analyst_id, tier_id, status, billing_cycle,
                                   price_paid, final_price, start_date, expires_at,
                                   next_billing_date, auto_renewal)
SELECT p.user_id, t.analyst_id, t.id,
       CASE WHEN p.status_roll < 0.03 THEN 'expired' ELSE 'active' END,
       CASE WHEN p.cycle_roll < 0.2 THEN 'yearly' ELSE 'monthly' END,
       CASE WHEN p.cycle_roll < 0.2 THEN t.price * 10 ELSE t.price END,
       CASE WHEN p.cycle_roll < 0.2 THEN t.price * 10 ELSE t.price END,
       s.start_date,
       CASE WHEN p.status_roll < 0.03 THEN now() - interval '1 day' * (1 + p.age_roll * 20)
            ELSE s.start_date + CASE WHEN p.cycle_roll < 0.2 THEN interval '365 days'
                                     ELSE interval '30 days' END END,
       CASE WHEN p.status_roll >= 0.03 THEN s.start_date + interval '30 days' END,
       p.status_roll >= 0.03
  FROM lt_picks p
  JOIN lt_analysts a ON a.rank = p.rank
  JOIN lt_tiers t ON t.rank = p.rank
                 AND t.ord = CASE WHEN p.tier_roll < 0.3 THEN 0
                                  WHEN p.tier_roll < 0.8 OR NOT a.has_elite THEN 1
                                  ELSE 2 END
 CROSS JOIN LATERAL (SELECT now() - interval '1 day' * (p.age_roll * 20) AS start_date) s
"""

# The gateway's join rule (realms/analyst/namespaces/community.py, _GATE) applied to every
# seeded subscription at once: the channels each trader may join, hot ones first. Support
# channels are no rooms for traders (they open support conversations), premium ones always
# need the subscription.
_JOINABLE = """
CREATE TEMP TABLE lt_joinable AS
SELECT s.user_id, c.id AS channel_id, c.hot, c.rank, c.no
  FROM analyst.subscriptions s
  JOIN lt_traders tr ON tr.id = s.user_id
  JOIN analyst.subscription_tiers t ON t.id = s.tier_id
  JOIN lt_channels c ON c.analyst_id = s.analyst_id
  JOIN analyst.chat_channels ch ON ch.id = c.id
  LEFT JOIN analyst.subscription_tiers mt ON mt.id = ch.minimum_tier_required
 WHERE s.status = 'active' AND s.deleted_at IS NULL
   AND (s.expires_at IS NULL OR s.expires_at > now())
   AND ch.is_active AND NOT ch.is_archived AND ch.deleted_at IS NULL
   AND ch.channel_type <> 'support'
   AND ((NOT ch.require_subscription AND ch.channel_type <> 'premium')
        OR (t.chat_access AND t.deleted_at IS NULL
            AND (mt.id IS NULL OR t.tier_order >= mt.tier_order)))
"""

_CREDENTIALS = """
SELECT email, password, user_type, user_id, channels FROM (
    SELECT 0 AS part, a.rank AS n, 'lt-' || $1 || '-a' || a.rank || '@' || $2 AS email,
           $3::text AS password, 'analyst' AS user_type, a.id AS user_id,
           (SELECT string_agg('community:' || c.id::text, ' ' ORDER BY c.no)
              FROM lt_channels c WHERE c.analyst_id = a.id) AS channels
      FROM lt_analysts a
    UNION ALL
    SELECT 1, t.n, 'lt-' || $1 || '-t' || t.n || '@' || $2, $3::text, 'trader', t.id,
           coalesce(j.channels, '')
      FROM lt_traders t
      LEFT JOIN (SELECT user_id,
                        string_agg('community:' || channel_id::text, ' '
                                   ORDER BY hot DESC, rank, no) AS channels
                   FROM lt_joinable GROUP BY user_id) j ON j.user_id = t.id
) rows
ORDER BY part, n
"""

_HOT = """
SELECT 'community:' || c.id::text AS channel, count(j.user_id) AS members
  FROM lt_channels c LEFT JOIN lt_joinable j ON j.channel_id = c.id
 WHERE c.hot GROUP BY c.id, c.rank ORDER BY c.rank
"""

_TEMP_TABLES = ("lt_joinable", "lt_picks", "lt_traders", "lt_channels", "lt_tiers", "lt_analysts")


async def seed(
    conn: asyncpg.Connection,
    config: SeedConfig,
    out: Path | None = DEFAULT_OUT,
    say: Callable[[str], None] = lambda _m: None,
) -> SeedReport:
    """Seed `config`'s population through `conn` in one transaction and write the credentials
    file to `out` (None: no file). Returns counts, the hot channels and per-step timings."""
    config.check()
    report = SeedReport(tag=config.tag)
    async with SeedRun(conn, config, report, say, _TEMP_TABLES) as run:
        bounds = zipf_bounds(config.analysts, config.zipf)
        async with run.transaction():
            if config.random_seed is not None:
                await conn.execute("SELECT setseed($1)", config.random_seed)
            await conn.execute(_ANALYSTS, config.analysts, config.hot_channels)
            report.analysts = count(
                await conn.execute(_ANALYST_USERS, config.tag, config.domain, run.password_hash)
            )
            await conn.execute(_PROFILES, config.tag)
            run.step("analysts", f"{report.analysts:,} users with approved profiles")
            await conn.execute(_TIERS)
            report.tiers = count(await conn.execute(_TIER_ROWS))
            await conn.execute(_CHANNELS, config.hot_channels)
            report.channels = count(await conn.execute(_CHANNEL_ROWS, config.message_rate_limit))
            run.step("tiers+channels", f"{report.tiers:,} tiers, {report.channels:,} channels")
            await conn.execute(_TRADERS, config.users)
            report.traders = count(
                await conn.execute(_TRADER_USERS, config.tag, config.domain, run.password_hash)
            )
            run.step("traders", f"{report.traders:,} users")
            await conn.execute(_PICKS, config.hot_share, config.hot_channels, bounds)
            report.subscriptions = count(await conn.execute(_SUBSCRIPTIONS))
            run.step("subscriptions", f"{report.subscriptions:,} (Zipf over analysts)")
        await run.analyze(
            "analyst.users, analyst.analyst_profiles, analyst.subscription_tiers,"
            " analyst.chat_channels, analyst.subscriptions"
        )
        await conn.execute(_JOINABLE)
        await conn.execute("ANALYZE lt_joinable")
        report.chat_users = int(
            await conn.fetchval("SELECT count(DISTINCT user_id) FROM lt_joinable")
        )
        report.hot = [(r["channel"], int(r["members"])) for r in await conn.fetch(_HOT)]
        report.credentials = await run.write_credentials(
            _CREDENTIALS, out, config.tag, config.domain, config.password
        )
    return report


def _parse(command: SeedCommand, argv: list[str] | None) -> tuple[SeedConfig, Path]:
    parser = command.parser
    parser.add_argument("--users", type=int, default=100_000, help="traders (default 100000)")
    parser.add_argument("--analysts", type=int, default=200, help="analysts (default 200)")
    parser.add_argument(
        "--hot-channels",
        type=int,
        default=5,
        help="top-ranked analysts whose community channel is hot (default 5)",
    )
    parser.add_argument(
        "--hot-share",
        type=float,
        default=0.5,
        help="share of traders whose first subscription is to a hot analyst (default 0.5)",
    )
    parser.add_argument(
        "--zipf", type=float, default=1.0, help="Zipf exponent over analyst ranks (default 1.0)"
    )
    command.add_login_arguments(password_help="everyone's password")
    parser.add_argument(
        "--message-rate-limit",
        type=int,
        default=30,
        help="messages per user per minute in every seeded channel (default 30)",
    )
    command.add_run_arguments()
    parser.add_argument(
        "--seed",
        type=float,
        default=None,
        dest="random_seed",
        metavar="SEED",
        help="setseed() value in [-1, 1] for a repeatable run",
    )
    return command.parse(SeedConfig, DEFAULT_OUT, argv)


def _summary(report: SeedReport) -> list[str]:
    return [
        f"done in {report.seconds:.1f} s: {report.analysts + report.traders:,} users, "
        f"{report.subscriptions:,} subscriptions, {report.channels:,} channels; "
        f"{report.chat_users:,} traders may join a channel",
        *(
            f"hot channel {channel}: {members:,} traders may join"
            for channel, members in report.hot
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    command = SeedCommand("seed", __doc__)
    config, out = _parse(command, argv)
    opening = (
        f"tag {config.tag}: {config.analysts:,} analysts ({config.hot_channels} hot), "
        f"{config.users:,} traders"
    )
    command.run("analyst.subscriptions", seed, config, out, opening, _summary)


if __name__ == "__main__":
    main()
