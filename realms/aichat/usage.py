"""Monthly quotas and usage accounting (usage_tracking, token_usage, the counters of users,
conversations and messages). A send reserves one message of the month under the user's
usage row lock, before any provider is called, so concurrent sends never overshoot; a reply
is charged in the transaction that commits it. Months are calendar months in UTC. Crossing
80 % or 100 % of a monthly quota (tokens or messages) notifies the user in that same
transaction (kernel.notify: in-app, push, e-mail per their preferences)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import asyncpg
import msgspec

from kernel.errors import QuotaExceeded
from kernel.notify import notify
from realms.aichat import REALM

# The plan of a user: the plans row whose upper(name) is users.plan_tier (schema notes).
_PLAN = """
SELECT p.name, p.monthly_token_quota, p.monthly_message_quota, p.max_conversations,
       p.max_messages_per_conversation
  FROM aichat.users u JOIN aichat.plans p ON upper(p.name) = u.plan_tier
 WHERE u.id = $1
"""

# The user's usage row for the current month, created or rolled over (counters back to 0
# when the stored month is older), locked until the caller's transaction ends.
_CURRENT = """
INSERT INTO aichat.usage_tracking AS t (user_id, billing_month, monthly_quota)
VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC')::date, $2)
ON CONFLICT (user_id) DO UPDATE SET
    monthly_quota = EXCLUDED.monthly_quota,
    tokens_used = CASE WHEN t.billing_month < EXCLUDED.billing_month THEN 0 ELSE t.tokens_used END,
    messages_count = CASE WHEN t.billing_month < EXCLUDED.billing_month
                          THEN 0 ELSE t.messages_count END,
    conversations_count = CASE WHEN t.billing_month < EXCLUDED.billing_month
                               THEN 0 ELSE t.conversations_count END,
    cost_this_month = CASE WHEN t.billing_month < EXCLUDED.billing_month
                           THEN 0 ELSE t.cost_this_month END,
    billing_month = greatest(t.billing_month, EXCLUDED.billing_month)
RETURNING billing_month, tokens_used, messages_count, conversations_count
"""

_CHARGE = """
WITH usage AS (
    INSERT INTO aichat.token_usage (user_id, conversation_id, message_id, provider, model,
                                    prompt_tokens, completion_tokens, total_tokens, cost_usd,
                                    billing_month)
    VALUES ($1::uuid, $2::uuid, $3::uuid, $4::text, $5::text, $6::int, $7::int, $6::int + $7::int,
            $8::numeric,
            date_trunc('month', now() AT TIME ZONE 'UTC')::date)
    RETURNING billing_month
), tracked AS (
    UPDATE aichat.usage_tracking SET tokens_used = tokens_used + $6 + $7,
           cost_this_month = cost_this_month + $8
     WHERE user_id = $1 AND billing_month = (SELECT billing_month FROM usage)
    RETURNING tokens_used, monthly_quota
), counted AS (
    UPDATE aichat.conversations SET token_count = token_count + $6 + $7,
           message_count = message_count + 1
     WHERE id = $2
)
UPDATE aichat.users SET
    monthly_token_used = CASE WHEN monthly_token_reset < (SELECT billing_month FROM usage)
                              THEN $6 + $7 ELSE monthly_token_used + $6 + $7 END,
    monthly_token_reset = greatest(monthly_token_reset, (SELECT billing_month FROM usage))
 WHERE id = $1
RETURNING (SELECT tokens_used FROM tracked), (SELECT monthly_quota FROM tracked),
          (SELECT billing_month FROM usage)
