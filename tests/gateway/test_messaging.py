"""Sending, fan-out, idempotency, history, resume, edit/delete/pin/flag, read, presence."""

from __future__ import annotations

import asyncpg

from tests.gateway.conftest import World
from tests.gateway.harness import WsClient


async def test_send_is_acked_after_commit_and_fans_out_to_members(
    world: World, connect_as, db: asyncpg.Connection
) -> None:
    alice = await connect_as(world.member)
    bob = await connect_as(world.other_member)
    await alice.ok("join", channel=world.room)
    await bob.ok("join", channel=world.room)
    ack = await alice.ok("send", channel=world.room, text="hello", client_id="c1")
    row = await db.fetchrow("SELECT message, seq, user_id FROM analyst.chat_messages"
                            " WHERE id = $1::uuid", ack["id"])
    assert row is not None and row["message"] == "hello" and row["seq"] == ack["seq"] == 1
    got = await bob.expect("msg")
    assert (got["text"], got["seq"], got["user_id"]) == ("hello", 1, str(world.member))
    echo = await alice.expect("msg")
    assert echo["id"] == ack["id"]
