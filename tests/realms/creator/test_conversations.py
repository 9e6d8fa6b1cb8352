"""realms/creator/sql/3003: creator.conversations and creator.messages: gap-free seq, idempotent
client_id, who may send what, unread counters, reads, may_start_conversation()."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from kernel.db import connect
from tests.realms.creator.rows import (
    Chat,
    column,
    db_now,
    fails,
    insert,
    make_creator,
    make_subscription,
    make_user,
    rejects,
)


@pytest.fixture
async def chat(db: asyncpg.Connection) -> Chat:
    return await Chat.open(db)


async def seqs(db: asyncpg.Connection, conversation_id: UUID) -> list[int]:
    rows = await db.fetch(
        "SELECT seq FROM creator.messages WHERE conversation_id = $1 ORDER BY seq", conversation_id
    )
    return [r["seq"] for r in rows]


# -- conversations ------------------------------------------------------------------------------


async def test_conversation_defaults(chat: Chat) -> None:
    row = await chat.state()
    assert (row["last_seq"], row["fan_unread_count"], row["creator_unread_count"]) == (0, 0, 0)
    assert (row["fan_last_read_seq"], row["creator_last_read_seq"]) == (0, 0)
    assert (row["fan_archived"], row["creator_archived"]) == (False, False)
    assert row["last_message_at"] is None and row["blocked_by"] is None


async def test_one_conversation_per_creator_and_fan(db: asyncpg.Connection, chat: Chat) -> None:
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "conversations_creator_id_fan_id_key",
        "conversations",
        creator_id=chat.creator_id,
        fan_id=chat.fan_id,
    )


async def test_two_creators_have_one_conversation_in_each_role(db: asyncpg.Connection) -> None:
    a, b = await make_creator(db), await make_creator(db)
    assert await insert(db, "conversations", creator_id=a, fan_id=b)
    assert await insert(db, "conversations", creator_id=b, fan_id=a)


async def test_conversation_with_oneself_is_rejected(db: asyncpg.Connection) -> None:
    creator_id = await make_creator(db)
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "conversations_not_self",
        "conversations",
        creator_id=creator_id,
        fan_id=creator_id,
    )


@pytest.mark.parametrize("account_type", ["fan", "admin", "moderator"])
async def test_conversation_creator_side_must_be_a_creator(
    db: asyncpg.Connection, account_type: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "conversations_creator_is_creator",
        "conversations",
        creator_id=await make_user(db, account_type),
        fan_id=await make_user(db),
    )


@pytest.mark.parametrize("side", ["creator_id", "fan_id"])
async def test_conversation_with_unknown_user_is_rejected(
    db: asyncpg.Connection, side: str
) -> None:
    fields = {"creator_id": await make_creator(db), "fan_id": await make_user(db)}
    fields[side] = uuid4()
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        f"conversations_{side}_fkey",
        "conversations",
        **fields,
    )


@pytest.mark.parametrize("party", ["creator", "fan"])
async def test_hard_deleting_a_party_deletes_the_conversation_and_its_messages(
    db: asyncpg.Connection, chat: Chat, party: str
) -> None:
    await chat.send(chat.fan_id)
    await chat.send(chat.creator_id)
    await db.execute(
        "DELETE FROM creator.users WHERE id = $1",
        chat.creator_id if party == "creator" else chat.fan_id,
    )
    assert await db.fetchval("SELECT count(*) FROM creator.conversations") == 0
    assert await db.fetchval("SELECT count(*) FROM creator.messages") == 0


async def test_only_a_party_can_block_and_a_block_has_a_time(
    db: asyncpg.Connection, chat: Chat
) -> None:
    await fails(
        db,
        asyncpg.CheckViolationError,
        "conversations_blocked_by_party",
        "UPDATE creator.conversations SET blocked_by = $1, blocked_at = now() WHERE id = $2",
        await make_user(db),
        chat.id,
    )
    await fails(
        db,
        asyncpg.CheckViolationError,
        "conversations_blocked_at_matches_blocked_by",
        "UPDATE creator.conversations SET blocked_by = $1 WHERE id = $2",
        chat.creator_id,
        chat.id,
    )


async def test_hard_deleting_the_blocking_party_deletes_the_blocked_conversation(
    db: asyncpg.Connection, chat: Chat
) -> None:
    # blocked_by is always a party: its SET NULL and the party's CASCADE meet on one row.
    await db.execute(
        "UPDATE creator.conversations SET blocked_by = fan_id, blocked_at = now() WHERE id = $1",
        chat.id,
    )
    await db.execute("DELETE FROM creator.users WHERE id = $1", chat.fan_id)
    assert await db.fetchval("SELECT count(*) FROM creator.conversations") == 0


@pytest.mark.parametrize(
    ("assignment", "constraint"),
    [
        ("fan_unread_count = -1", "conversations_unread_counts_non_negative"),
        ("creator_unread_count = -1", "conversations_unread_counts_non_negative"),
        ("last_seq = -1", "conversations_last_seq_non_negative"),
    ],
)
async def test_counters_cannot_go_negative(
    db: asyncpg.Connection, chat: Chat, assignment: str, constraint: str
) -> None:
    await fails(
        db,
        asyncpg.CheckViolationError,
        constraint,
        f"UPDATE creator.conversations SET {assignment} WHERE id = $1",
        chat.id,
    )


async def test_read_position_never_exceeds_last_seq(db: asyncpg.Connection, chat: Chat) -> None:
    await chat.send_many(chat.creator_id, 3)
    await chat.read(chat.fan_id, 3)
    await fails(
        db,
        asyncpg.CheckViolationError,
        "conversations_read_seq_within_last_seq",
        "UPDATE creator.conversations SET last_seq = 2 WHERE id = $1",
        chat.id,
    )


async def test_each_party_archives_on_their_own(db: asyncpg.Connection, chat: Chat) -> None:
    await db.execute("UPDATE creator.conversations SET fan_archived = true WHERE id = $1", chat.id)
    row = await chat.state()
    assert (row["fan_archived"], row["creator_archived"]) == (True, False)


async def test_conversation_update_moves_updated_at(db: asyncpg.Connection) -> None:
    past = await db_now(db, "-1 day")
    chat = await Chat.open(db, updated_at=past)
    await db.execute("UPDATE creator.conversations SET fan_archived = true WHERE id = $1", chat.id)
    assert (await chat.state())["updated_at"] > past


# -- messages: columns and constraints ----------------------------------------------------------


async def test_message_defaults(db: asyncpg.Connection, chat: Chat) -> None:
    row = await db.fetchrow("SELECT * FROM creator.messages WHERE id = $1", await chat.send())
    assert row["message_type"] == "text" and row["attachments"] == []
    assert row["is_deleted"] is False and row["price"] is None and row["edited_at"] is None
    assert row["seq"] == 1


@pytest.mark.parametrize("message_type", ["text", "image", "video", "audio", "system"])
async def test_documented_message_type_is_accepted(chat: Chat, message_type: str) -> None:
    assert await chat.send(
        chat.creator_id,
        message_type=message_type,
        attachments=[{"type": message_type, "url": "https://cdn.example.com/m"}],
    )


@pytest.mark.parametrize("message_type", ["tip", "file", "Text", ""])
async def test_undocumented_message_type_is_rejected(chat: Chat, message_type: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await chat.send(message_type=message_type)
    assert info.value.constraint_name == "messages_message_type_valid"


@pytest.mark.parametrize("body", ["", "x" * 5001])
async def test_body_outside_1_to_5000_characters_is_rejected(chat: Chat, body: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await chat.send(body=body)
    assert info.value.constraint_name == "messages_body_length"


async def test_body_of_5000_characters_is_accepted(chat: Chat) -> None:
    assert await chat.send(body="ß" * 5000)


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"body": None}, "messages_has_content"),
        ({"message_type": "image"}, "messages_media_has_attachment"),
        ({"attachments": {"url": "x"}}, "messages_attachments_array"),
        ({"preview": ["blur"]}, "messages_preview_object"),
        ({"client_id": ""}, "messages_client_id_not_blank"),
        ({"is_deleted": True}, "messages_deleted_at_matches_is_deleted"),
    ],
)
async def test_malformed_message_is_rejected(
    chat: Chat, fields: dict[str, Any], constraint: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await chat.send(**fields)
    assert info.value.constraint_name == constraint


async def test_media_only_message_is_accepted(db: asyncpg.Connection, chat: Chat) -> None:
    attachment = {"type": "image", "url": "https://cdn.example.com/a.jpg", "size_bytes": 1234}
    message_id = await chat.send(body=None, message_type="image", attachments=[attachment])
    assert await column(db, "messages", "attachments", message_id) == [attachment]


@pytest.mark.parametrize("price", [0, -500])
async def test_premium_price_must_be_positive(chat: Chat, price: int) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await chat.send(chat.creator_id, price=price)
    assert info.value.constraint_name == "messages_price_positive"


async def test_system_message_has_no_price(chat: Chat) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await chat.send(chat.creator_id, message_type="system", price=100)
    assert info.value.constraint_name == "messages_system_not_priced"


async def test_creator_sends_a_priced_message_with_a_preview(
    db: asyncpg.Connection, chat: Chat
) -> None:
    message_id = await chat.send(
        chat.creator_id,
        body="the secret",
        price=1500,
        preview={"blurhash": "LEHV6nWB2yk8", "media_count": 1},
        attachments=[{"type": "image", "url": "https://cdn.example.com/s.jpg"}],
    )
    assert await column(db, "messages", "price", message_id) == 1500


async def test_fan_cannot_put_a_price_on_a_message(chat: Chat) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await chat.send(chat.fan_id, price=100)
    assert info.value.constraint_name == "messages_price_only_from_creator"


async def test_only_a_party_may_send(db: asyncpg.Connection, chat: Chat) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await chat.send(await make_user(db))
    assert info.value.constraint_name == "messages_sender_is_party"


@pytest.mark.parametrize("blocker", ["creator", "fan"])
async def test_nobody_sends_in_a_blocked_conversation(
    db: asyncpg.Connection, chat: Chat, blocker: str
) -> None:
    await db.execute(
        f"UPDATE creator.conversations SET blocked_by = {blocker}_id, blocked_at = now()"
        " WHERE id = $1",
        chat.id,
    )
    for sender in (chat.creator_id, chat.fan_id):
        with pytest.raises(asyncpg.CheckViolationError) as info:
            await chat.send(sender)
        assert info.value.constraint_name == "messages_conversation_not_blocked"


@pytest.mark.parametrize(
    "assignment",
    [
        "account_status = 'banned'",
        "account_status = 'suspended', suspended_until = now() + interval '1 day'",
        "account_status = 'deactivated'",
        "deleted_at = now()",
    ],
)
async def test_inactive_account_cannot_send(
    db: asyncpg.Connection, chat: Chat, assignment: str
) -> None:
    await db.execute(f"UPDATE creator.users SET {assignment} WHERE id = $1", chat.fan_id)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await chat.send(chat.fan_id)
    assert info.value.constraint_name == "messages_sender_active"
    assert await chat.send(chat.creator_id)


async def test_message_to_unknown_conversation_is_rejected(db: asyncpg.Connection) -> None:
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        "messages_conversation_id_fkey",
        "messages",
        conversation_id=uuid4(),
        sender_id=await make_user(db),
        body="hi",
    )


async def test_reply_to_a_message_of_the_conversation(db: asyncpg.Connection, chat: Chat) -> None:
    original = await chat.send(chat.creator_id)
    reply = await chat.send(chat.fan_id, reply_to_id=original)
    assert await column(db, "messages", "reply_to_id", reply) == original


async def test_reply_to_a_message_of_another_conversation_is_rejected(
    db: asyncpg.Connection, chat: Chat
) -> None:
    other = await Chat.open(db)
    elsewhere = await other.send()
    with pytest.raises(asyncpg.ForeignKeyViolationError) as info:
        await chat.send(reply_to_id=elsewhere)
    assert info.value.constraint_name == "messages_reply_to_id_fkey"


async def test_message_cannot_reply_to_itself(chat: Chat) -> None:
    own_id = uuid4()
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await chat.send(id=own_id, reply_to_id=own_id)
    assert info.value.constraint_name == "messages_not_own_reply"


async def test_hard_deleting_a_replied_message_only_clears_the_reply_link(
    db: asyncpg.Connection, chat: Chat
) -> None:
    original = await chat.send()
    reply = await chat.send(reply_to_id=original)
    await db.execute("DELETE FROM creator.messages WHERE id = $1", original)
    row = await db.fetchrow(
        "SELECT reply_to_id, conversation_id FROM creator.messages WHERE id = $1", reply
    )
    assert (row["reply_to_id"], row["conversation_id"]) == (None, chat.id)


async def test_hard_deleting_the_deleting_user_clears_deleted_by(
    db: asyncpg.Connection, chat: Chat
) -> None:
    moderator = await make_user(db, "moderator")
    message_id = await chat.send()
    await db.execute(
        "UPDATE creator.messages SET is_deleted = true, deleted_at = now(), deleted_by = $2"
        " WHERE id = $1",
        message_id,
        moderator,
    )
    await db.execute("DELETE FROM creator.users WHERE id = $1", moderator)
    assert await column(db, "messages", "deleted_by", message_id) is None


@pytest.mark.parametrize(
    "assignment",
    ["seq = seq + 10", "sender_id = $2", "conversation_id = $3", "price = 999", "client_id = 'x'"],
)
async def test_message_identity_is_immutable(
    db: asyncpg.Connection, chat: Chat, assignment: str
) -> None:
    message_id = await chat.send(chat.creator_id, price=500)
    other = await Chat.open(db)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await db.execute(
            f"UPDATE creator.messages SET {assignment} WHERE id = $1"
            " AND $2::uuid IS NOT NULL AND $3::uuid IS NOT NULL",
            message_id,
            chat.fan_id,
            other.id,
        )
    assert info.value.constraint_name == "messages_identity_immutable"


async def test_editing_a_message_stamps_edited_at_but_deleting_does_not(
    db: asyncpg.Connection, chat: Chat
) -> None:
    edited = await chat.send()
    await db.execute("UPDATE creator.messages SET body = 'fixed typo' WHERE id = $1", edited)
    assert await column(db, "messages", "edited_at", edited) is not None
    deleted = await chat.send()
    await db.execute(
        "UPDATE creator.messages SET is_deleted = true, deleted_at = now(), body = NULL"
        " WHERE id = $1",
        deleted,
    )
    assert await column(db, "messages", "edited_at", deleted) is None


async def test_message_update_moves_updated_at(db: asyncpg.Connection, chat: Chat) -> None:
    past = await db_now(db, "-1 hour")
    message_id = await chat.send(created_at=past, updated_at=past)
    await db.execute("UPDATE creator.messages SET body = 'x' WHERE id = $1", message_id)
    assert await column(db, "messages", "updated_at", message_id) > past


# -- seq and client_id ----------------------------------------------------------------------------


async def test_seq_counts_1_2_3_per_conversation(db: asyncpg.Connection, chat: Chat) -> None:
    other = await Chat.open(db)
    for sender in (chat.fan_id, chat.creator_id, chat.fan_id):
        await chat.send(sender)
    await other.send()
    assert await seqs(db, chat.id) == [1, 2, 3]
    assert await seqs(db, other.id) == [1]
    assert (await chat.state())["last_seq"] == 3


async def test_seq_given_by_the_caller_is_ignored(db: asyncpg.Connection, chat: Chat) -> None:
    await chat.send(seq=42)
    assert await seqs(db, chat.id) == [1]


async def test_one_insert_of_many_rows_numbers_them_consecutively(
    db: asyncpg.Connection, chat: Chat
) -> None:
    await chat.send()
    await chat.send_many(chat.creator_id, 50)
    assert await seqs(db, chat.id) == list(range(1, 52))


async def test_seq_of_a_hard_deleted_last_message_is_not_reused(
    db: asyncpg.Connection, chat: Chat
) -> None:
    await chat.send()
    last = await chat.send()
    await db.execute("DELETE FROM creator.messages WHERE id = $1", last)
    await chat.send()
    assert await seqs(db, chat.id) == [1, 3]


async def test_rolled_back_send_leaves_no_gap(db: asyncpg.Connection, chat: Chat) -> None:
    await chat.send()
    with pytest.raises(asyncpg.CheckViolationError):
        async with db.transaction():
            await chat.send()
            await chat.send(body="")  # fails: the whole transaction goes
    await chat.send()
    assert await seqs(db, chat.id) == [1, 2]


async def test_retried_send_with_the_same_client_id_is_refused(chat: Chat) -> None:
    await chat.send(client_id="c-1")
    with pytest.raises(asyncpg.UniqueViolationError) as info:
        await chat.send(client_id="c-1")
    assert info.value.constraint_name == "messages_client_id_key"


async def test_retried_send_skipped_by_on_conflict_consumes_no_seq(
    db: asyncpg.Connection, chat: Chat
) -> None:
    upsert = (
        "INSERT INTO creator.messages (conversation_id, sender_id, body, client_id)"
        " VALUES ($1, $2, 'hi', $3)"
        " ON CONFLICT (conversation_id, sender_id, client_id) WHERE client_id IS NOT NULL"
        " DO NOTHING"
    )
    await db.execute(upsert, chat.id, chat.fan_id, "c-1")
    await db.execute(upsert, chat.id, chat.fan_id, "c-1")
    await db.execute(upsert, chat.id, chat.fan_id, "c-2")
    assert await seqs(db, chat.id) == [1, 2]
    assert (await chat.state())["creator_unread_count"] == 2


async def test_client_id_is_per_sender_and_null_is_unlimited(chat: Chat) -> None:
    await chat.send(chat.fan_id, client_id="same")
    assert await chat.send(chat.creator_id, client_id="same")
    assert await chat.send(chat.fan_id, client_id=None)
    assert await chat.send(chat.fan_id, client_id=None)


# -- unread counters and last message -------------------------------------------------------------


async def test_a_message_is_unread_for_the_other_party_only(chat: Chat) -> None:
    await chat.send(chat.creator_id)
    assert await chat.unread() == (1, 0)
    await chat.send(chat.fan_id)
    await chat.send(chat.fan_id)
    assert await chat.unread() == (1, 2)


async def test_last_message_at_follows_the_newest_message_and_never_moves_back(
    db: asyncpg.Connection, chat: Chat
) -> None:
    t0 = await db_now(db, "-1 hour")
    await chat.send(created_at=t0)
    assert (await chat.state())["last_message_at"] == t0
    await chat.send(created_at=t0 - timedelta(minutes=5))
    assert (await chat.state())["last_message_at"] == t0
    await chat.send(created_at=t0 + timedelta(seconds=1))
    assert (await chat.state())["last_message_at"] == t0 + timedelta(seconds=1)


async def test_message_inserted_deleted_is_not_unread(db: asyncpg.Connection, chat: Chat) -> None:
    await chat.send(chat.creator_id, is_deleted=True, deleted_at=await db_now(db))
    assert await chat.unread() == (0, 0)
    assert (await chat.state())["last_seq"] == 1


async def test_soft_delete_and_undelete_move_the_unread_count(
    db: asyncpg.Connection, chat: Chat
) -> None:
    message_id = await chat.send(chat.creator_id)
    await chat.send(chat.creator_id)
    await db.execute(
        "UPDATE creator.messages SET is_deleted = true, deleted_at = now() WHERE id = $1",
        message_id,
    )
    assert await chat.unread() == (1, 0)
    await db.execute(
        "UPDATE creator.messages SET is_deleted = false, deleted_at = NULL WHERE id = $1",
        message_id,
    )
    assert await chat.unread() == (2, 0)


async def test_deleting_a_read_message_leaves_the_unread_count(
    db: asyncpg.Connection, chat: Chat
) -> None:
    first = await chat.send(chat.creator_id)
    await chat.send(chat.creator_id)
    await chat.read(chat.fan_id, 1)
    await db.execute(
        "UPDATE creator.messages SET is_deleted = true, deleted_at = now() WHERE id = $1", first
    )
    assert await chat.unread() == (1, 0)


async def test_hard_delete_of_an_unread_message_recounts(
    db: asyncpg.Connection, chat: Chat
) -> None:
    message_id = await chat.send(chat.fan_id)
    await chat.send(chat.fan_id)
    await db.execute("DELETE FROM creator.messages WHERE id = $1", message_id)
    assert await chat.unread() == (0, 1)


async def test_other_message_updates_leave_the_counters(db: asyncpg.Connection, chat: Chat) -> None:
    message_id = await chat.send(chat.creator_id)
    await db.execute("UPDATE creator.messages SET body = 'edited' WHERE id = $1", message_id)
    assert await chat.unread() == (1, 0)


async def test_a_batch_of_messages_updates_its_conversation_once(
    db: asyncpg.Connection, chat: Chat
) -> None:
    pending = (
        "SELECT n_tup_upd FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'creator' AND relname = 'conversations'"
    )
    async with db.transaction():
        before = await db.fetchval(pending)
        await chat.send_many(chat.creator_id, 200)
        updates = await db.fetchval(pending) - before
    assert updates == 1
    assert await chat.unread() == (200, 0)


# -- reads ----------------------------------------------------------------------------------------


async def test_reading_up_to_a_seq_leaves_the_later_messages_unread(chat: Chat) -> None:
    await chat.send_many(chat.creator_id, 5)
    assert await chat.read(chat.fan_id, 3) == 2
    row = await chat.state()
    assert (row["fan_last_read_seq"], row["fan_unread_count"]) == (3, 2)
    assert row["fan_last_read_at"] is not None and row["creator_last_read_at"] is None


async def test_reading_everything(chat: Chat) -> None:
    await chat.send_many(chat.creator_id, 4)
    await chat.send_many(chat.fan_id, 2)
    assert await chat.read(chat.fan_id) == 0
    assert await chat.read(chat.creator_id) == 0
    row = await chat.state()
    assert (row["fan_last_read_seq"], row["creator_last_read_seq"]) == (6, 6)


async def test_an_older_read_position_is_ignored(chat: Chat) -> None:
    await chat.send_many(chat.creator_id, 5)
    await chat.read(chat.fan_id, 4)
    assert await chat.read(chat.fan_id, 2) == 1
    assert (await chat.state())["fan_last_read_seq"] == 4


async def test_a_read_beyond_the_last_message_stops_at_it(chat: Chat) -> None:
    await chat.send_many(chat.creator_id, 3)
    assert await chat.read(chat.fan_id, 99) == 0
    assert (await chat.state())["fan_last_read_seq"] == 3


async def test_a_read_counts_own_and_deleted_messages_out(
    db: asyncpg.Connection, chat: Chat
) -> None:
    await chat.send_many(chat.creator_id, 2)
    await chat.send_many(chat.fan_id, 2)
    deleted = await chat.send(chat.creator_id)
    await chat.send(chat.creator_id)
    await db.execute(
        "UPDATE creator.messages SET is_deleted = true, deleted_at = now() WHERE id = $1", deleted
    )
    assert await chat.read(chat.fan_id, 1) == 2


async def test_a_stranger_cannot_mark_a_conversation_read(
    db: asyncpg.Connection, chat: Chat
) -> None:
    await chat.send_many(chat.creator_id, 2)
    assert await chat.read(await make_user(db), 2) is None
    assert await chat.unread() == (2, 0)


async def test_concurrent_sends_and_reads_keep_unread_counts_exact(
    db: asyncpg.Connection, dsn: str, chat: Chat
) -> None:
    connections = [await connect(dsn) for _ in range(4)]
    rng = random.Random(7)

    async def sender(conn: asyncpg.Connection, user_id: UUID) -> None:
        for i in range(40):
            await conn.execute(
                "INSERT INTO creator.messages (conversation_id, sender_id, body)"
                " VALUES ($1, $2, $3)",
                chat.id,
                user_id,
                f"m{i}",
            )

    async def reader(conn: asyncpg.Connection, user_id: UUID) -> None:
        for _ in range(40):
            await conn.fetchval(
                "SELECT creator.mark_conversation_read($1, $2, $3)",
                chat.id,
                user_id,
                rng.randint(0, 200),
            )

    try:
        await asyncio.gather(
            sender(connections[0], chat.creator_id),
            sender(connections[1], chat.fan_id),
            reader(connections[2], chat.fan_id),
            reader(connections[3], chat.creator_id),
        )
    finally:
        for conn in connections:
            await conn.close()

    row = await chat.state()
    truth = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE sender_id = $2 AND seq > $3) AS fan_unread,"
        "       count(*) FILTER (WHERE sender_id = $4 AND seq > $5) AS creator_unread"
        "  FROM creator.messages WHERE conversation_id = $1",
        chat.id,
        chat.creator_id,
        row["fan_last_read_seq"],
        chat.fan_id,
        row["creator_last_read_seq"],
    )
    assert (row["fan_unread_count"], row["creator_unread_count"]) == (
        truth["fan_unread"],
        truth["creator_unread"],
    )
    assert await seqs(db, chat.id) == list(range(1, 81))


# -- may_start_conversation() ---------------------------------------------------------------------


async def may_start(db: asyncpg.Connection, fan: UUID, creator_id: UUID) -> bool:
    result: bool = await db.fetchval(
        "SELECT creator.may_start_conversation($1, $2)", fan, creator_id
    )
    return result


async def creator_with_rule(db: asyncpg.Connection, rule: str | None) -> UUID:
    creator_id = await make_creator(db)
    if rule is not None:
        await insert(db, "user_profiles", user_id=creator_id, allow_messages_from=rule)
    return creator_id


@pytest.mark.parametrize("rule", [None, "subscribers"])
async def test_by_default_only_subscribers_may_start_a_conversation(
    db: asyncpg.Connection, rule: str | None
) -> None:
    creator_id, fan = await creator_with_rule(db, rule), await make_user(db)
    assert await may_start(db, fan, creator_id) is False
    await make_subscription(db, fan, creator_id)
    assert await may_start(db, fan, creator_id) is True


async def test_everyone_rule_lets_any_active_user_start(db: asyncpg.Connection) -> None:
    creator_id = await creator_with_rule(db, "everyone")
    assert await may_start(db, await make_user(db), creator_id) is True


async def test_followers_rule_lets_current_followers_and_subscribers_start(
    db: asyncpg.Connection,
) -> None:
    creator_id = await creator_with_rule(db, "followers")
    follower, former, subscriber = [await make_user(db) for _ in range(3)]
    await insert(db, "follows", follower_id=follower, following_id=creator_id)
    await insert(
        db, "follows", follower_id=former, following_id=creator_id, unfollowed_at=await db_now(db)
    )
    await make_subscription(db, subscriber, creator_id)
    assert await may_start(db, follower, creator_id) is True
    assert await may_start(db, former, creator_id) is False
    assert await may_start(db, subscriber, creator_id) is True
    assert await may_start(db, await make_user(db), creator_id) is False


async def test_nobody_rule_refuses_even_subscribers(db: asyncpg.Connection) -> None:
    creator_id, fan = await creator_with_rule(db, "nobody"), await make_user(db)
    await make_subscription(db, fan, creator_id)
    assert await may_start(db, fan, creator_id) is False


@pytest.mark.parametrize("who", ["fan", "creator"])
async def test_inactive_accounts_cannot_start_a_conversation(
    db: asyncpg.Connection, who: str
) -> None:
    creator_id, fan = await creator_with_rule(db, "everyone"), await make_user(db)
    await db.execute(
        "UPDATE creator.users SET account_status = 'banned' WHERE id = $1",
        fan if who == "fan" else creator_id,
    )
    assert await may_start(db, fan, creator_id) is False


async def test_a_conversation_needs_a_creator_and_someone_else(db: asyncpg.Connection) -> None:
    not_a_creator = await make_user(db)
    creator_id = await creator_with_rule(db, "everyone")
    assert await may_start(db, await make_user(db), not_a_creator) is False
    assert await may_start(db, creator_id, creator_id) is False