"""

# Shares of a monthly quota whose crossing the user is told about, highest first.
THRESHOLDS = (100, 80)


class Plan(msgspec.Struct, frozen=True):
    name: str
    monthly_token_quota: int
    monthly_message_quota: int | None
    max_conversations: int | None
    max_messages_per_conversation: int | None


class Charged(msgspec.Struct, frozen=True):
    tokens_used: int | None
    monthly_quota: int | None
    # The threshold of THRESHOLDS this reply crossed (the user was notified), or None.
    crossed: int | None = None


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


async def plan_of(conn: asyncpg.Connection, user_id: uuid.UUID) -> Plan:
    row = await conn.fetchrow(_PLAN, user_id)
    if row is None:  # a plan tier without its plans row: nothing may be spent
        return Plan("none", 0, 0, 0, 0)
    return Plan(
        row["name"],
        row["monthly_token_quota"],
        row["monthly_message_quota"],
        row["max_conversations"],
        row["max_messages_per_conversation"],
    )


async def reserve_message(conn: asyncpg.Connection, user_id: uuid.UUID, plan: Plan) -> None:
    """Count one message of this month, or raise QuotaExceeded (with the reset date) when the
    plan's monthly message or token quota is used up. Call inside the transaction that stores
    the message: the usage row stays locked until it ends, so concurrent sends queue here."""
    row = await conn.fetchrow(_CURRENT, user_id, plan.monthly_token_quota)
    assert row is not None
    resets_on = next_month(row["billing_month"]).isoformat()
    if row["tokens_used"] >= plan.monthly_token_quota:
        raise QuotaExceeded(
            f"the {plan.name} plan's {plan.monthly_token_quota} tokens of this month are used;"
            f" the quota resets on {resets_on}",
            resets_on=resets_on,
        )
    limit = plan.monthly_message_quota
    if limit is not None and row["messages_count"] >= limit:
        raise QuotaExceeded(
            f"the {plan.name} plan's {limit} messages of this month are used;"
            f" the quota resets on {resets_on}",
            resets_on=resets_on,
        )
    await conn.execute(
        "UPDATE aichat.usage_tracking SET messages_count = messages_count + 1 WHERE user_id = $1",
        user_id,
    )
    used = row["messages_count"]
    percent = crossed(used, used + 1, limit)
    if percent is not None and limit is not None:
        await notify_quota(conn, user_id, "messages", percent, limit, row["billing_month"])


def crossed(before: int, after: int, quota: int | None) -> int | None:
    """The highest share of THRESHOLDS (percent) of `quota` that `after` reaches and
    `before` did not; None when none is crossed (or there is no quota)."""
    if quota is None or quota <= 0:
        return None
    for percent in THRESHOLDS:
        if before * 100 < percent * quota <= after * 100:
            return percent
    return None


async def notify_quota(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    resource: str,
    percent: int,
    quota: int,
    month: date,
) -> None:
    """Tell the user that this month's `resource` (tokens, messages) reached `percent` of
    `quota`: `quota_exceeded` at 100 %, else `quota_warning`; once per month, resource and
    threshold (the event key), in the caller's transaction."""
    resets_on = next_month(month).isoformat()
    exceeded = percent >= 100
    if exceeded:
        title = f"Your monthly {resource} quota is used up"
        message = (
            f"You have used all {quota:,} {resource} of this month; new messages are refused"
            f" until the quota resets on {resets_on}."
        )
    else:
        title = f"{percent} % of your monthly {resource} quota used"
        message = (
            f"You have used {percent} % of this month's {quota:,} {resource}; the quota"
            f" resets on {resets_on}."
        )
    await notify(
        conn,
        realm=REALM,
        event_key=f"quota:{user_id}:{month:%Y-%m}:{resource}:{percent}",
        recipients=[user_id],
        notification_type="quota_exceeded" if exceeded else "quota_warning",
        title=title,
        message=message,
        action_url="/v1/aichat/usage",
        related_entity_type="usage_tracking",
        priority="high" if exceeded else "medium",
    )


async def release_message(conn: asyncpg.Connection | asyncpg.Pool, user_id: uuid.UUID) -> None:
    """Give back a reserved message whose reply never started (the provider refused)."""
    await conn.execute(
        "UPDATE aichat.usage_tracking SET messages_count = greatest(messages_count - 1, 0)"
        " WHERE user_id = $1",
        user_id,
    )


async def count_conversation(conn: asyncpg.Connection, user_id: uuid.UUID, plan: Plan) -> None:
    """Count a new conversation of this month (usage_tracking.conversations_count)."""
    await conn.fetchrow(_CURRENT, user_id, plan.monthly_token_quota)
    await conn.execute(
        "UPDATE aichat.usage_tracking SET conversations_count = conversations_count + 1"
        " WHERE user_id = $1",
        user_id,
    )


async def charge_reply(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    provider: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    cost: Decimal,
) -> Charged:
    """token_usage row, usage_tracking, users and conversation counters for one reply, in the
    caller's transaction (the one inserting the reply)."""
    row = await conn.fetchrow(
        _CHARGE,
        user_id,
        conversation_id,
        message_id,
        provider,
        model,
        prompt_tokens,
        completion_tokens,
        cost,
    )
    assert row is not None
    tokens_used, quota, month = row[0], row[1], row[2]
    percent = None
    if tokens_used is not None:
        percent = crossed(tokens_used - prompt_tokens - completion_tokens, tokens_used, quota)
        if percent is not None:
            await notify_quota(conn, user_id, "tokens", percent, quota, month)
    return Charged(tokens_used, quota, percent)
