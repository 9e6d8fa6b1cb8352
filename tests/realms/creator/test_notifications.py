"""The creator realm's notifications through the core (gateway.notifications, realm creator):
new_message only to a party not in the conversation, collapsed per unread streak, never with
a premium message's content; premium_message_purchased and tip_received to the creator, live
on their user stream and in /v1/creator/notifications; an anonymous tip names nobody."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from tests.realms.creator.conftest import Call, Connect, World
from tests.realms.creator.test_messaging import open_dm
from tests.realms.creator.test_premium_and_tips import PREMIUM, SECRET_TEXT, leaks


async def _rows(db: asyncpg.Connection, user: uuid.UUID, kind: str) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT * FROM gateway.notifications WHERE realm = 'creator' AND user_id = $1"
            " AND notification_type = $2 ORDER BY created_at",
            str(user),
            kind,
        )
    )


async def _send(call: Call, user: uuid.UUID, cid: str, text: str, **extra: Any) -> dict[str, Any]:
    status, body = await call(
        "POST", f"/v1/creator/conversations/{cid}/messages", user, json={"text": text, **extra}
    )
    assert status == 201, body
    return dict(body["message"])


async def test_new_message_reaches_an_absent_party_once_per_unread_streak(
    call: Call, world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    channel = await open_dm(call, world.fan, world.creator)
    cid = channel.split(":")[1]
    await _send(call, world.creator, cid, "hello fan")
    await _send(call, world.creator, cid, "are you there?")
    (first,) = await _rows(db, world.fan, "new_message")
    assert first["message"] == "hello fan" and first["related_entity_id"] == uuid.UUID(cid)

    # the fan reads: the next message starts a new streak, told once more
    status, _ = await call("POST", f"/v1/creator/conversations/{cid}/read", world.fan, json={})
    assert status == 200
    await _send(call, world.creator, cid, "new streak")
    assert [r["message"] for r in await _rows(db, world.fan, "new_message")] == [
        "hello fan",
        "new streak",
    ]

    # a premium message's notification carries none of its content
    await call("POST", f"/v1/creator/conversations/{cid}/read", world.fan, json={})
    status, sent = await call(
        "POST", f"/v1/creator/conversations/{cid}/messages", world.creator, json=PREMIUM
    )
    assert status == 201, sent
    rows = await _rows(db, world.fan, "new_message")
    assert len(rows) == 3 and not leaks([str(dict(r)) for r in rows])
    assert SECRET_TEXT not in json.dumps([str(v) for r in rows for v in r.values()])

    # in the conversation (a joined socket): nobody is told, by REST or socket sends
    await call("POST", f"/v1/creator/conversations/{cid}/read", world.fan, json={})
    fan = await connect_as(world.fan)
    await fan.ok("join", channel=channel)
    await _send(call, world.creator, cid, "you are here")
    creator = await connect_as(world.creator)
    await creator.ok("join", channel=channel)
    await creator.ok("send", channel=channel, text="over the socket")
    assert len(await _rows(db, world.fan, "new_message")) == 3

    # the creator left: the fan's socket sends tell them, once per streak
    await creator.close()
    await fan.expect(lambda f: f.get("kind") == "left" and f.get("user_id") == str(world.creator))
    await fan.ok("send", channel=channel, text="one")
    await fan.ok("send", channel=channel, text="two")
    told = await _rows(db, world.creator, "new_message")
    assert len(told) == 1 and told[0]["message"] == "one"
    await fan.close()


async def test_purchase_and_tips_notify_the_creator_and_anonymous_tips_name_nobody(
    call: Call, world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    fan_name = await db.fetchval("SELECT username FROM creator.users WHERE id = $1", world.fan)
    creator = await connect_as(world.creator)
    channel = await open_dm(call, world.fan, world.creator)
    cid = channel.split(":")[1]
    status, sent = await call(
        "POST", f"/v1/creator/conversations/{cid}/messages", world.creator, json=PREMIUM
    )
    assert status == 201
    status, bought = await call(
        "POST",
        f"/v1/creator/messages/{sent['message']['id']}/purchase",
        world.fan,
        json={"payment_token": "tok_ok"},
    )
    assert status == 200, bought
    frame = await creator.expect(
        lambda f: f.get("op") == "notification" and "premium" in json.dumps(f)
    )
    assert fan_name in json.dumps(frame) and "4.00 USD" in json.dumps(frame)
    # a retried purchase tells nobody again
    await call(
        "POST",
        f"/v1/creator/messages/{sent['message']['id']}/purchase",
        world.fan,
        json={"payment_token": "tok_ok"},
    )
    assert len(await _rows(db, world.creator, "premium_message_purchased")) == 1

    tip = {"creator_id": str(world.creator), "payment_token": "tok_ok", "message": "thanks!"}
    status, _ = await call(
        "POST", "/v1/creator/tips", world.fan, json={**tip, "amount": 700, "is_anonymous": True}
    )
    assert status == 201
    anonymous = await creator.expect(
        lambda f: f.get("op") == "notification" and "7.00 USD" in json.dumps(f)
    )
    status, _ = await call("POST", "/v1/creator/tips", world.fan, json={**tip, "amount": 300})
    assert status == 201
    named = await creator.expect(
        lambda f: f.get("op") == "notification" and "3.00 USD" in json.dumps(f)
    )
    assert fan_name in json.dumps(named)
    assert fan_name not in json.dumps(anonymous) and str(world.fan) not in json.dumps(anonymous)

    status, inbox = await call("GET", "/v1/creator/notifications", world.creator)
    assert status == 200
    tips = [n for n in inbox["items"] if n["notification_type"] == "tip_received"]
    assert len(tips) == 2
    anonymous_row = next(n for n in tips if "7.00 USD" in n["title"])
    assert anonymous_row["title"].startswith("An anonymous fan")
    assert fan_name not in json.dumps(anonymous_row) and str(world.fan) not in json.dumps(
        anonymous_row
    )
    # the fan's inbox holds none of the creator's notifications
    status, fans = await call("GET", "/v1/creator/notifications", world.fan)
    assert status == 200 and all(n["notification_type"] == "new_message" for n in fans["items"])
    await creator.close()
