"""Seed an aichat load-test population, set-based, and write the credentials file that
`loadtests/locust_aichat.py` reads (and that loadtests/bench_aichat.py builds on).

    python -m loadtests.seed_aichat --users 1000 --conversations 2 --history 6 \\
        --out loadtests/results/aichat_credentials.csv

DATABASE_URL names the database (migrated: `make run` does that; migration 2003 provides the
Free/Plus/Pro plans and the openai/anthropic providers). The population:

- `--users` verified users on the `--tier` plan (default PRO: no monthly message quota, so a
  long run is not cut short by quota_exceeded), e-mails `lt-<tag>-u<n>@<domain>`, all with
  the same password behind ONE bcrypt hash at `--bcrypt-rounds` (default 4).
- `--conversations` assistant conversations per user on `--model` (default gpt-4o: without
  AICHAT_OPENAI_* configured, the labelled offline provider answers it), each with
  `--history` messages alternating user / assistant (each reply points at its prompt, with
  token counts), a token_usage row per reply and the user's usage_tracking row of this month
  whose counters agree with them, so history, resume and the usage view have data.

Every table is filled by one INSERT ... SELECT over generate_series in one transaction; each
run has its own tag, so seeding again adds a population. The credentials file has one row
per user: `email,password,user_type,user_id,channels` (user_type `user`; channels the
user's `aichat.conv:<id>` channels, space-separated).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from loadtests.seed_command import SeedCommand
from loadtests.seeding import LoginConfig, RunReport, SeedRun, count

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "loadtests" / "results" / "aichat_credentials.csv"
CREDENTIAL_COLUMNS = ("email", "password", "user_type", "user_id", "channels")
TIERS = ("FREE", "PLUS", "PRO")
MODELS = ("gpt-4", "gpt-4o", "gpt-3.5-turbo", "claude-3-opus", "claude-3-sonnet")
# Token counts of every seeded reply (prompt, completion): small, and the same for all.
PROMPT_TOKENS, COMPLETION_TOKENS = 24, 12


@dataclass(frozen=True)
class AichatSeedConfig(LoginConfig):
    users: int = 1000
    conversations: int = 2  # per user
    history: int = 6  # messages per conversation
    tier: str = "PRO"
    model: str = "gpt-4o"

    def check(self) -> None:
        if self.users < 0 or self.conversations < 0 or self.history < 0:
            raise ValueError("--users, --conversations and --history must not be negative")
        if self.tier not in TIERS:
            raise ValueError(f"--tier must be one of {', '.join(TIERS)}")
        if self.model not in MODELS:
            raise ValueError(f"--model must be one of {', '.join(MODELS)}")
        super().check()


@dataclass
class AichatSeedReport(RunReport):
    users: int = 0
    conversations: int = 0
    messages: int = 0
    credentials: int = 0


_TEMP_TABLES = ("lt_ai_users", "lt_ai_conversations", "lt_ai_messages")

_USER_IDS = """
CREATE TEMP TABLE lt_ai_users AS
SELECT g AS n, gen_random_uuid() AS id FROM generate_series(1, $1) g
"""

_USERS = """
INSERT INTO aichat.users (id, email, password, name, plan_tier, email_verified,
                          email_verified_at, last_login_at, created_at)
SELECT u.id, 'lt-' || $1 || '-u' || u.n || '@' || $2, $3, 'Load user ' || u.n, $4, true,
       LOCALTIMESTAMP, LOCALTIMESTAMP - random() * interval '7 days',
       LOCALTIMESTAMP - interval '30 days'
  FROM lt_ai_users u
"""

# $2 messages each; about one token per four bytes, as the realm estimates (usage.py).
_CONVERSATIONS = """
CREATE TEMP TABLE lt_ai_conversations AS
WITH ins AS (
    INSERT INTO aichat.conversations (user_id, title, model, system_prompt, message_count,
                                      token_count)
    SELECT u.id, 'Load-test conversation ' || c || ' (' || $1 || ')', $3,
           'You are a concise assistant.', $2::int, ($2::int / 2) * ($4::int + $5::int)
      FROM lt_ai_users u CROSS JOIN generate_series(1, $6) c
    RETURNING id, user_id
)
SELECT id, user_id FROM ins
"""

_MESSAGE_IDS = """
CREATE TEMP TABLE lt_ai_messages AS
SELECT c.id AS conversation_id, c.user_id, s AS seq, gen_random_uuid() AS id
  FROM lt_ai_conversations c CROSS JOIN generate_series(1, $1) s
"""

_MESSAGES = """
INSERT INTO aichat.messages (id, conversation_id, seq, role, content, token_count,
                             prompt_tokens, completion_tokens, model, reply_to, finish_reason,
                             created_at)
SELECT m.id, m.conversation_id, m.seq,
       CASE WHEN m.seq % 2 = 1 THEN 'user' ELSE 'assistant' END,
       CASE WHEN m.seq % 2 = 1 THEN 'Seeded question ' || m.seq || ': what should I read next?'
            ELSE 'Seeded answer ' || m.seq || ': start with the classics, then branch out.' END,
       CASE WHEN m.seq % 2 = 1 THEN 8 ELSE $1::int + $2::int END,
       CASE WHEN m.seq % 2 = 0 THEN $1::int END,
       CASE WHEN m.seq % 2 = 0 THEN $2::int END,
       CASE WHEN m.seq % 2 = 0 THEN $3::varchar END,
       p.id,
       CASE WHEN m.seq % 2 = 0 THEN 'stop' END,
       LOCALTIMESTAMP - (1000 - m.seq) * interval '1 second'
  FROM lt_ai_messages m
  LEFT JOIN lt_ai_messages p
    ON m.seq % 2 = 0 AND p.conversation_id = m.conversation_id AND p.seq = m.seq - 1
