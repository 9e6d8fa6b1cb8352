"""`market.chat:<id>` over real sockets on a real gateway, with chats opened over REST: one
direct chat per pair (about a product or an order), gap-free seq and idempotent client_id
in market.messages, each message type's payload checked (coordinates, products with their
card), receipts in message_reads and exact unread counts pushed to the user's stream, group
admin rights, support staff and assignment, and strangers and blocked users kept out."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.realms.market.conftest import Connect, bearer, event, server_event
from tests.realms.market.world import World


async def open_chat(api: TestClient, secret: str, user: int, **body: Any) -> dict[str, Any]:
    if "with_" in body:
        body["with"] = body.pop("with_")
    resp = await api.post("/v1/market/chats", json=body, headers=bearer(secret, user))
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


def msg(**fields: Any) -> Any:
    return lambda f: f.get("op") == "msg" and all(f.get(k) == v for k, v in fields.items())


async def test_a_direct_chat_is_one_per_pair_and_may_be_about_a_product(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    buyer, seller, other = await world.buyer(), await world.seller(), await world.buyer()
    product = await world.product(seller_id=seller)
    first = await open_chat(market_api, secret, buyer, type="direct", with_=seller,
                            product_id=product)  # fmt: skip
    again = await open_chat(market_api, secret, seller, type="direct", with_=buyer)
    assert first["created"] and not again["created"]
    assert first["id"] == again["id"] and first["channel"] == f"market.chat:{first['id']}"
    assert (
        await db.fetchval("SELECT product_id FROM market.chats WHERE id = $1", first["id"])
        == product
    )
    two_buyers = await market_api.post(
        "/v1/market/chats", json={"type": "direct", "with": other}, headers=bearer(secret, buyer)
    )
    assert two_buyers.status == 403
    foreign = await market_api.post(
        "/v1/market/chats",
        json={"type": "direct", "with": seller, "product_id": await world.product()},
        headers=bearer(secret, other),
    )
    assert foreign.status == 400  # the product is another seller's


async def test_participants_chat_with_gap_free_seq_and_idempotent_retries(
    market_api: TestClient, sock: Connect, world: World, db: asyncpg.Connection, secret: str
) -> None:
    buyer, seller = await world.buyer(), await world.seller()
    chat = await open_chat(market_api, secret, buyer, type="direct", with_=seller)
    b, s = await sock(buyer), await sock(seller)
    channel = chat["channel"]
    joined = await b.ok("join", channel=channel)
    assert joined["role"] == "member" and joined["last_seq"] == 0
    assert {m["user_id"] for m in joined["members"]} == {str(buyer), str(seller)}
    await s.ok("join", channel=channel)
    first = await b.ok("send", channel=channel, text="Salom! Is it in stock?", client_id="c1")
    again = await b.ok("send", channel=channel, text="Salom! Is it in stock?", client_id="c1")
    reply = await s.ok("send", channel=channel, text="Yes")
    assert (first["seq"], reply["seq"]) == (1, 2)
    assert again["duplicate"] and again["id"] == first["id"] and again["seq"] == 1
    got = await s.expect(msg(channel=channel, seq=1))
    assert (got["text"], got["user_id"], got["type"]) == (
        "Salom! Is it in stock?",
        str(buyer),
        "text",
    )
    await b.expect(msg(channel=channel, seq=2, text="Yes"))
    rows = await db.fetch(
        "SELECT seq, sender_id, content, client_id FROM market.messages WHERE chat_id = $1"
        " ORDER BY seq",
        chat["id"],
    )
    assert [tuple(r) for r in rows] == [(1, buyer, "Salom! Is it in stock?", "c1"),
                                        (2, seller, "Yes", None)]  # fmt: skip
    assert await db.fetchval(
        "SELECT last_message_at IS NOT NULL FROM market.chats WHERE id = $1", chat["id"]
    )
    page = await b.ok("history", channel=channel)
    assert [m["seq"] for m in page["messages"]] == [1, 2]
    rest = await market_api.get(
        f"/v1/market/chats/{chat['id']}/messages", headers=bearer(secret, seller)
    )
    assert [m["text"] for m in await rest.json()] == ["Salom! Is it in stock?", "Yes"]


async def test_a_stranger_cannot_join_or_read_a_chat(
    market_api: TestClient, sock: Connect, world: World, secret: str
) -> None:
    buyer, seller, stranger = await world.buyer(), await world.seller(), await world.buyer()
    chat = await open_chat(market_api, secret, buyer, type="direct", with_=seller)
    intruder = await sock(stranger)
    refused = await intruder.call("join", channel=chat["channel"])
    assert (refused["op"], refused["code"]) == ("error", "forbidden")
    sent = await intruder.call("send", channel=chat["channel"], text="hi")
    assert sent["code"] == "forbidden"
    for path in (f"/v1/market/chats/{chat['id']}", f"/v1/market/chats/{chat['id']}/messages"):
        resp = await market_api.get(path, headers=bearer(secret, stranger))
        assert resp.status == 403, path
    missing = await intruder.call("join", channel="market.chat:999999")
    assert missing["code"] == "not_found"


async def test_location_messages_need_coordinates_in_range(
    market_api: TestClient, sock: Connect, world: World, db: asyncpg.Connection, secret: str
) -> None:
    buyer, seller = await world.buyer(), await world.seller()
    chat = await open_chat(market_api, secret, buyer, type="direct", with_=seller)
    b = await sock(buyer)
    await b.ok("join", channel=chat["channel"])
    for metadata in ({"lat": 91, "lon": 69.2}, {"lat": 41.3, "lon": -181}, {"lat": "41", "lon": 1},
                     {"lon": 69.2}, None):  # fmt: skip
        fields: dict[str, Any] = {"metadata": metadata} if metadata is not None else {}
        bad = await b.call("send", channel=chat["channel"], text="here", type="location", **fields)
        assert (bad["op"], bad["code"]) == ("error", "bad_request"), metadata
        assert "invalid coordinates" in bad["message"]
    good = await b.ok("send", channel=chat["channel"], text="the shop", type="location",
                      metadata={"lat": 41.311081, "lon": 69.279737})  # fmt: skip
    assert good["seq"] == 1  # the refused ones took no seq
    delivered = await b.expect(msg(seq=1))
    assert delivered["metadata"] == {"lat": 41.311081, "lon": 69.279737}
    stored = await db.fetchval(
        "SELECT metadata FROM market.messages WHERE chat_id = $1", chat["id"]
    )
    assert stored == {"lat": 41.311081, "lon": 69.279737}


async def test_product_messages_carry_a_product_card_and_unknown_products_are_refused(
    market_api: TestClient, sock: Connect, world: World, secret: str
) -> None:
    buyer, seller = await world.buyer(), await world.seller()
    product = await world.product(seller_id=seller, name="Smartphone X", status="active")
    await world.product_image(product_id=product, url="https://cdn.example.com/x.jpg",
                              is_primary=True)  # fmt: skip
    chat = await open_chat(market_api, secret, buyer, type="direct", with_=seller)
    b, s = await sock(buyer), await sock(seller)
    for client in (b, s):
        await client.ok("join", channel=chat["channel"])
    await b.ok("send", channel=chat["channel"], text="before")
    unknown = await b.call("send", channel=chat["channel"], text="this one", type="product",
                           metadata={"product_id": 987654321})  # fmt: skip
    assert (unknown["code"], "unknown product 987654321" in unknown["message"]) == (
        "not_found",
        True,
    )
    shaped = await b.call("send", channel=chat["channel"], text="x", type="product",
                          metadata={"product_id": "12"})  # fmt: skip
    assert shaped["code"] == "bad_request"
    sent = await b.ok("send", channel=chat["channel"], text="this one", type="product",
                      metadata={"product_id": product})  # fmt: skip
    assert sent["seq"] == 2  # nothing accepted before is lost, nothing refused took a seq
    card = (await s.expect(msg(seq=2)))["product"]
    assert card["id"] == product and card["name"] == "Smartphone X"
    assert (card["price"], card["currency"], card["seller_id"]) == ("1000.00", "UZS", str(seller))
    assert card["image_url"] == "https://cdn.example.com/x.jpg"
    page = await s.ok("history", channel=chat["channel"])
    assert [m["text"] for m in page["messages"]] == ["before", "this one"]
    assert page["messages"][1]["product"]["id"] == product


async def test_reads_write_receipts_and_push_unread_counts(
    market_api: TestClient, sock: Connect, world: World, db: asyncpg.Connection, secret: str
) -> None:
    buyer, seller = await world.buyer(), await world.seller()
    chat = await open_chat(market_api, secret, buyer, type="direct", with_=seller)
    channel = chat["channel"]
    b, s = await sock(buyer), await sock(seller)
    await s.ok("join", channel=channel)
    for n in range(1, 4):
        await s.ok("send", channel=channel, text=f"offer {n}")
        told = await b.expect(event("unread", conversation=channel, unread=n))
        assert told["channel"] == f"market.user:{buyer}"
    await b.ok("join", channel=channel)
    read = await b.ok("read", channel=channel, seq=2)
    assert read["seq"] == 2
    await b.expect(event("unread", conversation=channel, unread=1))
    receipt = await s.expect(event("read", channel=channel, user_id=str(buyer)))
    assert receipt["seq"] == 2
    reads = await db.fetch(
        "SELECT m.seq FROM market.message_reads r JOIN market.messages m ON m.id = r.message_id"
        " WHERE r.user_id = $1 ORDER BY m.seq",
        buyer,
    )
    assert [r["seq"] for r in reads] == [1, 2]
    assert await db.fetchval(
        "SELECT last_read_at IS NOT NULL FROM market.chat_participants"
        " WHERE chat_id = $1 AND user_id = $2",
        chat["id"],
        buyer,
    )
    back = await b.ok("read", channel=channel, seq=1)  # never moves back
    assert back["seq"] == 2
    listed = await market_api.get("/v1/market/chats", headers=bearer(secret, buyer))
    (summary,) = (await listed.json())["items"]
    assert (summary["unread"], summary["last_seq"]) == (1, 3)
    mine = await market_api.get("/v1/market/chats", headers=bearer(secret, seller))
    assert (await mine.json())["items"][0]["unread"] == 0  # own messages are never unread


async def test_receipts_and_unread_counts_are_exact_after_concurrent_reads_and_sends(
    market_api: TestClient, sock: Connect, world: World, db: asyncpg.Connection, secret: str
) -> None:
    admin, ann, bob = await world.seller(), await world.buyer(), await world.buyer()
    chat = await open_chat(market_api, secret, admin, type="group", name="Deals",
                           members=[ann, bob])  # fmt: skip
    channel = chat["channel"]
    sockets = {u: await sock(u) for u in (admin, ann, bob)}
    for client in sockets.values():
        await client.ok("join", channel=channel)

    async def talk(user: int) -> None:
        for n in range(15):
            await sockets[user].send("send", channel=channel, text=f"{user}-{n}")

    async def read_along(user: int) -> None:
        for seq in range(0, 45, 4):
            await sockets[user].ok("read", channel=channel, seq=seq)

    await asyncio.gather(talk(admin), talk(ann), read_along(bob), read_along(ann))
    for user in (admin, ann):  # every send answered
        for _ in range(15):
            await sockets[user].expect(lambda f: f.get("op") == "ok" and "created_at" in f)
    seqs = await db.fetch(
        "SELECT seq FROM market.messages WHERE chat_id = $1 ORDER BY seq", chat["id"]
    )
    assert [r["seq"] for r in seqs] == list(range(1, 31))
    for user in (admin, ann, bob):
        position = await db.fetchval(
            "SELECT last_read_seq FROM market.chat_participants WHERE chat_id = $1"
            " AND user_id = $2",
            chat["id"],
            user,
        )
        receipts = await db.fetchval(
            "SELECT array_agg(m.seq ORDER BY m.seq) FROM market.message_reads r"
            " JOIN market.messages m ON m.id = r.message_id"
            " WHERE r.user_id = $1 AND m.chat_id = $2",
            user,
            chat["id"],
        )
        others = await db.fetch(
            "SELECT seq FROM market.messages WHERE chat_id = $1 AND sender_id <> $2 ORDER BY seq",
            chat["id"],
            user,
        )
        expected_receipts = [r["seq"] for r in others if r["seq"] <= position]
        assert (receipts or []) == expected_receipts, user
        listed = await market_api.get("/v1/market/chats", headers=bearer(secret, user))
        unread = (await listed.json())["items"][0]["unread"]
        assert unread == sum(1 for r in others if r["seq"] > position), user
    # bob read as he went; one last read brings him to 0, pushed live
    await sockets[bob].ok("read", channel=channel, seq=30)
    await sockets[bob].expect(event("unread", conversation=channel, unread=0, seq=30))


async def test_group_admins_manage_members_and_a_removed_member_leaves_at_once(
    market_api: TestClient, sock: Connect, world: World, secret: str
) -> None:
    admin, bob, carol = await world.seller(), await world.buyer(), await world.buyer()
    chat = await open_chat(market_api, secret, admin, type="group", name="Deals", members=[bob])
    url = f"/v1/market/chats/{chat['id']}"
    b, c = await sock(bob), await sock(carol)
    await b.ok("join", channel=chat["channel"])
    member_adds = await market_api.post(f"{url}/members", json={"users": [carol]},
                                        headers=bearer(secret, bob))  # fmt: skip
    assert member_adds.status == 403
    added = await market_api.post(f"{url}/members", json={"users": [carol]},
                                  headers=bearer(secret, admin))  # fmt: skip
    assert (await added.json())["added"] == [carol]
    await c.expect(server_event("chat_added", chat_id=chat["id"], role="member"))
    await b.expect(server_event("members_added", chat_id=chat["id"]))
    renamed = await market_api.patch(url, json={"name": "Hot deals"}, headers=bearer(secret, admin))
    assert renamed.status == 204
    await b.expect(server_event("renamed", name="Hot deals"))
    removed = await market_api.delete(f"{url}/members/{bob}", headers=bearer(secret, admin))
    assert removed.status == 204
    await b.expect(event("removed", channel=chat["channel"]))
    again = await b.call("send", channel=chat["channel"], text="still here?")
    assert again["code"] == "forbidden"
    detail = await market_api.get(url, headers=bearer(secret, carol))
    assert {p["user_id"] for p in (await detail.json())["participants"]} == {admin, carol}


async def test_support_staff_answer_any_support_chat_and_the_assignment_is_visible(
    market_api: TestClient, sock: Connect, world: World, secret: str
) -> None:
    buyer = await world.buyer()
    staff = await world.admin("technical_access")
    accountant = await world.admin("accounting")
    chat = await open_chat(market_api, secret, buyer, type="support", name="Refund?")
    queue = await market_api.get("/v1/market/chats?type=support", headers=bearer(secret, staff))
    assert [c["id"] for c in (await queue.json())["items"]] == [chat["id"]]
    u, st = await sock(buyer), await sock(staff)
    await u.ok("join", channel=chat["channel"])
    await u.ok("send", channel=chat["channel"], text="Where is my refund?")
    other = await (await sock(accountant)).call("join", channel=chat["channel"])
    assert other["code"] == "forbidden"
    joined = await st.ok("join", channel=chat["channel"])
    assert joined["role"] == "staff"
    await st.ok("send", channel=chat["channel"], text="Looking into it")
    told = await u.expect(server_event("assigned", chat_id=chat["id"]))
    assert told["data"]["assigned_to"] == str(staff)
    await u.expect(msg(text="Looking into it", user_id=str(staff)))
    detail = await market_api.get(f"/v1/market/chats/{chat['id']}", headers=bearer(secret, buyer))
    assert (await detail.json())["assigned_to"] == staff


async def test_a_blocked_user_is_disconnected_and_cannot_send(
    market_api: TestClient, sock: Connect, world: World, db: asyncpg.Connection, secret: str
) -> None:
    buyer, seller = await world.buyer(), await world.seller()
    chat = await open_chat(market_api, secret, buyer, type="direct", with_=seller)
    b = await sock(buyer)
    await b.ok("join", channel=chat["channel"])
    await db.execute("UPDATE market.users SET status = 'banned' WHERE id = $1", buyer)
    assert await b.closed() == 4004
    assert await db.fetchval("SELECT count(*) FROM market.messages") == 0


async def test_a_muted_participant_still_gets_unread_counts_in_app(
    market_api: TestClient, sock: Connect, world: World, db: asyncpg.Connection, secret: str
) -> None:
    buyer, seller = await world.buyer(), await world.seller()
    chat = await open_chat(market_api, secret, buyer, type="direct", with_=seller)
    muted = await market_api.put(f"/v1/market/chats/{chat['id']}/mute", json={"muted": True},
                                 headers=bearer(secret, buyer))  # fmt: skip
    assert muted.status == 204
    b, s = await sock(buyer), await sock(seller)
    await s.ok("join", channel=chat["channel"])
    await s.ok("send", channel=chat["channel"], text="new price")
    await b.expect(event("unread", conversation=chat["channel"], unread=1))
    listed = await market_api.get("/v1/market/chats", headers=bearer(secret, buyer))
    assert (await listed.json())["items"][0]["muted"] is True
