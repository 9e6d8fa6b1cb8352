"""realms/creator/sql/3005: creator.transactions, creator.tips, creator.tips_received,
message_unlocked_for(), content_accessible_to()."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.creator.rows import (
    Chat,
    column,
    completed,
    db_now,
    fails,
    insert,
    make_content,
    make_creator,
    make_published_content,
    make_stream,
    make_subscription,
    make_tip,
    make_transaction,
    make_user,
    rejects,
    unique,
)


@pytest.fixture
async def pair(db: asyncpg.Connection) -> tuple[UUID, UUID]:
    """(fan, creator)."""
    return await make_user(db), await make_creator(db)


class Premium:
    """A conversation in which the creator sent a message priced 1500."""

    def __init__(self, chat: Chat, message_id: UUID) -> None:
        self.chat, self.message_id = chat, message_id

    async def buy(self, db: asyncpg.Connection, **fields: Any) -> UUID:
        fields.setdefault("gross_amount", 1500)
        fields.setdefault("message_id", self.message_id)
        return await make_transaction(
            db, self.chat.fan_id, self.chat.creator_id, "message_purchase", **fields
        )

    async def unlocked_for(self, db: asyncpg.Connection, user_id: UUID) -> bool | None:
        result: bool | None = await db.fetchval(
            "SELECT creator.message_unlocked_for($1, $2)", self.message_id, user_id
        )
        return result


@pytest.fixture
async def premium(db: asyncpg.Connection) -> Premium:
    chat = await Chat.open(db)
    message_id = await chat.send(chat.creator_id, body="the secret", price=1500)
    return Premium(chat, message_id)


async def tx_fields(pair: tuple[UUID, UUID], **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "user_id": pair[0],
        "creator_id": pair[1],
        "transaction_type": "tip",
        "gross_amount": 1000,
        "platform_fee": 200,
        "net_amount": 800,
        "idempotency_key": unique("key-"),
    }
    values.update(fields)
    return values


# -- transactions: columns and constraints ------------------------------------------------------


async def test_transaction_defaults(db: asyncpg.Connection, pair: tuple[UUID, UUID]) -> None:
    tx_id = await make_transaction(db, *pair)
    row = await db.fetchrow("SELECT * FROM creator.transactions WHERE id = $1", tx_id)
    assert (row["status"], row["currency"], row["metadata"]) == ("pending", "USD", {})
    assert row["completed_at"] is None and row["failure_reason"] is None


async def test_every_documented_transaction_type_is_accepted(db: asyncpg.Connection) -> None:
    fan, creator_id = await make_user(db), await make_creator(db)
    sub = await make_subscription(db, fan, creator_id, price=999)
    post = await make_content(db, creator_id, is_premium=True, price=300)
    chat = await Chat.open(db)
    priced = await chat.send(chat.creator_id, price=700)
    stream = await make_stream(db, creator_id, is_premium=True, price=400)
    tip = await completed(db, await make_transaction(db, fan, creator_id, "tip"))
    made = {
        "tip": tip,
        "subscription": await make_transaction(
            db, fan, creator_id, "subscription", gross_amount=999, subscription_id=sub
        ),
        "content_purchase": await make_transaction(
            db, fan, creator_id, "content_purchase", gross_amount=300, content_id=post
        ),
        "message_purchase": await make_transaction(
            db,
            chat.fan_id,
            chat.creator_id,
            "message_purchase",
            gross_amount=700,
            message_id=priced,
        ),
        "stream_access": await make_transaction(
            db, fan, creator_id, "stream_access", gross_amount=400, live_stream_id=stream
        ),
        "payout": await make_transaction(db, creator_id, creator_id, "payout"),
        "refund": await make_transaction(
            db, fan, creator_id, "refund", gross_amount=500, related_transaction_id=tip
        ),
    }
    for transaction_type, tx_id in made.items():
        assert await column(db, "transactions", "transaction_type", tx_id) == transaction_type


@pytest.mark.parametrize("transaction_type", ["donation", "Tip", "withdrawal", ""])
async def test_undocumented_transaction_type_is_rejected(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], transaction_type: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "transactions_transaction_type_valid",
        "transactions",
        **await tx_fields(pair, transaction_type=transaction_type),
    )


@pytest.mark.parametrize("status", ["succeeded", "Pending", "disputed"])
async def test_undocumented_transaction_status_is_rejected(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], status: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "transactions_status_valid",
        "transactions",
        **await tx_fields(pair, status=status),
    )


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        (
            {"gross_amount": 0, "platform_fee": 0, "net_amount": 0},
            "transactions_gross_amount_positive",
        ),
        (
            {"gross_amount": -100, "platform_fee": 0, "net_amount": -100},
            "transactions_gross_amount_positive",
        ),
        ({"platform_fee": -1, "net_amount": 1001}, "transactions_platform_fee_non_negative"),
        ({"platform_fee": 1001, "net_amount": -1}, "transactions_platform_fee_within_gross"),
        ({"net_amount": 801}, "transactions_net_amount_is_gross_minus_fee"),
        ({"net_amount": 1000}, "transactions_net_amount_is_gross_minus_fee"),
        ({"currency": "eur"}, "transactions_currency_format"),
        ({"idempotency_key": "  "}, "transactions_idempotency_key_not_blank"),
        ({"payment_method": "cheque"}, "transactions_payment_method_valid"),
        ({"status": "failed"}, "transactions_failed_has_reason"),
        ({"status": "completed"}, "transactions_completed_has_time"),
        ({"status": "refunded"}, "transactions_completed_has_time"),
        ({"metadata": ["x"]}, "transactions_metadata_object"),
    ],
)
async def test_inconsistent_transaction_is_rejected(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], fields: dict[str, Any], constraint: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "transactions",
        **await tx_fields(pair, **fields),
    )


async def test_fee_may_take_the_whole_amount(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    assert await make_transaction(db, *pair, gross_amount=100, platform_fee=100)


@pytest.mark.parametrize("method", ["card", "wallet", "bank_transfer", "paypal", "crypto"])
async def test_payment_method_is_accepted(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], method: str
) -> None:
    assert await make_transaction(db, *pair, payment_method=method)


async def test_idempotency_key_is_required_and_unique(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    await rejects(
        db,
        asyncpg.NotNullViolationError,
        None,
        "transactions",
        **await tx_fields(pair, idempotency_key=None),
    )
    await make_transaction(db, *pair, idempotency_key="checkout-1")
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "transactions_idempotency_key_key",
        "transactions",
        **await tx_fields(pair, idempotency_key="checkout-1"),
    )


async def test_nobody_pays_themselves(db: asyncpg.Connection) -> None:
    creator_id = await make_creator(db)
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "transactions_payer_not_creator",
        "transactions",
        **await tx_fields((creator_id, creator_id)),
    )


async def test_payout_goes_to_the_creator_themselves(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "transactions_payout_to_creator",
        "transactions",
        **await tx_fields(pair, transaction_type="payout"),
    )


@pytest.mark.parametrize(
    ("reference", "constraint"),
    [
        ("subscription_id", "transactions_subscription_id_matches_type"),
        ("content_id", "transactions_content_id_matches_type"),
        ("message_id", "transactions_message_id_matches_type"),
        ("live_stream_id", "transactions_live_stream_id_matches_type"),
    ],
)
async def test_item_reference_only_on_its_own_type(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], reference: str, constraint: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "transactions",
        **await tx_fields(pair, **{reference: uuid4()}),
    )


async def test_refund_and_only_a_refund_names_an_original(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    original = await completed(db, await make_transaction(db, *pair))
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "transactions_refund_has_original",
        "transactions",
        **await tx_fields(pair, transaction_type="refund"),
    )
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "transactions_refund_has_original",
        "transactions",
        **await tx_fields(pair, related_transaction_id=original),
    )


async def test_transaction_is_not_its_own_original(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    own_id = uuid4()
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "transactions_not_own_original",
        "transactions",
        **await tx_fields(
            pair, id=own_id, transaction_type="refund", related_transaction_id=own_id
        ),
    )


async def test_processor_transaction_id_is_unique_per_processor(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    await make_transaction(db, *pair, payment_processor="stripe", processor_transaction_id="ch_1")
    assert await make_transaction(
        db, *pair, payment_processor="paypal", processor_transaction_id="ch_1"
    )
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "transactions_processor_transaction_id_key",
        "transactions",
        **await tx_fields(pair, payment_processor="stripe", processor_transaction_id="ch_1"),
    )


@pytest.mark.parametrize("side", ["user_id", "creator_id"])
async def test_transaction_of_unknown_user_is_rejected(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], side: str
) -> None:
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        f"transactions_{side}_fkey",
        "transactions",
        **await tx_fields(pair, **{side: uuid4()}),
    )


async def test_hard_deleting_a_payer_fails(db: asyncpg.Connection, pair: tuple[UUID, UUID]) -> None:
    await make_transaction(db, *pair)
    await fails(
        db,
        asyncpg.ForeignKeyViolationError,
        "transactions_user_id_fkey",
        "DELETE FROM creator.users WHERE id = $1",
        pair[0],
    )


async def test_purchase_outlives_its_purged_content(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    post = await make_content(db, pair[1], is_premium=True, price=300)
    tx_id = await completed(
        db,
        await make_transaction(db, *pair, "content_purchase", gross_amount=300, content_id=post),
    )
    await db.execute("DELETE FROM creator.content WHERE id = $1", post)
    row = await db.fetchrow("SELECT * FROM creator.transactions WHERE id = $1", tx_id)
    assert (row["content_id"], row["status"], row["gross_amount"]) == (None, "completed", 300)


async def test_a_bought_message_keeps_its_conversation(
    db: asyncpg.Connection, premium: Premium
) -> None:
    await premium.buy(db)
    await fails(
        db,
        asyncpg.ForeignKeyViolationError,
        "transactions_message_id_fkey",
        "DELETE FROM creator.conversations WHERE id = $1",
        premium.chat.id,
    )


async def test_transaction_update_moves_updated_at(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    past = await db_now(db, "-1 hour")
    tx_id = await make_transaction(db, *pair, created_at=past, updated_at=past)
    await db.execute("UPDATE creator.transactions SET status = 'processing' WHERE id = $1", tx_id)
    assert await column(db, "transactions", "updated_at", tx_id) > past


# -- one live purchase per buyer and item --------------------------------------------------------


async def test_a_message_is_bought_once(db: asyncpg.Connection, premium: Premium) -> None:
    await premium.buy(db)
    with pytest.raises(asyncpg.UniqueViolationError) as info:
        await premium.buy(db)
    assert info.value.constraint_name == "transactions_one_message_purchase"


@pytest.mark.parametrize("ended", ["failed", "cancelled"])
async def test_a_failed_purchase_may_be_retried(
    db: asyncpg.Connection, premium: Premium, ended: str
) -> None:
    first = await premium.buy(db)
    await db.execute(
        "UPDATE creator.transactions SET status = $2, failure_reason = 'card declined'"
        " WHERE id = $1",
        first,
        ended,
    )
    assert await premium.buy(db)


async def test_content_is_bought_once(db: asyncpg.Connection, pair: tuple[UUID, UUID]) -> None:
    post = await make_content(db, pair[1], is_premium=True, price=300)
    await make_transaction(db, *pair, "content_purchase", gross_amount=300, content_id=post)
    with pytest.raises(asyncpg.UniqueViolationError) as info:
        await make_transaction(db, *pair, "content_purchase", gross_amount=300, content_id=post)
    assert info.value.constraint_name == "transactions_one_content_purchase"


async def test_stream_access_is_bought_once(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    stream = await make_stream(db, pair[1], is_premium=True, price=400)
    await make_transaction(db, *pair, "stream_access", gross_amount=400, live_stream_id=stream)
    with pytest.raises(asyncpg.UniqueViolationError) as info:
        await make_transaction(db, *pair, "stream_access", gross_amount=400, live_stream_id=stream)
    assert info.value.constraint_name == "transactions_one_stream_access"


# -- check_new_transaction() ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "transaction_type", ["subscription", "content_purchase", "message_purchase", "stream_access"]
)
async def test_purchase_must_name_what_it_pays_for(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], transaction_type: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "transactions_reference_required",
        "transactions",
        **await tx_fields(pair, transaction_type=transaction_type),
    )


async def test_fan_buys_the_creators_priced_message(
    db: asyncpg.Connection, premium: Premium
) -> None:
    assert await premium.buy(db)


async def test_creator_cannot_buy_their_own_message(
    db: asyncpg.Connection, premium: Premium
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_transaction(
            db,
            premium.chat.creator_id,
            await make_creator(db),
            "message_purchase",
            gross_amount=1500,
            message_id=premium.message_id,
        )
    assert info.value.constraint_name == "transactions_reference_matches_parties"


async def test_only_the_conversations_fan_buys_its_message(
    db: asyncpg.Connection, premium: Premium
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_transaction(
            db,
            await make_user(db),
            premium.chat.creator_id,
            "message_purchase",
            gross_amount=1500,
            message_id=premium.message_id,
        )
    assert info.value.constraint_name == "transactions_reference_matches_parties"


async def test_a_fans_own_message_is_not_for_sale(db: asyncpg.Connection) -> None:
    chat = await Chat.open(db)
    own = await chat.send(chat.fan_id)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_transaction(
            db, chat.fan_id, chat.creator_id, "message_purchase", gross_amount=100, message_id=own
        )
    assert info.value.constraint_name == "transactions_reference_matches_parties"


async def test_an_unpriced_message_is_not_for_sale(db: asyncpg.Connection) -> None:
    chat = await Chat.open(db)
    free = await chat.send(chat.creator_id)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_transaction(
            db, chat.fan_id, chat.creator_id, "message_purchase", gross_amount=100, message_id=free
        )
    assert info.value.constraint_name == "transactions_amount_matches_price"


@pytest.mark.parametrize("gross_amount", [1499, 1501])
async def test_message_is_bought_at_its_price(
    db: asyncpg.Connection, premium: Premium, gross_amount: int
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await premium.buy(db, gross_amount=gross_amount, platform_fee=0)
    assert info.value.constraint_name == "transactions_amount_matches_price"


async def test_message_purchase_of_unknown_message_is_rejected(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        "transactions_message_id_fkey",
        "transactions",
        **await tx_fields(pair, transaction_type="message_purchase", message_id=uuid4()),
    )


async def test_content_is_bought_from_its_creator_at_its_price(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    post = await make_content(db, pair[1], is_premium=True, price=300)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_transaction(
            db,
            pair[0],
            await make_creator(db),
            "content_purchase",
            gross_amount=300,
            content_id=post,
        )
    assert info.value.constraint_name == "transactions_reference_matches_parties"
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_transaction(db, *pair, "content_purchase", gross_amount=301, content_id=post)
    assert info.value.constraint_name == "transactions_amount_matches_price"
    free = await make_content(db, pair[1])
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_transaction(db, *pair, "content_purchase", gross_amount=300, content_id=free)
    assert info.value.constraint_name == "transactions_amount_matches_price"


async def test_stream_access_is_bought_from_its_creator_at_its_price(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    stream = await make_stream(db, pair[1], is_premium=True, price=400)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_transaction(
            db,
            pair[0],
            await make_creator(db),
            "stream_access",
            gross_amount=400,
            live_stream_id=stream,
        )
    assert info.value.constraint_name == "transactions_reference_matches_parties"
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_transaction(db, *pair, "stream_access", gross_amount=399, live_stream_id=stream)
    assert info.value.constraint_name == "transactions_amount_matches_price"


async def test_subscription_is_paid_by_its_subscriber_at_its_price(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    sub = await make_subscription(db, *pair, price=999)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_transaction(
            db, await make_user(db), pair[1], "subscription", gross_amount=999, subscription_id=sub
        )
    assert info.value.constraint_name == "transactions_reference_matches_parties"
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_transaction(db, *pair, "subscription", gross_amount=1000, subscription_id=sub)
    assert info.value.constraint_name == "transactions_amount_matches_price"


async def test_refunds_never_exceed_what_was_charged(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    original = await completed(db, await make_transaction(db, *pair, gross_amount=1000))

    async def refund(amount: int) -> UUID:
        return await make_transaction(
            db,
            *pair,
            "refund",
            gross_amount=amount,
            platform_fee=0,
            related_transaction_id=original,
        )

    first = await refund(600)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await refund(401)
    assert info.value.constraint_name == "transactions_refund_within_original"
    await db.execute(
        "UPDATE creator.transactions SET status = 'failed', failure_reason = 'x' WHERE id = $1",
        first,
    )
    assert await refund(1000)


@pytest.mark.parametrize("mismatch", ["other_payer", "refund_of_refund", "payout", "currency"])
async def test_refund_must_match_its_original(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], mismatch: str
) -> None:
    original = await completed(db, await make_transaction(db, *pair, gross_amount=1000))
    payer = pair[0]
    fields: dict[str, Any] = {}
    if mismatch == "other_payer":
        payer = await make_user(db)
    elif mismatch == "refund_of_refund":
        original = await make_transaction(
            db, *pair, "refund", gross_amount=10, platform_fee=0, related_transaction_id=original
        )
    elif mismatch == "payout":
        original = await make_transaction(db, pair[1], pair[1], "payout")
    else:
        fields["currency"] = "EUR"
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_transaction(
            db,
            payer,
            pair[1],
            "refund",
            gross_amount=5,
            platform_fee=0,
            related_transaction_id=original,
            **fields,
        )
    assert info.value.constraint_name == "transactions_refund_within_original"


# -- guard_transaction_update() -------------------------------------------------------------------


@pytest.mark.parametrize(
    "assignment",
    [
        "user_id = $2",
        "creator_id = $2",
        "transaction_type = 'subscription'",
        "idempotency_key = 'other'",
        "currency = 'EUR'",
        "related_transaction_id = id",
        "message_id = $3",
    ],
)
async def test_who_what_and_key_of_a_transaction_are_immutable(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], assignment: str
) -> None:
    tx_id = await make_transaction(db, *pair)
    await fails(
        db,
        asyncpg.CheckViolationError,
        "transactions_immutable",
        f"UPDATE creator.transactions SET {assignment} WHERE id = $1"
        " AND $2::uuid IS NOT NULL AND $3::uuid IS NOT NULL",
        tx_id,
        await make_creator(db),
        uuid4(),
    )


async def test_amounts_may_change_until_the_payment_settles(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    change = (
        "UPDATE creator.transactions SET platform_fee = platform_fee + 1,"
        " net_amount = net_amount - 1 WHERE id = $1"
    )
    tx_id = await make_transaction(db, *pair)
    await db.execute(change, tx_id)
    await completed(db, tx_id)
    await fails(db, asyncpg.CheckViolationError, "transactions_immutable", change, tx_id)


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (["processing", "completed", "refunded"], True),
        (["completed"], True),
        (["failed"], True),
        (["cancelled"], True),
        (["processing", "failed"], True),
        (["processing", "cancelled"], True),
        (["completed", "pending"], False),
        (["failed", "completed"], False),
        (["cancelled", "pending"], False),
        (["refunded"], False),
        (["completed", "refunded", "completed"], False),
        (["processing", "pending"], False),
    ],
)
async def test_status_only_moves_forward(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], path: list[str], allowed: bool
) -> None:
    tx_id = await make_transaction(db, *pair)
    move = (
        "UPDATE creator.transactions SET status = $2, completed_at = coalesce(completed_at, now()),"
        " failure_reason = 'declined' WHERE id = $1"
    )
    for status in path[:-1]:
        await db.execute(move, tx_id, status)
    if allowed:
        await db.execute(move, tx_id, path[-1])
        assert await column(db, "transactions", "status", tx_id) == path[-1]
    else:
        await fails(
            db, asyncpg.CheckViolationError, "transactions_status_transition", move, tx_id, path[-1]
        )


# -- tips -----------------------------------------------------------------------------------------


async def test_tip_defaults(db: asyncpg.Connection, pair: tuple[UUID, UUID]) -> None:
    row = await db.fetchrow("SELECT * FROM creator.tips WHERE id = $1", await make_tip(db, *pair))
    assert (row["is_anonymous"], row["currency"]) == (False, "USD")
    assert row["message"] is None and row["content_id"] is None


async def test_tip_with_message_and_context(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    post = await make_content(db, pair[1])
    tip_id = await make_tip(
        db, *pair, message="love it", is_anonymous=True, content_id=post, payment_method="card"
    )
    assert await column(db, "tips", "content_id", tip_id) == post


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"message": ""}, "tips_message_length"),
        ({"message": "x" * 501}, "tips_message_length"),
        ({"payment_method": "gift"}, "tips_payment_method_valid"),
    ],
)
async def test_malformed_tip_is_rejected(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], fields: dict[str, Any], constraint: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_tip(db, *pair, **fields)
    assert info.value.constraint_name == constraint


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"amount": 0}, "tips_amount_positive"),
        ({"amount": -5}, "tips_amount_positive"),
        ({"currency": "us"}, "tips_currency_format"),
        ({"creator_id": "tipper"}, "tips_not_self"),
    ],
)
async def test_tip_invariants_hold_even_without_the_transaction_check(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], fields: dict[str, Any], constraint: str
) -> None:
    # trg_tips_check ties amount, currency and parties to the transaction, whose own CHECKs
    # already exclude these; the tip's CHECKs are what the table rests on without it.
    tx_id = await make_transaction(db, *pair)
    values: dict[str, Any] = {
        "tipper_id": pair[0],
        "creator_id": pair[1],
        "transaction_id": tx_id,
        "amount": 1000,
    }
    values.update(fields)
    if values["creator_id"] == "tipper":
        values["creator_id"] = pair[0]
    with pytest.raises(asyncpg.CheckViolationError) as info:
        async with db.transaction():
            await db.execute("ALTER TABLE creator.tips DISABLE TRIGGER trg_tips_check")
            await insert(db, "tips", **values)
    assert info.value.constraint_name == constraint


async def test_tip_has_at_most_one_context(db: asyncpg.Connection, pair: tuple[UUID, UUID]) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_tip(
            db,
            *pair,
            content_id=await make_content(db, pair[1]),
            live_stream_id=await make_stream(db, pair[1]),
        )
    assert info.value.constraint_name == "tips_one_context"


async def test_one_tip_per_transaction(db: asyncpg.Connection, pair: tuple[UUID, UUID]) -> None:
    tip_id = await make_tip(db, *pair)
    tx_id = await column(db, "tips", "transaction_id", tip_id)
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "tips_transaction_id_key",
        "tips",
        tipper_id=pair[0],
        creator_id=pair[1],
        transaction_id=tx_id,
        amount=500,
    )


async def test_tip_of_unknown_transaction_is_rejected(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        "tips_transaction_id_fkey",
        "tips",
        tipper_id=pair[0],
        creator_id=pair[1],
        transaction_id=uuid4(),
        amount=500,
    )


@pytest.mark.parametrize("mismatch", ["type", "payer", "creator", "amount", "currency"])
async def test_tip_must_match_its_transaction(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], mismatch: str
) -> None:
    fan, creator_id = pair
    fields: dict[str, Any] = {"transaction_type": "tip", "gross_amount": 500}
    tip: dict[str, Any] = {"tipper_id": fan, "creator_id": creator_id, "amount": 500}
    if mismatch == "type":
        fields["transaction_type"] = "content_purchase"
        fields["content_id"] = await make_content(db, creator_id, is_premium=True, price=500)
    elif mismatch == "payer":
        tip["tipper_id"] = await make_user(db)
    elif mismatch == "creator":
        tip["creator_id"] = await make_creator(db)
    elif mismatch == "amount":
        tip["amount"] = 501
    else:
        tip["currency"] = "EUR"
    tx_id = await make_transaction(db, fan, creator_id, platform_fee=0, **fields)
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "tips_transaction_matches",
        "tips",
        transaction_id=tx_id,
        **tip,
    )


@pytest.mark.parametrize("context", ["content", "message", "stream"])
async def test_tip_context_must_belong_to_the_tipped_creator(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], context: str
) -> None:
    other = await make_creator(db)
    if context == "content":
        fields = {"content_id": await make_content(db, other)}
    elif context == "stream":
        fields = {"live_stream_id": await make_stream(db, other)}
    else:
        chat = await Chat.open(db)  # a conversation between two other people
        fields = {"message_id": await chat.send(chat.creator_id)}
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_tip(db, *pair, **fields)
    assert info.value.constraint_name == "tips_context_matches_creator"


async def test_tip_on_a_message_of_the_tippers_conversation(db: asyncpg.Connection) -> None:
    chat = await Chat.open(db)
    message_id = await chat.send(chat.creator_id)
    assert await make_tip(db, chat.fan_id, chat.creator_id, message_id=message_id)


@pytest.mark.parametrize("context", ["content", "stream"])
async def test_tip_outlives_its_context(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], context: str
) -> None:
    if context == "content":
        target = await make_content(db, pair[1])
        tip_id = await make_tip(db, *pair, content_id=target)
        await db.execute("DELETE FROM creator.content WHERE id = $1", target)
        assert await column(db, "tips", "content_id", tip_id) is None
    else:
        target = await make_stream(db, pair[1])
        tip_id = await make_tip(db, *pair, live_stream_id=target)
        await db.execute("DELETE FROM creator.live_streams WHERE id = $1", target)
        assert await column(db, "tips", "live_stream_id", tip_id) is None


async def test_tip_outlives_its_message(db: asyncpg.Connection) -> None:
    chat = await Chat.open(db)
    message_id = await chat.send(chat.creator_id)
    tip_id = await make_tip(db, chat.fan_id, chat.creator_id, message_id=message_id)
    await db.execute("DELETE FROM creator.messages WHERE id = $1", message_id)
    assert await column(db, "tips", "message_id", tip_id) is None


async def test_tips_received_hides_anonymous_tippers_and_unpaid_tips(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    fan, creator_id = pair
    named = await make_tip(db, fan, creator_id, message="hi")
    anonymous = await make_tip(db, fan, creator_id, is_anonymous=True)
    unpaid = await make_tip(db, fan, creator_id)
    for tip_id in (named, anonymous):
        await completed(db, await column(db, "tips", "transaction_id", tip_id))
    rows = await db.fetch(
        "SELECT id, tipper_id, is_anonymous FROM creator.tips_received WHERE creator_id = $1",
        creator_id,
    )
    seen = {r["id"]: r["tipper_id"] for r in rows}
    assert seen == {named: fan, anonymous: None}
    assert unpaid not in seen


async def test_tip_update_moves_updated_at(db: asyncpg.Connection, pair: tuple[UUID, UUID]) -> None:
    past = await db_now(db, "-1 day")
    tip_id = await make_tip(db, *pair, created_at=past, updated_at=past)
    await db.execute("UPDATE creator.tips SET message = 'thanks' WHERE id = $1", tip_id)
    assert await column(db, "tips", "updated_at", tip_id) > past


# -- message_unlocked_for() -----------------------------------------------------------------------


async def test_locked_message_opens_only_after_a_completed_purchase(
    db: asyncpg.Connection, premium: Premium
) -> None:
    fan = premium.chat.fan_id
    assert await premium.unlocked_for(db, fan) is False
    purchase = await premium.buy(db)
    assert await premium.unlocked_for(db, fan) is False
    await completed(db, purchase)
    assert await premium.unlocked_for(db, fan) is True


async def test_locked_message_is_open_to_its_sender(
    db: asyncpg.Connection, premium: Premium
) -> None:
    assert await premium.unlocked_for(db, premium.chat.creator_id) is True


async def test_refunded_purchase_locks_the_message_again(
    db: asyncpg.Connection, premium: Premium
) -> None:
    purchase = await completed(db, await premium.buy(db))
    await db.execute("UPDATE creator.transactions SET status = 'refunded' WHERE id = $1", purchase)
    assert await premium.unlocked_for(db, premium.chat.fan_id) is False


async def test_ordinary_message_is_never_locked(db: asyncpg.Connection) -> None:
    chat = await Chat.open(db)
    message_id = await chat.send(chat.creator_id)
    assert (
        await db.fetchval("SELECT creator.message_unlocked_for($1, $2)", message_id, chat.fan_id)
        is True
    )


async def test_unlock_of_unknown_message_is_null(db: asyncpg.Connection) -> None:
    assert (
        await db.fetchval("SELECT creator.message_unlocked_for($1, $2)", uuid4(), uuid4()) is None
    )


# -- content_accessible_to() ----------------------------------------------------------------------


async def accessible(db: asyncpg.Connection, content_id: UUID, user_id: UUID) -> bool | None:
    result: bool | None = await db.fetchval(
        "SELECT creator.content_accessible_to($1, $2)", content_id, user_id
    )
    return result


async def test_public_published_content_is_open_to_all(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    post = await make_published_content(db, pair[1])
    assert await accessible(db, post, pair[0]) is True


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "draft"},
        {"status": "archived"},
        {"moderation_status": "pending"},
        {"moderation_status": "rejected"},
        {"moderation_status": "removed"},
        {"deleted_at": "now"},
    ],
)
async def test_unpublished_or_moderated_content_is_hidden_except_from_its_creator(
    db: asyncpg.Connection, pair: tuple[UUID, UUID], fields: dict[str, Any]
) -> None:
    if fields.get("deleted_at") == "now":
        fields["deleted_at"] = await db_now(db)
    post = await make_published_content(db, pair[1], **fields)
    assert await accessible(db, post, pair[0]) is False
    assert await accessible(db, post, pair[1]) is True


async def test_premium_content_needs_a_completed_purchase(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    post = await make_published_content(db, pair[1], is_premium=True, price=300)
    await make_subscription(db, *pair)
    assert await accessible(db, post, pair[0]) is False
    purchase = await make_transaction(
        db, *pair, "content_purchase", gross_amount=300, content_id=post
    )
    assert await accessible(db, post, pair[0]) is False
    await completed(db, purchase)
    assert await accessible(db, post, pair[0]) is True


async def test_subscriber_only_content_needs_an_active_subscription(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    post = await make_published_content(db, pair[1], is_subscriber_only=True)
    assert await accessible(db, post, pair[0]) is False
    await make_subscription(db, *pair)
    assert await accessible(db, post, pair[0]) is True


async def test_age_restricted_content_needs_an_age_verified_viewer(
    db: asyncpg.Connection, pair: tuple[UUID, UUID]
) -> None:
    post = await make_published_content(db, pair[1], is_age_restricted=True)
    assert await accessible(db, post, pair[0]) is False
    adult = await make_user(
        db, age_verified=True, age_verified_at=await db_now(db), date_of_birth=date(1990, 5, 1)
    )
    assert await accessible(db, post, adult) is True


async def test_access_to_unknown_content_is_null(db: asyncpg.Connection) -> None:
    assert await accessible(db, uuid4(), uuid4()) is None