"""

_TOKEN_USAGE = """
INSERT INTO aichat.token_usage (user_id, conversation_id, message_id, provider, model,
                                prompt_tokens, completion_tokens, total_tokens, cost_usd,
                                billing_month)
SELECT m.user_id, m.conversation_id, m.id, $4::varchar, $3::varchar, $1::int, $2::int,
       $1::int + $2::int, 0,
       date_trunc('month', now() AT TIME ZONE 'UTC')::date
  FROM lt_ai_messages m WHERE m.seq % 2 = 0
"""

_USAGE_TRACKING = """
INSERT INTO aichat.usage_tracking (user_id, billing_month, tokens_used, messages_count,
                                   conversations_count, monthly_quota)
SELECT u.id, date_trunc('month', now() AT TIME ZONE 'UTC')::date,
       coalesce(t.tokens, 0), coalesce(t.prompts, 0), $1::int,
       (SELECT p.monthly_token_quota FROM aichat.plans p WHERE upper(p.name) = $2::text)
  FROM lt_ai_users u
  LEFT JOIN (SELECT user_id, count(*) FILTER (WHERE seq % 2 = 1) AS prompts,
                    count(*) FILTER (WHERE seq % 2 = 0) * ($3::int + $4::int) AS tokens
               FROM lt_ai_messages GROUP BY user_id) t ON t.user_id = u.id
"""

_USERS_TOKENS = """
UPDATE aichat.users u SET monthly_token_used = t.tokens_used,
       monthly_token_reset = t.billing_month
  FROM aichat.usage_tracking t, lt_ai_users l
 WHERE t.user_id = u.id AND l.id = u.id
"""

_CREDENTIALS = """
SELECT 'lt-' || $1 || '-u' || u.n || '@' || $2 AS email, $3 AS password, 'user' AS user_type,
       u.id AS user_id,
       coalesce((SELECT string_agg('aichat.conv:' || c.id, ' ' ORDER BY c.id)
                   FROM lt_ai_conversations c WHERE c.user_id = u.id), '') AS channels
  FROM lt_ai_users u ORDER BY u.n
"""


async def seed(
    conn: asyncpg.Connection,
    config: AichatSeedConfig,
    out: Path | None = DEFAULT_OUT,
    say: Callable[[str], None] = lambda _m: None,
) -> AichatSeedReport:
    """Seed `config`'s population through `conn` in one transaction and write the
    credentials file to `out` (None: no file)."""
    config.check()
    report = AichatSeedReport(tag=config.tag)
    provider = "anthropic" if config.model.startswith("claude") else "openai"
    tokens = (PROMPT_TOKENS, COMPLETION_TOKENS)
    async with SeedRun(conn, config, report, say, _TEMP_TABLES) as run:
        async with run.transaction():
            await conn.execute(_USER_IDS, config.users)
            report.users = count(
                await conn.execute(
                    _USERS, config.tag, config.domain, run.password_hash, config.tier
                )
            )
            run.step("users", f"{report.users:,} verified {config.tier} users")
            history = config.history
            await conn.execute(
                _CONVERSATIONS, config.tag, history, config.model, *tokens, config.conversations
            )
            report.conversations = int(
                await conn.fetchval("SELECT count(*) FROM lt_ai_conversations")
            )
            await conn.execute(_MESSAGE_IDS, history)
            report.messages = count(await conn.execute(_MESSAGES, *tokens, config.model))
            await conn.execute(_TOKEN_USAGE, *tokens, config.model, provider)
            run.step(
                "conversations",
                f"{report.conversations:,} on {config.model}, {report.messages:,} messages",
            )
            await conn.execute(_USAGE_TRACKING, config.conversations, config.tier, *tokens)
            await conn.execute(_USERS_TOKENS)
            run.step("usage", "token_usage per reply, usage_tracking of this month")
        await run.analyze(
            "aichat.users, aichat.conversations, aichat.messages, aichat.token_usage,"
            " aichat.usage_tracking"
        )
        report.credentials = await run.write_credentials(
            _CREDENTIALS, out, config.tag, config.domain, config.password
        )
    return report


def _parse(command: SeedCommand, argv: list[str] | None) -> tuple[AichatSeedConfig, Path]:
    parser = command.parser
    parser.add_argument("--users", type=int, default=1000, help="users (default 1000)")
    parser.add_argument(
        "--conversations", type=int, default=2, help="conversations per user (default 2)"
    )
    parser.add_argument(
        "--history", type=int, default=6, help="messages per conversation (default 6)"
    )
    parser.add_argument("--tier", default="PRO", choices=TIERS, help="plan tier (default PRO)")
    parser.add_argument("--model", default="gpt-4o", choices=MODELS, help="default gpt-4o")
    command.add_login_arguments()
    command.add_run_arguments()
    return command.parse(AichatSeedConfig, DEFAULT_OUT, argv)


def _summary(report: AichatSeedReport) -> list[str]:
    return [f"done in {report.seconds:.1f} s"]


def main(argv: list[str] | None = None) -> None:
    command = SeedCommand("seed_aichat", __doc__)
    config, out = _parse(command, argv)
    opening = (
        f"tag {config.tag}: {config.users:,} users x {config.conversations} conversations"
        f" x {config.history} messages"
    )
    command.run("aichat.conversations", seed, config, out, opening, _summary)


if __name__ == "__main__":
    main()
