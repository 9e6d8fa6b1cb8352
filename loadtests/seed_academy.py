"""Seed an academy load-test population, set-based, and write the credentials file that
`loadtests/locust_academy.py` reads (and that loadtests/bench_academy.py builds on).

    python -m loadtests.seed_academy --learners 10000 --sessions 5 \\
        --out loadtests/results/academy_credentials.csv

DATABASE_URL names the database (migrated: `make run` does that). The population:

- `--lessons` active lessons, `--gates` per level (xp 10-100, each after the previous one of
  its level), so learners have a course to complete.
- `--sessions` hosts, each hosting one session that is `live` now (no seat limit), and
  `--learners` learners with a profile and a streak row. Every learner is registered for one
  live session: a `--hot-share` of them for session 1 (the hot room), the rest round-robin
  over all sessions.
- Everyone has the same password behind ONE bcrypt hash at `--bcrypt-rounds` (default 4: a
  cheap login for the load generator); e-mails are `lt-<tag>-h<n>@<domain>` (hosts) and
  `lt-<tag>-l<n>@<domain>` (learners), confirmed. Each run has its own tag, so seeding again
  adds a population.

Every table is filled by one INSERT ... SELECT over generate_series in one transaction, as the
owner (RLS does not apply: this is the server's own bulk load). The credentials file has one
row per user: `email,password,user_type,user_id,channels` with user_type `host` or `learner`
and channels the `academy.session:<id>` room(s) the user may join (hosts first).

For `make demo`'s small hand-made academy data see realms/academy/demo.py (tools/demo.py).
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
DEFAULT_OUT = ROOT / "loadtests" / "results" / "academy_credentials.csv"
CREDENTIAL_COLUMNS = ("email", "password", "user_type", "user_id", "channels")
# Levels and gates of seeded lessons start here, far from any hand-made course's numbers.
LEVEL_BASE = 1000


@dataclass(frozen=True)
class AcademySeedConfig(LoginConfig):
    learners: int = 10_000
    sessions: int = 5
    hot_share: float = 0.5
    lessons: int = 30
    gates: int = 10  # lessons per level

    def check(self) -> None:
        if self.learners < 0 or self.sessions < 1:
            raise ValueError("--learners must be at least 0 and --sessions at least 1")
        if not 0 <= self.hot_share <= 1:
            raise ValueError("--hot-share must be between 0 and 1")
        if self.lessons < 0 or self.gates < 1:
            raise ValueError("--lessons must be at least 0 and --gates at least 1")
        super().check()


@dataclass(frozen=True)
class SeededSession:
    id: uuid.UUID
    host_id: uuid.UUID
    participants: int

    @property
    def channel(self) -> str:
        return f"academy.session:{self.id}"


@dataclass
class AcademySeedReport(RunReport):
    hosts: int = 0
    learners: int = 0
    lessons: int = 0
    registrations: int = 0
    credentials: int = 0
    sessions: list[SeededSession] = field(default_factory=list)  # session 1 (hot) first


_TEMP_TABLES = ("lt_ac_hosts", "lt_ac_learners", "lt_ac_sessions")

_HOSTS = """
CREATE TEMP TABLE lt_ac_hosts AS
SELECT g AS n, gen_random_uuid() AS id FROM generate_series(1, $1) g
"""

_LEARNERS = """
CREATE TEMP TABLE lt_ac_learners AS
SELECT g AS n, gen_random_uuid() AS id,
       CASE WHEN g <= round($2::float8 * $1) THEN 1 ELSE 1 + g % $3 END AS session_no
  FROM generate_series(1, $1) g
"""

_USERS = """
INSERT INTO academy.users (id, email, encrypted_password, email_confirmed_at,
                           raw_user_meta_data, created_at, last_sign_in_at)
SELECT u.id, 'lt-' || $1 || '-' || u.kind || u.n || '@' || $2, $3, now(),
       jsonb_build_object('full_name', initcap(u.role) || ' ' || u.n),
       now() - random() * interval '400 days', now() - random() * interval '7 days'
  FROM (SELECT n, id, 'h' AS kind, 'host' AS role FROM lt_ac_hosts
        UNION ALL SELECT n, id, 'l', 'learner' FROM lt_ac_learners) u
"""

_PROFILES = """
INSERT INTO academy.user_profiles (id, full_name, trading_experience)
SELECT u.id, initcap(u.role) || ' ' || u.n,
       (ARRAY['beginner', 'intermediate', 'advanced'])[1 + u.n % 3]
  FROM (SELECT n, id, 'host' AS role FROM lt_ac_hosts
        UNION ALL SELECT n, id, 'learner' FROM lt_ac_learners) u
"""

_STREAKS = """
INSERT INTO academy.user_streaks (user_id)
SELECT id FROM lt_ac_hosts UNION ALL SELECT id FROM lt_ac_learners
"""

# Lessons of one run live on their own levels (from LEVEL_BASE, past any earlier run's), so a
# second population never collides with the first on UNIQUE (level_id, gate_id).
_LESSONS = """
INSERT INTO academy.lessons (level_id, gate_id, title, description, content_data, xp_reward,
                             difficulty, estimated_time, order_index)
SELECT $2 + (g - 1) / $3, 1 + (g - 1) % $3, 'Load-test lesson ' || g,
       'Seeded lesson ' || g || ' (' || $4 || ')',
       jsonb_build_object('blocks', jsonb_build_array(jsonb_build_object('type', 'text',
                                                                         'text', 'Lesson ' || g))),
       10 * (1 + g % 10), (ARRAY['beginner', 'intermediate', 'advanced'])[1 + g % 3],
       interval '10 minutes', 1 + (g - 1) % $3
  FROM generate_series(1, $1) g
