"""Premium messages and tips over a real gateway and the real api app: a locked message never
shows its content or media URL to a fan who has not paid (every frame, every REST answer), a
purchase delivers it once to each of the fan's sockets and is never charged twice, failed
payments deliver nothing; tips split gross/fee/net, reach the creator live, and an anonymous
tipper is never named to the creator."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from tests.realms.creator.conftest import Call, Connect, World
from tests.realms.creator.test_messaging import open_dm

SECRET_TEXT = "the secret body of a paid message"
SECRET_URL = "https://cdn.example.com/private/secret-photo.jpg"
PREMIUM = {
    "type": "image",
    "text": SECRET_TEXT,
    "attachments": [{"url": SECRET_URL, "mime_type": "image/jpeg", "width": 800, "height": 600}],
    "price": 500,
    "preview": {
        "blur_hash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj",
        "width": 800,
        "height": 600,
        "media_count": 1,
        "media_types": ["image"],
        "caption": "a teaser",
    },
    "client_id": "premium-1",
}


def leaks(thing: Any) -> bool:
    text = json.dumps(thing)
    return SECRET_TEXT in text or "secret-photo" in text


def unlocked_frame(f: dict[str, Any]) -> bool:
    return f.get("kind") == "message_unlocked"


async def _premium(call: Call, world: World, channel: str) -> dict[str, Any]:
    cid = channel.split(":")[1]
    status, sent = await call(
        "POST", f"/v1/creator/conversations/{cid}/messages", world.creator, json=PREMIUM
    )
    assert status == 201, sent
    return dict(sent["message"])


async def test_a_locked_message_is_delivered_once_after_purchase_and_never_leaks_before(
    call: Call, world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    channel = await open_dm(call, world.fan, world.creator)
    cid = channel.split(":")[1]
    fan = [await connect_as(world.fan), await connect_as(world.fan)]
    creator = await connect_as(world.creator)
    for client in [*fan, creator]:
        await client.ok("join", channel=channel)

    sent = await _premium(call, world, channel)
    assert sent["text"] == SECRET_TEXT and sent["price"] == 500  # the creator sees their own
    for client in fan:
        locked = await client.expect(lambda f: f.get("op") == "msg" and f.get("id") == sent["id"])
        assert locked["locked"] is True and locked["price"] == 500 and locked["currency"] == "USD"
        assert locked["preview"]["blur_hash"] and locked["preview"]["caption"] == "a teaser"
        assert locked["text"] == "" and "attachment" not in locked
    status, page = await call("GET", f"/v1/creator/conversations/{cid}/messages", world.fan)
    assert status == 200 and page[0]["locked"] is True
    joined_page = await fan[0].ok("history", channel=channel)
    assert joined_page["messages"][0]["locked"] is True

    # a failed payment: a clear error, nothing delivered, a failed transaction recorded
    status, failed = await call(
        "POST",
        f"/v1/creator/messages/{sent['id']}/purchase",
        world.fan,
        json={"payment_token": "tok_insufficient_funds"},
    )
    assert status == 400 and failed["error"]["details"]["failure_code"] == "insufficient_funds"
    assert "insufficient funds" in failed["error"]["message"]
    assert leaks(failed) is False

    # every frame and REST answer so far is free of the content
    marker = await creator.ok("send", channel=channel, text="marker 1")
    for client in fan:
        await client.expect(lambda f, m=marker: f.get("op") == "msg" and f.get("id") == m["id"])
        assert not leaks(client.inbox), client.inbox
        assert client.take_all(unlocked_frame) == []
    assert not leaks(page) and not leaks(joined_page)

    status, bought = await call(
        "POST",
        f"/v1/creator/messages/{sent['id']}/purchase",
        world.fan,
        json={"payment_token": "tok_ok"},
    )
    assert status == 200, bought
    payment = bought["payment"]
    assert bought["charged"] is True and payment["status"] == "completed"
    assert (payment["gross_amount"], payment["platform_fee"], payment["net_amount"]) == (
        500,
        100,
        400,
    )
    for client in fan:
        unlocked = await client.expect(unlocked_frame)
        assert unlocked["channel"] == f"creator.user:{world.fan}"
        message = unlocked["data"]["message"]
        assert message["text"] == SECRET_TEXT and message["attachment"]["url"] == SECRET_URL
        assert message.get("locked") is None and message["id"] == sent["id"]

    # a retried purchase charges nothing and delivers nothing again
    status, retried = await call(
        "POST",
        f"/v1/creator/messages/{sent['id']}/purchase",
        world.fan,
        json={"payment_token": "tok_ok"},
    )
    assert status == 200 and retried["charged"] is False
    assert retried["payment"]["id"] == payment["id"]
    marker = await creator.ok("send", channel=channel, text="marker 2")
    for client in fan:
        await client.expect(lambda f, m=marker: f.get("op") == "msg" and f.get("id") == m["id"])
        assert client.take_all(unlocked_frame) == []
    completed = await db.fetchval(
        "SELECT count(*) FROM creator.transactions WHERE message_id = $1 AND status = 'completed'",
        uuid.UUID(sent["id"]),
    )
    assert completed == 1
    status, page = await call("GET", f"/v1/creator/conversations/{cid}/messages", world.fan)
    assert page[0]["text"] == SECRET_TEXT and "locked" not in page[0]
    for client in [*fan, creator]:
        await client.close()


async def test_bad_premium_input_is_refused(call: Call, world: World) -> None:
    channel = await open_dm(call, world.fan, world.creator)
    path = f"/v1/creator/conversations/{channel.split(':')[1]}/messages"
    for price in (0, -5):
        status, body = await call("POST", path, world.creator, json={**PREMIUM, "price": price})
        assert status == 400 and body["error"]["code"] == "bad_request"
    status, _ = await call("POST", path, world.fan, json=PREMIUM)
    assert status == 400  # only the creator prices
    sent = await _premium(call, world, channel)
    status, own = await call(
        "POST",
        f"/v1/creator/messages/{sent['id']}/purchase",
        world.creator,
        json={"payment_token": "tok_ok"},
    )
    assert status == 400 and "your own" in own["error"]["message"]
    status, _ = await call(
        "POST",
        f"/v1/creator/messages/{sent['id']}/purchase",
        world.stranger,
        json={"payment_token": "tok_ok"},
    )
    assert status == 404


async def test_an_anonymous_tip_never_names_its_tipper_to_the_creator(
    call: Call, world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    creator = await connect_as(world.creator)
    status, tip = await call(
        "POST",
        "/v1/creator/tips",
        world.fan,
        json={
            "creator_id": str(world.creator),
            "amount": 1000,
            "is_anonymous": True,
            "message": "love your work",
            "payment_token": "tok_ok",
        },
    )
    assert status == 201, tip
    payment = tip["payment"]
    assert (payment["gross_amount"], payment["platform_fee"], payment["net_amount"]) == (
        1000,
        200,
        800,
    )
    live = await creator.expect(lambda f: f.get("kind") == "tip")
    assert live["channel"] == f"creator.user:{world.creator}"
    assert live["data"]["amount"] == 1000 and live["data"]["message"] == "love your work"
    assert "by" not in live and str(world.fan) not in json.dumps([*creator.inbox, live])
    status, received = await call("GET", "/v1/creator/tips/received", world.creator)
    assert status == 200 and received["items"][0]["tipper_id"] is None
    assert str(world.fan) not in json.dumps(received)

    status, _ = await call(
        "POST",
        "/v1/creator/tips",
        world.fan,
        json={"creator_id": str(world.creator), "amount": 300, "payment_token": "tok_ok"},
    )
    assert status == 201
    live = await creator.expect(lambda f: f.get("kind") == "tip")
    assert live["by"] == str(world.fan)
    await creator.close()


async def test_bad_tips_are_refused_and_failed_payments_leave_no_tip(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    base = {"creator_id": str(world.creator), "payment_token": "tok_ok"}
    for amount in (0, -100):
        status, body = await call(
            "POST", "/v1/creator/tips", world.fan, json={**base, "amount": amount}
        )
        assert status == 400 and body["error"]["code"] == "bad_request"
    status, _ = await call("POST", "/v1/creator/tips", world.creator, json={**base, "amount": 100})
    assert status == 400  # tipping yourself
    status, failed = await call(
        "POST",
        "/v1/creator/tips",
        world.fan,
        json={**base, "amount": 100, "payment_token": "tok_declined"},
    )
    assert status == 400 and failed["error"]["details"]["failure_code"] == "card_declined"
    assert await db.fetchval("SELECT count(*) FROM creator.tips") == 0
    assert (
        await db.fetchval("SELECT status FROM creator.transactions WHERE transaction_type = 'tip'")
        == "failed"
    )


async def test_a_retried_tip_with_its_idempotency_key_charges_once(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    body = {
        "creator_id": str(world.creator),
        "amount": 250,
        "payment_token": "tok_ok",
        "idempotency_key": "tip-abc",
    }
    first = await call("POST", "/v1/creator/tips", world.fan, json=body)
    again = await call("POST", "/v1/creator/tips", world.fan, json=body)
    assert first[0] == again[0] == 201
    assert first[1]["payment"]["id"] == again[1]["payment"]["id"]
    assert first[1]["tip_id"] == again[1]["tip_id"] is not None
    assert await db.fetchval("SELECT count(*) FROM creator.transactions") == 1
