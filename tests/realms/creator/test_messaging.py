"""`creator.dm:` over real gateway processes and the real api app: who may open a
conversation, live delivery with unread counts pushed to the other party's user stream, read
receipts, archive, blocking, deletion disappearing live, banned accounts losing their sockets,
and exact counters under 1,000 concurrent sends and reads."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from kernel.tokens import sign_access_token
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.creator.conftest import Call, Connect, Starter, World, make_account


async def open_dm(call: Call, fan: uuid.UUID, creator: uuid.UUID) -> str:
    status, body = await call(
        "POST", "/v1/creator/conversations", fan, json={"creator_id": str(creator)}
    )
    assert status == 200, body
    return str(body["conversation"]["channel"])


def unread_for(channel: str):  # type: ignore[no-untyped-def]
    return lambda f: f.get("kind") == "unread" and f.get("conversation") == channel


async def test_a_subscriber_opens_one_conversation_per_pair(call: Call, world: World) -> None:
    first = await open_dm(call, world.fan, world.creator)
    status, again = await call(
        "POST", "/v1/creator/conversations", world.fan, json={"creator_id": str(world.creator)}
    )
    assert status == 200 and again["created"] is False
    assert again["conversation"]["channel"] == first
    # the creator finds the same one from their side
    status, listed = await call("GET", "/v1/creator/conversations", world.creator)
    assert [c["channel"] for c in listed] == [first]
    assert listed[0]["role"] == "creator" and listed[0]["peer_id"] == str(world.fan)


async def test_opening_follows_the_creators_rule(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    body = {"creator_id": str(world.creator)}
    status, refused = await call("POST", "/v1/creator/conversations", world.stranger, json=body)
    assert status == 403, refused
    await db.execute(
        "UPDATE creator.user_profiles SET allow_messages_from = 'everyone' WHERE user_id = $1",
        world.creator,
    )
    status, _ = await call("POST", "/v1/creator/conversations", world.stranger, json=body)
    assert status == 200
    unverified = await make_account(db, verified=False)
    status, refused = await call("POST", "/v1/creator/conversations", unverified, json=body)
    assert status == 403 and "age" in refused["error"]["message"]


async def test_send_reaches_both_and_counts_unread_for_the_other_party(
    call: Call, world: World, connect_as: Connect
) -> None:
    channel = await open_dm(call, world.fan, world.creator)
    fan, creator = await connect_as(world.fan), await connect_as(world.creator)
    stranger = await connect_as(world.stranger)
    joined = await fan.ok("join", channel=channel)
    assert joined["role"] == "fan"
    assert {m["role"] for m in joined["members"]} == {"fan", "creator"}
    await creator.ok("join", channel=channel)
    refused = await stranger.call("join", channel=channel)
    assert refused["code"] == "forbidden"

    for i in range(3):
        sent = await fan.ok("send", channel=channel, text=f"hi {i}", client_id=f"c{i}")
        assert sent["seq"] == i + 1
    for i in range(3):
        msg = await creator.expect(lambda f, i=i: f.get("op") == "msg" and f.get("seq") == i + 1)
        assert msg["text"] == f"hi {i}" and msg["user_id"] == str(world.fan)
    last = await creator.expect(lambda f: unread_for(channel)(f) and f["unread"] == 3)
    assert last["channel"] == f"creator.user:{world.creator}"
    assert fan.take_all(unread_for(channel)) == []  # the sender's own count did not change

    # a retried send is the same message
    again = await fan.ok("send", channel=channel, text="ignored", client_id="c0")
    assert again["duplicate"] is True and again["seq"] == 1

    read = await creator.ok("read", channel=channel, seq=2)
    assert read["seq"] == 2
    receipt = await fan.expect(lambda f: f.get("kind") == "read")
    assert receipt["user_id"] == str(world.creator) and receipt["seq"] == 2
    count = await creator.expect(
        lambda f: unread_for(channel)(f) and f["unread"] == 1 and f["seq"] == 3
    )
    assert count["data"]["version"] > last["data"]["version"]

    status, conv = await call(
        "GET", f"/v1/creator/conversations/{channel.split(':')[1]}", world.creator
    )
    assert status == 200
    assert conv["unread"] == 1 and conv["last_read_seq"] == 2 and conv["last_message_at"]
    for client in (fan, creator, stranger):
        await client.close()


async def test_archive_is_per_party(call: Call, world: World) -> None:
    channel = await open_dm(call, world.fan, world.creator)
    cid = channel.split(":")[1]
    status, conv = await call(
        "PATCH", f"/v1/creator/conversations/{cid}", world.fan, json={"archived": True}
    )
    assert status == 200 and conv["archived"] is True
    assert (await call("GET", "/v1/creator/conversations", world.fan))[1] == []
    archived = (await call("GET", "/v1/creator/conversations?archived=true", world.fan))[1]
    assert [c["channel"] for c in archived] == [channel]
    assert len((await call("GET", "/v1/creator/conversations", world.creator))[1]) == 1


async def test_a_blocked_conversation_refuses_sends(
    call: Call, world: World, connect_as: Connect
) -> None:
    channel = await open_dm(call, world.fan, world.creator)
    cid = channel.split(":")[1]
    await call("PATCH", f"/v1/creator/conversations/{cid}", world.creator, json={"blocked": True})
    fan = await connect_as(world.fan)
    await fan.ok("join", channel=channel)
    refused = await fan.call("send", channel=channel, text="let me in")
    assert refused["code"] == "forbidden" and "blocked" in refused["message"]
    status, _ = await call(
        "PATCH", f"/v1/creator/conversations/{cid}", world.fan, json={"blocked": False}
    )
    assert status == 403  # only who blocked may unblock
    await fan.close()


async def test_a_deleted_message_disappears_from_every_open_client(
    call: Call, world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    channel = await open_dm(call, world.fan, world.creator)
    fan, creator = await connect_as(world.fan), await connect_as(world.creator)
    await fan.ok("join", channel=channel)
    await creator.ok("join", channel=channel)
    sent = await fan.ok("send", channel=channel, text="oops")
    await creator.expect("msg")
    # a moderator hides it (as the moderation routes do): every client is told
    await db.execute(
        "UPDATE creator.messages SET is_deleted = true, deleted_at = now(), deleted_by = $2"
        " WHERE id = $1",
        uuid.UUID(sent["id"]),
        world.moderator,
    )
    for client in (fan, creator):
        event = await client.expect(lambda f: f.get("kind") == "deleted")
        assert event["id"] == sent["id"] and event["channel"] == channel
    page = await creator.ok("history", channel=channel)
    assert page["messages"][0]["deleted"] is True and page["messages"][0]["text"] == ""
    for client in (fan, creator):
        await client.close()


async def test_a_banned_users_sockets_close_and_they_cannot_reconnect(
    world: World, connect_as: Connect, db: asyncpg.Connection, gw: GatewayProcess, secret: str
) -> None:
    fan = await connect_as(world.fan)
    await db.execute("UPDATE creator.users SET account_status = 'banned' WHERE id = $1", world.fan)
    assert await fan.closed() == 4004
    again = await WsClient.open(gw.url, sign_access_token(secret, str(world.fan), "creator", 600))
    error = await again.expect("error")
    assert error["code"] == "unauthorized"
    assert await again.closed() == 4001


async def test_unread_counters_stay_exact_under_1000_concurrent_sends_and_reads(
    call: Call,
    world: World,
    secret: str,
    db: asyncpg.Connection,
    start_gateway: Starter,
    redis_url: str,
) -> None:
    channel = await open_dm(call, world.fan, world.creator)
    env = {
        "REDIS_URL": redis_url,
        "GATEWAY_FRAMES_PER_SECOND": "100000",
        "GATEWAY_FRAME_BURST": "100000",
    }
    gateways = [await start_gateway(**env), await start_gateway(**env)]

    async def socket(user: uuid.UUID, gateway: GatewayProcess) -> WsClient:
        client = await WsClient.open(
            gateway.url, sign_access_token(secret, str(user), "creator", 600)
        )
        await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
        await client.ok("join", channel=channel)
        return client

    fan = [await socket(world.fan, g) for g in gateways]
    creator = [await socket(world.creator, g) for g in gateways]

    async def party(sockets: list[WsClient], n: int, tag: str) -> None:
        for i in range(n):
            client = sockets[i % 2]
            if i % 5 == 4:  # one read for every four sends
                await client.send("read", channel=channel, seq=10**6)
            else:
                await client.send("send", channel=channel, text=f"{tag}{i}", client_id=f"{tag}{i}")

    await asyncio.gather(party(fan, 500, "f"), party(creator, 500, "c"))
    for client in fan + creator:  # every frame answered
        answered = await client.reply(client._ref, timeout=60)
        assert answered["op"] == "ok", answered

    # A last message each way: the unread event it causes (matched by its seq) is the last
    # one that party's count gets, and the newest (by version) of all they heard.
    to_creator = await fan[0].ok("send", channel=channel, text="last from fan")
    to_fan = await creator[0].ok("send", channel=channel, text="last from creator")
    row = await db.fetchrow(
        "SELECT c.*, (SELECT count(*) FROM creator.messages m WHERE m.conversation_id = c.id"
        "   AND m.sender_id = c.fan_id AND m.seq > c.creator_last_read_seq) AS creator_truth,"
        " (SELECT count(*) FROM creator.messages m WHERE m.conversation_id = c.id"
        "   AND m.sender_id = c.creator_id AND m.seq > c.fan_last_read_seq) AS fan_truth"
        " FROM creator.conversations c WHERE c.id = $1",
        uuid.UUID(channel.split(":")[1]),
    )
    assert row["last_seq"] == 802
    assert row["creator_unread_count"] == row["creator_truth"] > 0
    assert row["fan_unread_count"] == row["fan_truth"] > 0
    for sockets, last_seq, stored in (
        (creator, to_creator["seq"], row["creator_unread_count"]),
        (fan, to_fan["seq"], row["fan_unread_count"]),
    ):
        for client in sockets:
            final = await client.expect(
                lambda f, s=last_seq: unread_for(channel)(f) and f["seq"] == s, timeout=30
            )
            assert final["unread"] == stored
            earlier = client.take_all(unread_for(channel))
            assert all(f["data"]["version"] < final["data"]["version"] for f in earlier)
    for client in fan + creator:
        await client.close()


async def test_a_media_message_over_the_socket_keeps_its_attachment(
    call: Call, world: World, connect_as: Connect
) -> None:
    channel = await open_dm(call, world.fan, world.creator)
    fan, creator = await connect_as(world.fan), await connect_as(world.creator)
    for client in (fan, creator):
        await client.ok("join", channel=channel)
    photo = {"url": "https://cdn.example.com/p.jpg", "mime_type": "image/jpeg", "width": 10}
    refused = await fan.call("send", channel=channel, text="no file", type="image")
    assert refused["code"] == "bad_request"
    await fan.ok("send", channel=channel, text="look", type="image", attachment=photo)
    msg = await creator.expect("msg")
    assert msg["type"] == "image" and msg["attachment"] == photo
    page = await creator.ok("history", channel=channel)
    assert page["messages"][0]["attachment"] == photo
    for client in (fan, creator):
        await client.close()
