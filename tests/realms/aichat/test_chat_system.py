"""aichat conversations, messages, token_usage and ai_providers (seed 002, tables 5-7 and 13):
defaults, documented value lists, CHECKs, required columns, foreign keys and their ON DELETE."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.aichat.rows import (
    T0,
    conversation_fields,
    exists,
    make_conversation,
    make_message,
    make_provider,
    make_token_usage,
    make_user,
    message_fields,
    provider_fields,
    rejected,
    row,
    token_usage_fields,
)

MODELS = ["gpt-4", "gpt-4o", "gpt-3.5-turbo", "claude-3-opus", "claude-3-sonnet"]


@pytest.fixture
async def user_id(db: asyncpg.Connection) -> UUID:
    return await make_user(db)


@pytest.fixture
async def conversation_id(db: asyncpg.Connection, user_id: UUID) -> UUID:
    return await make_conversation(db, user_id)


# -- conversations ----------------------------------------------------------------------------


async def test_new_conversation_has_no_messages_no_tokens_and_is_not_archived(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    async with db.transaction():
        conversation = await row(db, "conversations", await make_conversation(db, user_id))
        now = await db.fetchval("SELECT localtimestamp")
    assert (conversation["message_count"], conversation["token_count"]) == (0, 0)
    assert (conversation["is_archived"], conversation["archived_at"]) == (False, None)
    assert conversation["description"] is None and conversation["system_prompt"] is None
    assert conversation["created_at"] == conversation["updated_at"] == now


@pytest.mark.parametrize("model", MODELS)
async def test_conversation_model_may_be_each_documented_option(
    db: asyncpg.Connection, user_id: UUID, model: str
) -> None:
    conversation_id = await make_conversation(db, user_id, model=model)
    assert (await row(db, "conversations", conversation_id))["model"] == model


@pytest.mark.parametrize("model", ["gpt-5", "GPT-4", "gemini-pro", "claude-3-haiku", ""])
async def test_conversation_model_outside_the_documented_options_is_rejected(
    db: asyncpg.Connection, user_id: UUID, model: str
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "conversations_model_valid",
        "conversations",
        **conversation_fields(user_id, model=model),
    )


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("message_count", "conversations_message_count_non_negative"),
        ("token_count", "conversations_token_count_non_negative"),
    ],
)
async def test_conversation_counter_below_zero_is_rejected(
    db: asyncpg.Connection, user_id: UUID, column: str, constraint: str
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "conversations",
        **conversation_fields(user_id, **{column: -1}),
    )


async def test_conversation_archived_without_archived_at_is_rejected(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "conversations_is_archived_needs_archived_at",
        "conversations",
        **conversation_fields(user_id, is_archived=True),
    )


async def test_archiving_a_conversation_with_its_time_is_accepted(
    db: asyncpg.Connection, conversation_id: UUID
) -> None:
    await db.execute(
        "UPDATE aichat.conversations SET is_archived = true, archived_at = $1 WHERE id = $2",
        T0,
        conversation_id,
    )
    assert (await row(db, "conversations", conversation_id))["archived_at"] == T0


async def test_conversation_title_may_be_500_characters_but_not_more(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    await make_conversation(db, user_id, title="t" * 500)
    with pytest.raises(asyncpg.StringDataRightTruncationError):
        await make_conversation(db, user_id, title="t" * 501)


@pytest.mark.parametrize(
    "column",
    [
        "user_id",
        "title",
        "model",
        "message_count",
        "token_count",
        "is_archived",
        "created_at",
        "updated_at",
    ],
)
async def test_conversation_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, user_id: UUID, column: str
) -> None:
    fields = conversation_fields(user_id, **{column: None})
    await rejected(db, asyncpg.NotNullViolationError, None, "conversations", **fields)


async def test_conversation_of_an_unknown_user_is_rejected(db: asyncpg.Connection) -> None:
    await rejected(
        db,
        asyncpg.ForeignKeyViolationError,
        "fk_conversations_user_id",
        "conversations",
        **conversation_fields(uuid4()),
    )


async def test_deleting_a_user_deletes_their_conversations_and_messages(
    db: asyncpg.Connection, user_id: UUID, conversation_id: UUID
) -> None:
    message_id = await make_message(db, conversation_id)
    kept = await make_conversation(db, await make_user(db))
    await db.execute("DELETE FROM aichat.users WHERE id = $1", user_id)
    assert not await exists(db, "conversations", conversation_id)
    assert not await exists(db, "messages", message_id)
    assert await exists(db, "conversations", kept)


# -- messages ---------------------------------------------------------------------------------


async def test_new_message_has_zero_tokens_and_is_not_deleted(
    db: asyncpg.Connection, conversation_id: UUID
) -> None:
    async with db.transaction():
        message = await row(db, "messages", await make_message(db, conversation_id))
        now = await db.fetchval("SELECT localtimestamp")
    assert message["token_count"] == 0
    assert message["prompt_tokens"] is None and message["completion_tokens"] is None
    assert message["model"] is None and message["language"] is None
    assert (message["is_deleted"], message["deleted_at"]) == (False, None)
    assert message["created_at"] == message["updated_at"] == now


@pytest.mark.parametrize("role", ["user", "assistant"])
async def test_message_role_may_be_user_or_assistant(
    db: asyncpg.Connection, conversation_id: UUID, role: str
) -> None:
    message_id = await make_message(db, conversation_id, role=role)
    assert (await row(db, "messages", message_id))["role"] == role


@pytest.mark.parametrize("role", ["system", "tool", "User", ""])
async def test_message_role_other_than_user_or_assistant_is_rejected(
    db: asyncpg.Connection, conversation_id: UUID, role: str
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "check_role",
        "messages",
        **message_fields(conversation_id, role=role),
    )


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("token_count", "messages_token_count_non_negative"),
        ("prompt_tokens", "messages_prompt_tokens_non_negative"),
        ("completion_tokens", "messages_completion_tokens_non_negative"),
    ],
)
async def test_message_token_count_below_zero_is_rejected(
    db: asyncpg.Connection, conversation_id: UUID, column: str, constraint: str
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "messages",
        **message_fields(conversation_id, **{column: -1}),
    )


async def test_assistant_message_keeps_its_token_split_model_and_language(
    db: asyncpg.Connection, conversation_id: UUID
) -> None:
    message_id = await make_message(
        db,
        conversation_id,
        role="assistant",
        content="Olá!",
        token_count=30,
        prompt_tokens=20,
        completion_tokens=10,
        model="gpt-4o-2024-08-06",
        language="pt",
    )
    message = await row(db, "messages", message_id)
    assert (message["token_count"], message["prompt_tokens"], message["completion_tokens"]) == (
        30,
        20,
        10,
    )
    assert (message["model"], message["language"]) == ("gpt-4o-2024-08-06", "pt")


async def test_message_language_code_may_be_10_characters_but_not_more(
    db: asyncpg.Connection, conversation_id: UUID
) -> None:
    await make_message(db, conversation_id, language="zh-Hant-TW")
    with pytest.raises(asyncpg.StringDataRightTruncationError):
        await make_message(db, conversation_id, language="zh-Hant-TWX")


async def test_message_deleted_without_deleted_at_is_rejected(
    db: asyncpg.Connection, conversation_id: UUID
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "messages_is_deleted_needs_deleted_at",
        "messages",
        **message_fields(conversation_id, is_deleted=True),
    )


async def test_soft_deleting_a_message_with_its_time_keeps_the_row(
    db: asyncpg.Connection, conversation_id: UUID
) -> None:
    message_id = await make_message(db, conversation_id)
    await db.execute(
        "UPDATE aichat.messages SET is_deleted = true, deleted_at = $1 WHERE id = $2",
        T0,
        message_id,
    )
    assert (await row(db, "messages", message_id))["is_deleted"] is True


@pytest.mark.parametrize(
    "column",
    ["conversation_id", "role", "content", "token_count", "is_deleted", "created_at", "updated_at"],
)
async def test_message_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, conversation_id: UUID, column: str
) -> None:
    fields = message_fields(conversation_id, **{column: None})
    await rejected(db, asyncpg.NotNullViolationError, None, "messages", **fields)


async def test_message_in_an_unknown_conversation_is_rejected(db: asyncpg.Connection) -> None:
    await rejected(
        db,
        asyncpg.ForeignKeyViolationError,
        "fk_messages_conversation_id",
        "messages",
        **message_fields(uuid4()),
    )


async def test_deleting_a_conversation_deletes_its_messages(
    db: asyncpg.Connection, user_id: UUID, conversation_id: UUID
) -> None:
    gone = await make_message(db, conversation_id)
    kept = await make_message(db, await make_conversation(db, user_id))
    await db.execute("DELETE FROM aichat.conversations WHERE id = $1", conversation_id)
    assert not await exists(db, "messages", gone)
    assert await exists(db, "messages", kept)


# -- token_usage ------------------------------------------------------------------------------


async def test_token_usage_created_at_defaults_to_the_inserting_transactions_time(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    async with db.transaction():
        usage = await row(db, "token_usage", await make_token_usage(db, user_id))
        now = await db.fetchval("SELECT localtimestamp")
    assert usage["created_at"] == now
    assert usage["conversation_id"] is None and usage["message_id"] is None


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
async def test_token_usage_provider_may_be_openai_anthropic_or_google(
    db: asyncpg.Connection, user_id: UUID, provider: str
) -> None:
    usage_id = await make_token_usage(db, user_id, provider=provider)
    assert (await row(db, "token_usage", usage_id))["provider"] == provider


@pytest.mark.parametrize("provider", ["azure", "OpenAI", "local", ""])
async def test_token_usage_provider_outside_the_three_is_rejected(
    db: asyncpg.Connection, user_id: UUID, provider: str
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "check_providers",
        "token_usage",
        **token_usage_fields(user_id, provider=provider),
    )


@pytest.mark.parametrize(("prompt", "completion", "total"), [(10, 5, 16), (10, 5, 14), (0, 0, 1)])
async def test_token_usage_total_other_than_prompt_plus_completion_is_rejected(
    db: asyncpg.Connection, user_id: UUID, prompt: int, completion: int, total: int
) -> None:
    fields = token_usage_fields(
        user_id, prompt_tokens=prompt, completion_tokens=completion, total_tokens=total
    )
    await rejected(
        db, asyncpg.CheckViolationError, "token_usage_total_tokens_is_sum", "token_usage", **fields
    )


async def test_token_usage_with_no_tokens_at_all_is_accepted(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    await make_token_usage(
        db,
        user_id,
        prompt_tokens=0,
        completion_tokens=0,
        total_tokens=0,
        cost_usd=Decimal(0),
    )


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        (
            {"prompt_tokens": -5, "completion_tokens": 20, "total_tokens": 15},
            "token_usage_prompt_tokens_non_negative",
        ),
        (
            {"prompt_tokens": 20, "completion_tokens": -5, "total_tokens": 15},
            "token_usage_completion_tokens_non_negative",
        ),
        ({"cost_usd": Decimal("-0.000001")}, "token_usage_cost_usd_non_negative"),
    ],
)
async def test_token_usage_negative_tokens_or_cost_are_rejected(
    db: asyncpg.Connection, user_id: UUID, fields: dict[str, Any], constraint: str
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "token_usage",
        **token_usage_fields(user_id, **fields),
    )


async def test_token_usage_cost_holds_up_to_9999_999999_dollars(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    usage_id = await make_token_usage(db, user_id, cost_usd=Decimal("9999.999999"))
    assert (await row(db, "token_usage", usage_id))["cost_usd"] == Decimal("9999.999999")
    with pytest.raises(asyncpg.NumericValueOutOfRangeError):
        await make_token_usage(db, user_id, cost_usd=Decimal("10000"))


async def test_token_usage_cost_keeps_six_decimal_places(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    usage_id = await make_token_usage(db, user_id, cost_usd=Decimal("0.0000014"))
    assert (await row(db, "token_usage", usage_id))["cost_usd"] == Decimal("0.000001")


@pytest.mark.parametrize("day", [date(2025, 1, 2), date(2025, 1, 31), date(2024, 2, 29)])
async def test_token_usage_billing_month_other_than_a_first_day_is_rejected(
    db: asyncpg.Connection, user_id: UUID, day: date
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "token_usage_billing_month_first_day",
        "token_usage",
        **token_usage_fields(user_id, billing_month=day),
    )


@pytest.mark.parametrize(
    "column",
    [
        "user_id",
        "provider",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
        "billing_month",
        "created_at",
    ],
)
async def test_token_usage_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, user_id: UUID, column: str
) -> None:
    fields = token_usage_fields(user_id, **{column: None})
    await rejected(db, asyncpg.NotNullViolationError, None, "token_usage", **fields)


@pytest.mark.parametrize("column", ["user_id", "conversation_id", "message_id"])
async def test_token_usage_with_an_unknown_reference_is_rejected(
    db: asyncpg.Connection, user_id: UUID, column: str
) -> None:
    fields = token_usage_fields(user_id, **{column: uuid4()})
    await rejected(
        db, asyncpg.ForeignKeyViolationError, f"fk_token_usage_{column}", "token_usage", **fields
    )


async def test_deleting_a_user_deletes_their_token_usage(
    db: asyncpg.Connection, user_id: UUID
) -> None:
    gone = await make_token_usage(db, user_id)
    kept = await make_token_usage(db, await make_user(db))
    await db.execute("DELETE FROM aichat.users WHERE id = $1", user_id)
    assert not await exists(db, "token_usage", gone)
    assert await exists(db, "token_usage", kept)


async def test_deleting_a_message_keeps_its_token_usage_without_the_message(
    db: asyncpg.Connection, user_id: UUID, conversation_id: UUID
) -> None:
    message_id = await make_message(db, conversation_id, role="assistant")
    usage_id = await make_token_usage(
        db, user_id, conversation_id=conversation_id, message_id=message_id
    )
    await db.execute("DELETE FROM aichat.messages WHERE id = $1", message_id)
    usage = await row(db, "token_usage", usage_id)
    assert (usage["conversation_id"], usage["message_id"]) == (conversation_id, None)
    assert usage["total_tokens"] == 15


async def test_deleting_a_conversation_keeps_its_token_usage_without_conversation_or_message(
    db: asyncpg.Connection, user_id: UUID, conversation_id: UUID
) -> None:
    message_id = await make_message(db, conversation_id, role="assistant")
    usage_id = await make_token_usage(
        db, user_id, conversation_id=conversation_id, message_id=message_id
    )
    await db.execute("DELETE FROM aichat.conversations WHERE id = $1", conversation_id)
    usage = await row(db, "token_usage", usage_id)
    assert (usage["user_id"], usage["conversation_id"], usage["message_id"]) == (
        user_id,
        None,
        None,
    )


# -- ai_providers -----------------------------------------------------------------------------


async def test_new_provider_is_active_available_unlimited_with_no_models(
    db: asyncpg.Connection,
) -> None:
    async with db.transaction():
        provider = await row(db, "ai_providers", await make_provider(db))
        now = await db.fetchval("SELECT localtimestamp")
    assert provider["supported_models"] == []
    assert (provider["is_active"], provider["is_available"]) == (True, True)
    assert (provider["requests_per_minute"], provider["requests_per_day"]) == (None, None)
    assert provider["created_at"] == provider["updated_at"] == now


@pytest.mark.parametrize("name", ["openai", "anthropic", "google"])
async def test_provider_name_may_be_openai_anthropic_or_google(
    db: asyncpg.Connection, name: str
) -> None:
    assert (await row(db, "ai_providers", await make_provider(db, name=name)))["name"] == name


@pytest.mark.parametrize("name", ["mistral", "OpenAI", ""])
async def test_provider_name_outside_the_three_is_rejected(
    db: asyncpg.Connection, name: str
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "ai_providers_name_valid",
        "ai_providers",
        **provider_fields(name=name),
    )


async def test_provider_name_is_unique(db: asyncpg.Connection) -> None:
    await make_provider(db, name="anthropic")
    await rejected(
        db,
        asyncpg.UniqueViolationError,
        "ai_providers_name_key",
        "ai_providers",
        **provider_fields(name="anthropic"),
    )


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        (
            "input_token_cost_per_1k",
            Decimal("-0.00000001"),
            "ai_providers_input_token_cost_per_1k_non_negative",
        ),
        (
            "output_token_cost_per_1k",
            Decimal("-0.00000001"),
            "ai_providers_output_token_cost_per_1k_non_negative",
        ),
        ("requests_per_minute", 0, "ai_providers_requests_per_minute_positive"),
        ("requests_per_day", 0, "ai_providers_requests_per_day_positive"),
    ],
)
async def test_provider_negative_price_or_zero_rate_limit_is_rejected(
    db: asyncpg.Connection, column: str, value: Any, constraint: str
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "ai_providers",
        **provider_fields(**{column: value}),
    )


async def test_provider_prices_keep_eight_decimals_up_to_99_99999999(
    db: asyncpg.Connection,
) -> None:
    provider_id = await make_provider(
        db,
        input_token_cost_per_1k=Decimal("0.00015000"),
        output_token_cost_per_1k=Decimal("99.99999999"),
        requests_per_minute=500,
        requests_per_day=10_000,
    )
    provider = await row(db, "ai_providers", provider_id)
    assert provider["input_token_cost_per_1k"] == Decimal("0.00015000")
    assert provider["output_token_cost_per_1k"] == Decimal("99.99999999")
    with pytest.raises(asyncpg.NumericValueOutOfRangeError):
        await make_provider(db, name="google", input_token_cost_per_1k=Decimal(100))


async def test_provider_supported_models_is_a_json_array(db: asyncpg.Connection) -> None:
    provider_id = await make_provider(db, supported_models=["gpt-4", "gpt-4o"])
    assert (await row(db, "ai_providers", provider_id))["supported_models"] == ["gpt-4", "gpt-4o"]


@pytest.mark.parametrize("value", [{"gpt-4": True}, "gpt-4", 3])
async def test_provider_supported_models_other_than_an_array_is_rejected(
    db: asyncpg.Connection, value: Any
) -> None:
    await rejected(
        db,
        asyncpg.CheckViolationError,
        "ai_providers_supported_models_is_array",
        "ai_providers",
        **provider_fields(supported_models=value),
    )


@pytest.mark.parametrize(
    "column",
    [
        "name",
        "input_token_cost_per_1k",
        "output_token_cost_per_1k",
        "supported_models",
        "is_active",
        "is_available",
        "created_at",
        "updated_at",
    ],
)
async def test_provider_required_or_defaulted_column_cannot_be_null(
    db: asyncpg.Connection, column: str
) -> None:
    await rejected(
        db, asyncpg.NotNullViolationError, None, "ai_providers", **provider_fields(**{column: None})
    )
