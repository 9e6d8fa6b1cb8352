"""A gateway process killed with SIGKILL while clients send on it and on another one: its
clients reconnect to the survivor, resend what was not acknowledged (same client_id) and
resume with `since`; nothing acknowledged is lost, nothing is stored or delivered twice, and
the dead process's members leave presence and the member count once it is swept."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from tests.faults.traffic import Receiver, Sender, check_delivery, eventually, live_members, opener
from tests.gateway.conftest import Starter, World

MakeMember = Callable[[], Awaitable[uuid.UUID]]


async def test_gateway_killed_while_clients_send(
    busy: World,
    db: asyncpg.Connection,
    start_gateway: Starter,
    redis_url: str,
    secret: str,
    member: MakeMember,
    fast: dict[str, str],
) -> None:
    world = busy
    doomed = await start_gateway(REDIS_URL=redis_url, **fast)
    survivor = await start_gateway(REDIS_URL=redis_url, **fast)
    senders = [
        # Each tries the doomed process first, then the survivor.
        Sender("a", world.room, opener([doomed, survivor], secret, world.member)),
        Sender("b", world.room, opener([survivor], secret, world.other_member)),
    ]
    receivers = [
        Receiver("on-doomed", world.room, opener([doomed, survivor], secret, world.analyst)),
        Receiver("on-survivor", world.room, opener([survivor], secret, world.admin)),
    ]
    # Only on the doomed process, and never back: must vanish from presence and the count.
    ghost = Receiver("ghost", world.room, opener([doomed], secret, await member()))
    await ghost.start()
    for receiver in receivers:
        await receiver.start()
    for sender in senders:
        sender.start()
    try:
        for sender in senders:
            await sender.acks(10)
        assert doomed.proc is not None
        doomed.proc.kill()
        await doomed.proc.wait()
        after = [len(s.acked) for s in senders]
        for sender, before in zip(senders, after, strict=True):
            await sender.acks(before + 10)
        for sender in senders:
            await sender.stop()
        assert senders[0].reconnects >= 1 and receivers[0].reconnects >= 1
        await check_delivery(db, world.channel, senders, receivers)
        here = {str(world.member), str(world.other_member), str(world.analyst), str(world.admin)}
        await eventually(lambda: live_members(db, world.room), here, 15, "presence after sweep")
        count = "SELECT active_members_count FROM analyst.chat_channels WHERE id = $1"
        await eventually(lambda: db.fetchval(count, world.channel), len(here), 10, "count")
        presence = await receivers[1].client.ok("presence", channel=world.room)  # type: ignore[union-attr]
        assert set(presence["users"]) == here
    finally:
        for sender in senders:
            await sender.close()
        for receiver in [*receivers, ghost]:
            await receiver.close()