"""

_SESSIONS = """
CREATE TEMP TABLE lt_ac_sessions AS
WITH ins AS (
    INSERT INTO academy.live_sessions (title, description, host_id, session_type, scheduled_at,
                                       duration, status, tags)
    SELECT 'Load-test live session ' || h.n, 'Seeded (' || $1 || ')', h.id, 'workshop',
           now() - interval '5 minutes', interval '8 hours', 'live', ARRAY['loadtest']
      FROM lt_ac_hosts h
    RETURNING id, host_id
)
SELECT h.n, ins.id, ins.host_id FROM ins JOIN lt_ac_hosts h ON h.id = ins.host_id
"""

_REGISTRATIONS = """
INSERT INTO academy.session_participants (session_id, user_id, attendance_status)
SELECT s.id, l.id, 'registered'
  FROM lt_ac_learners l JOIN lt_ac_sessions s ON s.n = l.session_no
"""

_SESSION_REPORT = """
SELECT s.id, s.host_id, (SELECT count(*) FROM lt_ac_learners l WHERE l.session_no = s.n) AS n
  FROM lt_ac_sessions s ORDER BY s.n
"""

_CREDENTIALS = """
SELECT email, password, user_type, user_id, channels FROM (
    SELECT 0 AS ord, h.n, 'lt-' || $1 || '-h' || h.n || '@' || $2 AS email, $3 AS password,
           'host' AS user_type, h.id AS user_id, 'academy.session:' || s.id AS channels
      FROM lt_ac_hosts h JOIN lt_ac_sessions s ON s.host_id = h.id
    UNION ALL
    SELECT 1, l.n, 'lt-' || $1 || '-l' || l.n || '@' || $2, $3, 'learner', l.id,
           'academy.session:' || s.id
      FROM lt_ac_learners l JOIN lt_ac_sessions s ON s.n = l.session_no
) c ORDER BY ord, n
"""


async def seed(
    conn: asyncpg.Connection,
    config: AcademySeedConfig,
    out: Path | None = DEFAULT_OUT,
    say: Callable[[str], None] = lambda _m: None,
) -> AcademySeedReport:
    """Seed `config`'s population through `conn` (as the owner) in one transaction and write
    the credentials file to `out` (None: no file)."""
    config.check()
    report = AcademySeedReport(tag=config.tag)
    async with SeedRun(conn, config, report, say, _TEMP_TABLES) as run:
        async with run.transaction():
            await conn.execute(_HOSTS, config.sessions)
            await conn.execute(_LEARNERS, config.learners, config.hot_share, config.sessions)
            users = count(await conn.execute(_USERS, config.tag, config.domain, run.password_hash))
            await conn.execute(_PROFILES)
            await conn.execute(_STREAKS)
            report.hosts, report.learners = config.sessions, config.learners
            run.step("users", f"{users:,} users with profiles and streaks")
            level = int(
                await conn.fetchval(
                    "SELECT coalesce(max(level_id) + 1, $1) FROM academy.lessons"
                    " WHERE level_id >= $1",
                    LEVEL_BASE,
                )
            )
            report.lessons = count(
                await conn.execute(_LESSONS, config.lessons, level, config.gates, config.tag)
            )
            run.step("lessons", f"{report.lessons:,} lessons from level {level}")
            await conn.execute(_SESSIONS, config.tag)
            report.registrations = count(await conn.execute(_REGISTRATIONS))
            report.sessions = [
                SeededSession(r["id"], r["host_id"], int(r["n"]))
                for r in await conn.fetch(_SESSION_REPORT)
            ]
            run.step("sessions", f"{config.sessions} live, {report.registrations:,} registrations")
        await run.analyze(
            "academy.users, academy.user_profiles, academy.live_sessions,"
            " academy.session_participants"
        )
        report.credentials = await run.write_credentials(
            _CREDENTIALS, out, config.tag, config.domain, config.password
        )
    return report


def _parse(command: SeedCommand, argv: list[str] | None) -> tuple[AcademySeedConfig, Path]:
    parser = command.parser
    parser.add_argument("--learners", type=int, default=10_000, help="learners (default 10000)")
    parser.add_argument(
        "--sessions", type=int, default=5, help="live sessions, one host each (default 5)"
    )
    parser.add_argument(
        "--hot-share",
        type=float,
        default=0.5,
        help="share of learners registered for session 1 (default 0.5)",
    )
    parser.add_argument("--lessons", type=int, default=30, help="lessons (default 30)")
    parser.add_argument("--gates", type=int, default=10, help="lessons per level (default 10)")
    command.add_login_arguments()
    command.add_run_arguments()
    return command.parse(AcademySeedConfig, DEFAULT_OUT, argv)


def _summary(report: AcademySeedReport) -> list[str]:
    return [f"done in {report.seconds:.1f} s"] + [
        f"{s.channel}: host {s.host_id}, {s.participants:,} registered learners"
        for s in report.sessions
    ]


def main(argv: list[str] | None = None) -> None:
    command = SeedCommand("seed_academy", __doc__)
    config, out = _parse(command, argv)
    opening = f"tag {config.tag}: {config.sessions} live sessions, {config.learners:,} learners"
    command.run("academy.live_sessions", seed, config, out, opening, _summary)


if __name__ == "__main__":
    main()
