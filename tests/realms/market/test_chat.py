"""Chats (4009): the gateway's gap-free per-chat seq and client_id idempotency key on
messages, what each message type carries, replies within a chat, chats.last_message_at, and
direct chats (two participants, one chat per pair of users)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from kernel.db import connect
from tests.realms.market.world import T0, World, rejected


async def seqs(db: asyncpg.Connection, chat: int) -> list[int]:
    rows = await db.fetch("SELECT seq FROM market.messages WHERE chat_id = $1 ORDER BY seq", chat)
    return [r["seq"] for r in rows]


# -- seq --------------------------------------------------------------------------------------


async def test_messages_of_a_chat_are_numbered_1_2_3(txworld: World) -> None:
    chat, other = await txworld.chat(), await txworld.chat()
    for _ in range(3):
        await txworld.message(chat)
    await txworld.message(other)
    assert await seqs(txworld.db, chat) == [1, 2, 3]
    assert await seqs(txworld.db, other) == [1]


async def test_a_multi_row_insert_numbers_its_rows_consecutively(txworld: World) -> None:
    chat, sender = await txworld.chat(), await txworld.buyer()
    await txworld.message(chat, sender)
    await txworld.db.execute(
        "INSERT INTO market.messages (chat_id, sender_id, content)"
        " SELECT $1, $2, 'm' || g FROM generate_series(1, 50) g",
        chat,
        sender,
    )
    assert await seqs(txworld.db, chat) == list(range(1, 52))


async def test_a_seq_given_by_the_caller_is_replaced(txworld: World) -> None:
    chat = await txworld.chat()
    message = await txworld.message(chat, seq=99)
    assert await txworld.value("messages", "seq", message) == 1


async def test_a_rolled_back_send_leaves_no_hole(world: World) -> None:
    chat = await world.chat()
    await world.message(chat)
    with pytest.raises(RuntimeError):
        async with world.db.transaction():
            await world.message(chat)
            raise RuntimeError("abort")
    await world.message(chat)
    assert await seqs(world.db, chat) == [1, 2]


async def test_concurrent_senders_get_every_seq_exactly_once(world: World, dsn: str) -> None:
    chat = await world.chat()
    senders = [await world.buyer() for _ in range(30)]

    async def send(sender: int) -> None:
        conn = await connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO market.messages (chat_id, sender_id, content) VALUES ($1, $2, 'hi')",
                chat,
                sender,
            )
        finally:
            await conn.close()

    await asyncio.gather(*(send(s) for s in senders))
    assert await seqs(world.db, chat) == list(range(1, 31))


async def test_seqs_commit_in_order(world: World, dsn: str) -> None:
    # A second writer of the chat waits for the first to commit, so a reader never sees seq 2
    # without seq 1.
    chat = await world.chat()
    first, second = await connect(dsn), await connect(dsn)
    try:
        tr = first.transaction()
        await tr.start()
        await first.execute(
            "INSERT INTO market.messages (chat_id, sender_id, content) VALUES ($1, $2, 'a')",
            chat,
            await world.buyer(),
        )
        waiting = asyncio.create_task(
            second.execute(
                "INSERT INTO market.messages (chat_id, sender_id, content) VALUES ($1, $2, 'b')",
                chat,
                await world.buyer(),
            )
        )
        blocked = await world.db.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = $1",
            second.get_server_pid(),
        )
        while not blocked:  # the second insert is queued on the chat's row lock
            blocked = await world.db.fetchval(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = $1",
                second.get_server_pid(),
            )
        assert await seqs(world.db, chat) == []
        await tr.commit()
        await waiting
        assert await seqs(world.db, chat) == [1, 2]
    finally:
        await first.close()
        await second.close()


async def test_the_seq_of_a_message_is_immutable(txworld: World) -> None:
    message = await txworld.message()
    await rejected(
        txworld.db,
        txworld.db.execute("UPDATE market.messages SET seq = seq + 1 WHERE id = $1", message),
        asyncpg.CheckViolationError,
        "messages_seq_immutable",
    )


async def test_a_message_cannot_move_to_another_chat(txworld: World) -> None:
    message = await txworld.message()
    await rejected(
        txworld.db,
        txworld.db.execute(
            "UPDATE market.messages SET chat_id = $2 WHERE id = $1", message, await txworld.chat()
        ),
        asyncpg.CheckViolationError,
        "messages_seq_immutable",
    )


async def test_editing_a_message_keeps_its_seq(txworld: World) -> None:
    message = await txworld.message()
    await txworld.db.execute(
        "UPDATE market.messages SET content = 'edited', is_edited = true WHERE id = $1", message
    )
    assert await txworld.value("messages", "seq", message) == 1


# -- client_id --------------------------------------------------------------------------------


async def test_a_retried_send_finds_the_stored_message_and_keeps_seq_gap_free(
    txworld: World,
) -> None:
    chat, sender = await txworld.chat(), await txworld.buyer()
    send = (
        "INSERT INTO market.messages (chat_id, sender_id, content, client_id)"
        " VALUES ($1, $2, 'pay?', 'c-42')"
        " ON CONFLICT (chat_id, sender_id, client_id) WHERE client_id IS NOT NULL DO NOTHING"
        " RETURNING id"
    )
    first = await txworld.db.fetchval(send, chat, sender)
    assert await txworld.db.fetchval(send, chat, sender) is None  # the retry stores nothing
    stored = await txworld.db.fetchval(
        "SELECT id FROM market.messages WHERE chat_id = $1 AND sender_id = $2"
        " AND client_id = 'c-42'",
        chat,
        sender,
    )
    assert stored == first
    await txworld.message(chat, sender)
    assert await seqs(txworld.db, chat) == [1, 2]


# -- message types ----------------------------------------------------------------------------


async def test_a_product_message_must_name_an_existing_product(txworld: World) -> None:
    error = await rejected(
        txworld.db,
        txworld.message(type="product", content=None, metadata={"product_id": 2_000_000_000}),
        asyncpg.ForeignKeyViolationError,
        "messages_product_exists",
    )
    assert "unknown product 2000000000" in str(error)
    product = await txworld.product()
    message = await txworld.message(
        type="product", content=None, metadata={"product_id": product, "note": "this one?"}
    )
    await rejected(
        txworld.db,
        txworld.db.execute(
            "UPDATE market.messages SET metadata = '{\"product_id\": 2000000000}' WHERE id = $1",
            message,
        ),
        asyncpg.ForeignKeyViolationError,
        "messages_product_exists",
    )


async def test_a_deleted_product_message_may_be_blanked(txworld: World) -> None:
    message = await txworld.message(
        type="product", content=None, metadata={"product_id": await txworld.product()}
    )
    await txworld.db.execute(
        "UPDATE market.messages SET is_deleted = true, metadata = NULL WHERE id = $1", message
    )


async def test_every_message_type_with_its_payload_is_accepted(txworld: World) -> None:
    product = await txworld.product()
    payloads = {
        "text": {"content": "Salom"},
        "image": {"content": None, "media_url": "https://cdn/i.jpg"},
        "video": {"content": "look", "media_url": "https://cdn/v.mp4"},
        "audio": {"content": None, "media_url": "https://cdn/a.ogg"},
        "file": {"content": None, "media_url": "https://cdn/f.pdf"},
        "location": {"content": None, "metadata": {"lat": 41.3111, "lon": 69.2797}},
        "product": {"content": None, "metadata": {"product_id": product}},
    }
    enum = await txworld.db.fetchval("SELECT enum_range(NULL::market.message_type_enum)::text[]")
    assert sorted(enum) == sorted(payloads)
    for kind, fields in payloads.items():
        await txworld.message(type=kind, **fields)


# -- replies ----------------------------------------------------------------------------------


async def test_a_reply_is_in_the_same_chat_as_its_original(txworld: World) -> None:
    original = await txworld.message()
    await txworld.message(reply_to_id=original)
    await rejected(
        txworld.db,
        txworld.message(chat_id=await txworld.chat(), reply_to_id=original),
        asyncpg.ForeignKeyViolationError,
        "messages_reply_in_same_chat",
    )


async def test_deleting_the_original_clears_only_the_reply_link(txworld: World) -> None:
    original = await txworld.message()
    chat = await txworld.value("messages", "chat_id", original)
    reply = await txworld.message(reply_to_id=original)
    await txworld.db.execute("DELETE FROM market.messages WHERE id = $1", original)
    row = await txworld.get("messages", reply)
    assert (row["reply_to_id"], row["chat_id"]) == (None, chat)


async def test_deleting_a_chat_deletes_its_participants_messages_and_reads(txworld: World) -> None:
    chat = await txworld.chat()
    user = await txworld.buyer()
    await txworld.participant(chat, user)
    original = await txworld.message(chat, user)
    reply = await txworld.message(chat, user, reply_to_id=original)
    await txworld.message_read(reply, await txworld.buyer())
    await txworld.db.execute("DELETE FROM market.chats WHERE id = $1", chat)
    for table, column in (("chat_participants", "chat_id"), ("messages", "chat_id")):
        assert (
            await txworld.db.fetchval(
                f"SELECT count(*) FROM market.{table} WHERE {column} = $1", chat
            )
            == 0
        )
    assert (
        await txworld.db.fetchval(
            "SELECT count(*) FROM market.message_reads WHERE message_id = ANY ($1)",
            [original, reply],
        )
        == 0
    )


# -- last_message_at --------------------------------------------------------------------------


async def test_last_message_at_follows_the_newest_message_and_never_goes_back(
    txworld: World,
) -> None:
    chat = await txworld.chat()
    assert await txworld.value("chats", "last_message_at", chat) is None
    await txworld.message(chat, created_at=T0)
    assert await txworld.value("chats", "last_message_at", chat) == T0
    await txworld.message(chat, created_at=T0 - timedelta(minutes=5))
    assert await txworld.value("chats", "last_message_at", chat) == T0
    newest = await txworld.message(chat, created_at=T0 + timedelta(seconds=1))
    await txworld.db.execute("DELETE FROM market.messages WHERE id = $1", newest)
    assert await txworld.value("chats", "last_message_at", chat) == T0 + timedelta(seconds=1)


async def test_a_batch_of_messages_updates_each_chat_once(txworld: World) -> None:
    a, b = await txworld.chat(), await txworld.chat()
    sender = await txworld.buyer()
    pending = (
        "SELECT n_tup_upd FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'market' AND relname = 'chats'"
    )
    before = await txworld.db.fetchval(pending)
    await txworld.db.execute(
        "INSERT INTO market.messages (chat_id, sender_id, content)"
        " SELECT CASE WHEN g % 2 = 0 THEN $1::bigint ELSE $2::bigint END, $3, 'm'"
        " FROM generate_series(1, 100) g",
        a,
        b,
        sender,
    )
    assert await txworld.db.fetchval(pending) - before == 2
    now = await txworld.db.fetchval("SELECT now()")
    assert await txworld.value("chats", "last_message_at", a) == now


# -- direct chats -----------------------------------------------------------------------------


async def test_a_direct_chat_has_at_most_two_participants(txworld: World) -> None:
    chat = await txworld.chat(type="direct")
    await txworld.participant(chat, await txworld.buyer())
    await txworld.participant(chat, await txworld.seller())
    await rejected(
        txworld.db,
        txworld.participant(chat, await txworld.buyer()),
        asyncpg.CheckViolationError,
        "chat_participants_direct_pair",
    )


async def test_two_users_have_one_direct_chat(txworld: World) -> None:
    buyer, seller = await txworld.buyer(), await txworld.seller()
    first = await txworld.chat(type="direct")
    await txworld.participant(first, buyer)
    await txworld.participant(first, seller)
    second = await txworld.chat(type="direct")
    await txworld.participant(second, seller)
    await rejected(
        txworld.db,
        txworld.participant(second, buyer),
        asyncpg.UniqueViolationError,
        "chats_one_direct_per_pair",
    )
    await txworld.participant(second, await txworld.buyer())  # another buyer is fine


async def test_group_and_support_chats_take_any_number_of_participants(txworld: World) -> None:
    buyer, seller = await txworld.buyer(), await txworld.seller()
    for kind in ("group", "support", "group"):
        chat = await txworld.chat(type=kind)
        for user in (buyer, seller, await txworld.buyer()):
            await txworld.participant(chat, user)


async def test_concurrent_creation_of_the_same_direct_chat_lets_one_through(
    world: World, dsn: str
) -> None:
    buyer, seller = await world.buyer(), await world.seller()
    first, second = await connect(dsn), await connect(dsn)

    async def open_chat(conn: asyncpg.Connection) -> asyncpg.Transaction:
        tr = conn.transaction()
        await tr.start()
        chat = await conn.fetchval(
            "INSERT INTO market.chats (type, created_by) VALUES ('direct', $1) RETURNING id",
            buyer,
        )
        await conn.execute(
            "INSERT INTO market.chat_participants (chat_id, user_id) VALUES ($1, $2)", chat, buyer
        )
        return tr

    try:
        tr1 = await open_chat(first)
        tr2 = await open_chat(second)
        await first.execute(
            "INSERT INTO market.chat_participants (chat_id, user_id)"
            " SELECT max(id), $1 FROM market.chats WHERE created_by = $2",
            seller,
            buyer,
        )
        racing = asyncio.create_task(
            second.execute(
                "INSERT INTO market.chat_participants (chat_id, user_id)"
                " SELECT max(id), $1 FROM market.chats WHERE created_by = $2",
                seller,
                buyer,
            )
        )
        pid = second.get_server_pid()
        while not await world.db.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = $1", pid
        ):
            pass  # the second creator waits on the pair's advisory lock
        await tr1.commit()
        with pytest.raises(asyncpg.UniqueViolationError) as info:
            await racing
        assert info.value.constraint_name == "chats_one_direct_per_pair"
        await tr2.rollback()
    finally:
        await first.close()
        await second.close()
