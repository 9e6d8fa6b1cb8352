"""The relay's outbox (creator.live_claims) over real gateway processes: an event announced
while a gateway's LISTEN was down is published after its reconnect, an event whose claimer
died before publishing is published by another gateway after the lease, each exactly once."""

from __future__ import annotations

import uuid

import asyncpg

from kernel.tokens import sign_access_token
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.creator.conftest import Call, Connect, Starter, World
from tests.realms.creator.test_messaging import open_dm


async def _stored_message(db: asyncpg.Connection, cid: str, sender: uuid.UUID, text: str) -> str:
    """A message committed without its live announcement (as if its NOTIFY went unheard)."""
    row = await db.fetchrow(
        "SELECT * FROM creator.append_messages(ARRAY[$1::uuid], ARRAY[$2::uuid],"
        " ARRAY['text'], ARRAY[$3::text], ARRAY[NULL::jsonb], ARRAY[NULL::uuid],"
        " ARRAY[NULL::text], ARRAY[NULL::bigint], ARRAY[NULL::jsonb])",
        uuid.UUID(cid),
        sender,
        text,
    )
    assert row["status"] == "ok"
    return str(row["id"])


def _msg(message_id: str):  # type: ignore[no-untyped-def]
    return lambda f: f.get("op") == "msg" and f.get("id") == message_id


async def test_an_event_announced_while_the_listener_was_down_is_published_after_reconnect(
    call: Call, world: World, connect_as: Connect, gw: GatewayProcess, db: asyncpg.Connection
) -> None:
    channel = await open_dm(call, world.fan, world.creator)
    cid = channel.split(":")[1]
    fan = await connect_as(world.fan)
    await fan.ok("join", channel=channel)
    message_id = await _stored_message(db, cid, world.creator, "sent while deaf")
    await db.execute(
        "INSERT INTO creator.live_claims (key, kind, ref_id) VALUES ('missed-1', 'message', $1)",
        uuid.UUID(message_id),
    )
    # the gateway's relay loses its LISTEN connection: it never heard the event
    killed = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = 'switchboard-creator-live' AND datname = current_database()"
    )
    assert killed == 1
    frame = await fan.expect(_msg(message_id))
    assert frame["text"] == "sent while deaf"
    await gw.logged("listen_resynced")
    assert await db.fetchval(
        "SELECT published_at IS NOT NULL FROM creator.live_claims WHERE key = 'missed-1'"
    )
    marker = await fan.ok("send", channel=channel, text="marker")
    await fan.expect(_msg(marker["id"]))
    assert fan.take_all(_msg(message_id)) == []  # once
    await fan.close()


async def test_an_event_claimed_by_a_gateway_that_died_is_published_after_its_lease(
    call: Call, world: World, connect_as: Connect, gw: GatewayProcess, db: asyncpg.Connection
) -> None:
    channel = await open_dm(call, world.fan, world.creator)
    cid = channel.split(":")[1]
    fan = await connect_as(world.fan)
    await fan.ok("join", channel=channel)
    message_id = await _stored_message(db, cid, world.creator, "claimed then lost")
    await db.execute(
        "INSERT INTO creator.live_claims (key, kind, ref_id, created_at, claimed_at)"
        " VALUES ('lost-1', 'message', $1, now() - interval '1 minute',"
        "         now() - interval '1 minute')",
        uuid.UUID(message_id),
    )
    frame = await fan.expect(_msg(message_id), timeout=20)
    assert frame["text"] == "claimed then lost"
    await gw.logged("relay_replayed")  # logged once the row is marked published
    assert await db.fetchval(
        "SELECT published_at IS NOT NULL FROM creator.live_claims WHERE key = 'lost-1'"
    )
    # published rows are never claimed again
    marker = await fan.ok("send", channel=channel, text="marker")
    await fan.expect(_msg(marker["id"]))
    assert fan.take_all(_msg(message_id)) == []
    await fan.close()


async def test_a_rest_event_reaches_sockets_on_two_gateways_once(
    call: Call,
    world: World,
    start_gateway: Starter,
    redis_url: str,
    secret: str,
    db: asyncpg.Connection,
) -> None:
    gateways = [await start_gateway(REDIS_URL=redis_url) for _ in range(2)]
    channel = await open_dm(call, world.fan, world.creator)
    cid = channel.split(":")[1]
    fans = []
    for gateway in gateways:
        client = await WsClient.open(
            gateway.url, sign_access_token(secret, str(world.fan), "creator", 600)
        )
        await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
        await client.ok("join", channel=channel)
        fans.append(client)
    status, sent = await call(
        "POST", f"/v1/creator/conversations/{cid}/messages", world.creator, json={"text": "hi"}
    )
    assert status == 201
    for client in fans:
        await client.expect(_msg(sent["message"]["id"]))
        marker = await client.ok("send", channel=channel, text=f"marker {id(client)}")
        await client.expect(_msg(marker["id"]))
        assert client.take_all(_msg(sent["message"]["id"])) == []
        await client.close()
    # one outbox row for the message (its publish is marked after the bus has it)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM creator.live_claims WHERE kind = 'message' AND ref_id = $1",
            uuid.UUID(sent["message"]["id"]),
        )
        == 1
    )
