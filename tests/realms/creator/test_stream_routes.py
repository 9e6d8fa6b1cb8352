"""/v1/creator/streams over the real api app and real gateway processes: creating, editing and
listing streams, the stream key (shown once, stored hashed, rotated), the lifecycle and its
errors, buying access to a premium stream (gross/fee/net, never charged twice, a failed
payment grants nothing), ending a stream removing every socket from its room on every
gateway, and the stream_starting notification (on going live, and the reminder job)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from kernel.tokens import sign_access_token
from realms.creator import jobs, notices, streams
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.creator.conftest import Call, Connect, Starter, World, bearer, make_account
from tests.realms.creator.test_jobs import FixedClock

STREAMS = "/v1/creator/streams"


def _in(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def _create(call: Call, creator: uuid.UUID, **fields: Any) -> dict[str, Any]:
    status, body = await call("POST", STREAMS, creator, json={"title": "Friday live", **fields})
    assert status == 201, body
    return dict(body)


async def _post(call: Call, user: uuid.UUID, stream: dict[str, Any], action: str) -> Any:
    return await call("POST", f"{STREAMS}/{stream['id']}/{action}", user)


def _bad(answer: tuple[int, Any], status: int = 400) -> str:
    code, body = answer
    assert code == status, body
    return str(body["error"]["message"])


async def test_creating_editing_and_listing_streams(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    # only verified creators stream; prices above zero; start times ahead
    assert _bad(await call("POST", STREAMS, world.fan, json={"title": "x"}), 403)
    unverified = await make_account(db, account_type="creator", verified=False)
    assert "verified age" in _bad(await call("POST", STREAMS, unverified, json={"title": "x"}), 403)
    for price in (0, -5):
        status, body = await call(
            "POST", STREAMS, world.creator, json={"title": "x", "price": price}
        )
        assert status == 400 and body["error"]["code"] == "bad_request"
    assert "past" in _bad(
        await call(
            "POST", STREAMS, world.creator, json={"title": "x", "scheduled_at": _in(hours=-1)}
        )
    )
    naive = f"{datetime.now(UTC) + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}"  # no time zone
    _bad(await call("POST", STREAMS, world.creator, json={"title": "x", "scheduled_at": naive}))
    assert "blank" in _bad(await call("POST", STREAMS, world.creator, json={"title": "   "}))

    later = await _create(call, world.creator, scheduled_at=_in(hours=3), description="late")
    soon = await _create(
        call, world.creator, scheduled_at=_in(hours=1), price=499, chat_enabled=False
    )
    draft = await _create(call, world.creator)  # no start time: not announced
    assert soon["status"] == "scheduled" and soon["is_premium"] and soon["price"] == 499
    assert soon["currency"] == "USD" and soon["chat_enabled"] is False
    assert soon["channel"] == f"creator.live:{soon['id']}" and later["price"] is None

    # the public listing of announced streams, soonest first, page by page
    path = f"{STREAMS}?status=scheduled&creator_id={world.creator}&limit=1"
    status, first = await call("GET", path, world.stranger)
    assert status == 200 and [s["id"] for s in first["items"]] == [soon["id"]]
    status, second = await call("GET", f"{path}&cursor={first['next_cursor']}", world.stranger)
    assert [s["id"] for s in second["items"]] == [later["id"]] and second["next_cursor"] is None
    status, live = await call("GET", STREAMS, world.stranger)
    assert status == 200 and live["items"] == []
    status, mine = await call("GET", "/v1/creator/me/streams", world.creator)
    assert [s["id"] for s in mine["items"]] == [draft["id"], soon["id"], later["id"]]
    status, others = await call("GET", "/v1/creator/me/streams", world.fan)
    assert status == 200 and others["items"] == []

    # edits: the creator only; price to free and back
    one = f"{STREAMS}/{soon['id']}"
    assert _bad(await call("PATCH", one, world.fan, json={"title": "mine now"}), 403)
    assert _bad(await call("PATCH", f"{STREAMS}/{uuid.uuid4()}", world.creator, json={}), 404)
    assert _bad(await call("GET", f"{STREAMS}/not-a-uuid", world.creator))
    _bad(await call("PATCH", one, world.creator, json={"price": 0}))
    status, edited = await call(
        "PATCH", one, world.creator, json={"title": "Sunday live", "price": None}
    )
    assert status == 200 and edited["title"] == "Sunday live"
    assert (edited["is_premium"], edited["price"]) == (False, None)
    status, edited = await call("PATCH", one, world.creator, json={"price": 999})
    assert (edited["is_premium"], edited["price"]) == (True, 999)
    status, seen = await call("GET", one, world.fan)
    assert status == 200 and seen["title"] == "Sunday live" and seen["access_type"] is None
    assert seen["stream_key_issued_at"] is None


async def test_the_stream_key_is_shown_once_stored_hashed_and_rotated(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    stream = await _create(call, world.creator, scheduled_at=_in(hours=1))
    _bad(await _post(call, world.fan, stream, "key"), 403)
    status, issued = await _post(call, world.creator, stream, "key")
    assert status == 201 and issued["stream_id"] == stream["id"]
    key = issued["stream_key"]
    assert key.startswith("sk_") and len(key) > 40
    stored = await db.fetchval(
        "SELECT stream_key_hash FROM creator.live_streams WHERE id = $1", uuid.UUID(stream["id"])
    )
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    assert await db.fetchval("SELECT creator.stream_id_for_key($1)", key) == uuid.UUID(stream["id"])

    # never again in any answer, nor in the audit trail
    answers = [
        await call("GET", f"{STREAMS}/{stream['id']}", world.creator),
        await call("GET", "/v1/creator/me/streams", world.creator),
        await call("GET", f"{STREAMS}?status=scheduled", world.creator),
        await call("PATCH", f"{STREAMS}/{stream['id']}", world.creator, json={"title": "t"}),
    ]
    assert answers[0][1]["stream_key_issued_at"] is not None
    audit = await db.fetch("SELECT * FROM creator.audit_logs")
    for text in (json.dumps(answers), json.dumps([dict(r) for r in audit], default=str)):
        assert key not in text and stored not in text

    status, rotated = await _post(call, world.creator, stream, "key")
    assert status == 201 and rotated["stream_key"] != key
    assert await db.fetchval("SELECT creator.stream_id_for_key($1)", key) is None
    assert await db.fetchval("SELECT creator.stream_id_for_key($1)", rotated["stream_key"]) == (
        uuid.UUID(stream["id"])
    )


async def test_the_lifecycle_and_its_errors(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    stream = await _create(call, world.creator, scheduled_at=_in(hours=1), price=500)
    assert "scheduled" in _bad(await _post(call, world.creator, stream, "end"))
    _bad(await _post(call, world.fan, stream, "start"), 403)
    _bad(await call("POST", f"{STREAMS}/{uuid.uuid4()}/start", world.creator), 404)
    status, live = await _post(call, world.creator, stream, "start")
    assert status == 200 and live["status"] == "live" and live["started_at"] is not None
    assert "live" in _bad(await _post(call, world.creator, stream, "start"))
    status, listed = await call("GET", STREAMS, world.stranger)
    assert [s["id"] for s in listed["items"]] == [stream["id"]]

    one = f"{STREAMS}/{stream['id']}"
    assert "price" in _bad(await call("PATCH", one, world.creator, json={"price": 100}))
    status, muted = await call("PATCH", one, world.creator, json={"chat_enabled": False})
    assert status == 200 and muted["chat_enabled"] is False
    other = await _create(call, world.creator)
    _bad(await _post(call, world.creator, other, "start"), 409)  # one live stream at a time
    status, _ = await _post(call, world.creator, stream, "key")  # a key while live
    assert status == 201

    _bad(await _post(call, world.fan, stream, "end"), 403)
    status, ended = await _post(call, world.creator, stream, "end")
    assert status == 200 and ended["status"] == "ended" and ended["ended_at"] is not None
    assert "ended" in _bad(await _post(call, world.creator, stream, "end"))
    _bad(await call("PATCH", one, world.creator, json={"title": "again"}))
    _bad(await _post(call, world.creator, stream, "key"))
    status, listed = await call("GET", STREAMS, world.stranger)
    assert status == 200 and listed["items"] == []

    # the other may now go live; staff may end it; a scheduled one is cancelled
    status, _ = await _post(call, world.creator, other, "start")
    assert status == 200
    status, ended = await _post(call, world.moderator, other, "end")
    assert status == 200 and ended["status"] == "ended"
    third = await _create(call, world.creator)
    status, cancelled = await _post(call, world.creator, third, "cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    _bad(await _post(call, world.creator, third, "cancel"))
    _bad(await _post(call, world.creator, third, "start"))
    status, listed = await call("GET", "/v1/creator/me/streams?status=ended", world.creator)
    assert {s["id"] for s in listed["items"]} == {stream["id"], other["id"]}
    # the audit trail names the moderator who ended the creator's stream
    ended_by = await db.fetchrow(
        "SELECT user_id, admin_id FROM creator.audit_logs WHERE entity_type = 'live_streams'"
        " AND entity_id = $1 AND new_values ->> 'status' = 'ended'",
        uuid.UUID(other["id"]),
    )
    assert (ended_by["user_id"], ended_by["admin_id"]) == (world.creator, world.moderator)


async def _socket(gateway: GatewayProcess, secret: str, user: uuid.UUID) -> WsClient:
    client = await WsClient.open(gateway.url, sign_access_token(secret, str(user), "creator", 600))
    await client.expect(lambda f: f.get("op") == "ok" and f.get("role") == "self")
    return client


async def test_buying_access_to_a_premium_stream(
    call: Call, world: World, db: asyncpg.Connection, connect_as: Connect
) -> None:
    stream = await _create(call, world.creator, scheduled_at=_in(hours=1), price=499)
    access = f"{STREAMS}/{stream['id']}/access"
    stream_id = uuid.UUID(stream["id"])

    failed = await call("POST", access, world.fan, json={"payment_token": "tok_insufficient_funds"})
    assert "insufficient funds" in _bad(failed)
    assert failed[1]["error"]["details"]["failure_code"] == "insufficient_funds"
    assert await db.fetchval("SELECT count(*) FROM creator.stream_access") == 0

    status, bought = await call("POST", access, world.fan, json={"payment_token": "tok_ok"})
    assert status == 200 and bought["charged"] is True, bought
    payment = bought["payment"]
    assert payment["status"] == "completed" and payment["transaction_type"] == "stream_access"
    assert (payment["gross_amount"], payment["platform_fee"], payment["net_amount"]) == (
        499,
        100,
        399,
    )
    status, again = await call("POST", access, world.fan, json={"payment_token": "tok_ok"})
    assert status == 200 and again["charged"] is False
    assert again["payment"]["id"] == payment["id"]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM creator.transactions WHERE live_stream_id = $1", stream_id
        )
        == 2  # the failed attempt and the one that completed
    )
    row = await db.fetchrow(
        "SELECT access_type, transaction_id FROM creator.stream_access"
        " WHERE live_stream_id = $1 AND user_id = $2",
        stream_id,
        world.fan,
    )
    assert (row["access_type"], str(row["transaction_id"])) == ("paid", payment["id"])
    status, seen = await call("GET", f"{STREAMS}/{stream['id']}", world.fan)
    assert seen["access_type"] == "paid"

    # sold: the price and the schedule's cancellation hold
    _bad(await call("PATCH", f"{STREAMS}/{stream['id']}", world.creator, json={"price": 1}), 409)
    _bad(await _post(call, world.creator, stream, "cancel"), 409)
    # a purchase in flight answers 409; bad buyers and streams
    await db.execute(
        "INSERT INTO creator.transactions (user_id, creator_id, transaction_type, gross_amount,"
        " platform_fee, net_amount, idempotency_key, live_stream_id)"
        " VALUES ($1, $2, 'stream_access', 499, 100, 399, 'in-flight', $3)",
        world.stranger,
        world.creator,
        stream_id,
    )
    _bad(await call("POST", access, world.stranger, json={"payment_token": "tok_ok"}), 409)
    assert "own" in _bad(await call("POST", access, world.creator, json={"payment_token": "t"}))
    free = await _create(call, world.creator)
    assert "free" in _bad(
        await call("POST", f"{STREAMS}/{free['id']}/access", world.fan, json={"payment_token": "t"})
    )
    _bad(
        await call(
            "POST", f"{STREAMS}/{uuid.uuid4()}/access", world.fan, json={"payment_token": "t"}
        ),
        404,
    )
    unverified = await make_account(db, verified=False)
    _bad(await call("POST", access, unverified, json={"payment_token": "tok_ok"}), 403)

    # live: the buyer watches, a fan who did not buy does not
    await _post(call, world.creator, stream, "start")
    fan = await connect_as(world.fan)
    assert (await fan.ok("join", channel=stream["channel"]))["role"] == "member"
    other = await connect_as(await make_account(db))
    refused = await other.call("join", channel=stream["channel"])
    assert refused["op"] == "error" and "premium" in refused["message"]
    for client in (fan, other):
        await client.close()


async def test_ending_a_stream_removes_every_socket_from_its_room_on_every_gateway(
    call: Call,
    world: World,
    db: asyncpg.Connection,
    start_gateway: Starter,
    redis_url: str,
    secret: str,
) -> None:
    env = {"REDIS_URL": redis_url}
    a, b = await start_gateway(**env), await start_gateway(**env)
    stream = await _create(call, world.creator)
    await _post(call, world.creator, stream, "start")
    channel = stream["channel"]
    owner = await _socket(a, secret, world.creator)
    viewers = [
        await _socket(a, secret, world.fan),
        await _socket(b, secret, world.fan),
        await _socket(b, secret, world.stranger),
    ]
    staff = await _socket(b, secret, world.moderator)
    outside = await _socket(a, secret, world.stranger)  # not in the room
    room = [owner, *viewers, staff]
    for client in room:
        await client.ok("join", channel=channel)
    await owner.expect(
        lambda f: f.get("kind") == "viewers" and f["data"]["current"] == 2, timeout=30
    )

    status, ended = await _post(call, world.creator, stream, "end")
    assert status == 200 and ended["status"] == "ended"
    for client in room:
        told = await client.expect(lambda f: f.get("name") == "stream_ended")
        assert told["channel"] == channel and told["data"]["peak_viewers"] == 2
        removed = await client.expect(lambda f: f.get("kind") == "removed")
        assert removed["channel"] == channel and "ended" in removed["reason"]
        refused = await client.call("send", channel=channel, text="still here?")
        assert refused["op"] == "error"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM creator.stream_access WHERE live_stream_id = $1"
            " AND (last_left_at IS NULL OR last_left_at < last_joined_at)",
            uuid.UUID(stream["id"]),
        )
        == 0
    )
    rejoin = await viewers[0].call("join", channel=channel)
    assert rejoin["op"] == "error" and "not live" in rejoin["message"]
    await outside.call("ping")
    assert outside.take_all(lambda f: f.get("kind") in ("removed", "server")) == []

    # cancelling a scheduled stream removes its creator's sockets as well
    scheduled = await _create(call, world.creator)
    waiting = await _socket(b, secret, world.creator)
    await waiting.ok("join", channel=scheduled["channel"])
    status, _ = await _post(call, world.creator, scheduled, "cancel")
    assert status == 200
    removed = await waiting.expect(lambda f: f.get("kind") == "removed")
    assert removed["channel"] == scheduled["channel"] and "cancelled" in removed["reason"]
    for client in [*room, outside, waiting]:
        await client.close()


async def _follow(
    db: asyncpg.Connection, follower: uuid.UUID, creator: uuid.UUID, **fields: Any
) -> None:
    values = {"follower_id": follower, "following_id": creator, **fields}
    cols = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await db.execute(f"INSERT INTO creator.follows ({cols}) VALUES ({params})", *values.values())


async def _starting(db: asyncpg.Connection, stream_id: str) -> dict[uuid.UUID, asyncpg.Record]:
    rows = await db.fetch(
        "SELECT * FROM gateway.notifications WHERE realm = 'creator'"
        " AND notification_type = 'stream_starting' AND related_entity_id = $1",
        uuid.UUID(stream_id),
    )
    return {uuid.UUID(r["user_id"]): r for r in rows}


async def test_going_live_notifies_followers_and_subscribers_once(
    call: Call,
    api: TestClient,
    secret: str,
    world: World,
    db: asyncpg.Connection,
    connect_as: Connect,
) -> None:
    follower = await make_account(db, email_verified=True)
    quiet = await make_account(db)  # follows with live notices off
    gone = await make_account(db)  # unfollowed
    opted_out = await make_account(db)  # blocked the category in their preferences
    quiet_subscriber = await make_account(db)
    await _follow(db, follower, world.creator)
    await _follow(db, quiet, world.creator, notify_on_live=False)
    await _follow(db, gone, world.creator, unfollowed_at=datetime.now(UTC))
    await _follow(db, opted_out, world.creator)
    await _follow(db, quiet_subscriber, world.creator, notify_on_live=False)
    await db.execute(
        "INSERT INTO creator.subscriptions (subscriber_id, creator_id, subscription_type, status,"
        " price, started_at, current_period_start, expires_at)"
        " VALUES ($1, $2, 'monthly', 'active', 999, now(), now(), now() + interval '30 days')",
        quiet_subscriber,
        world.creator,
    )
    answer = await api.put(
        "/v1/creator/notifications/preferences",
        headers=bearer(secret, opted_out),
        json={"category": "stream_starting", "channel": "*", "enabled": False},
    )
    assert answer.status == 204
    listening = await connect_as(follower)

    stream = await _create(call, world.creator, title="Q&A night")
    status, _ = await _post(call, world.creator, stream, "start")
    assert status == 200
    frame = await listening.expect(lambda f: f.get("op") == "notification")
    assert "Q&A night" in json.dumps(frame)

    told = await _starting(db, stream["id"])
    assert set(told) == {follower, world.fan}  # the follower and the subscribed fan
    assert told[follower]["title"].endswith("is live: Q&A night")
    channels = {
        (r["user_id"], r["channel"])
        for r in await db.fetch("SELECT user_id, channel FROM gateway.notification_deliveries")
    }
    assert (str(follower), "email") in channels  # a verified address, e-mail allowed
    assert (str(world.fan), "email") not in channels
    seed_rows = await db.fetchval(
        "SELECT count(*) FROM creator.notifications WHERE notification_type = 'stream_starting'"
    )
    assert seed_rows == 3  # the seed's rows know nothing of preferences (they are not served)
    again = await notices.stream_starting(
        db,
        stream_id=uuid.UUID(stream["id"]),
        creator_name="x",
        title="Q&A night",
        recipients=[follower, world.fan],
    )
    assert again == 0
    await listening.close()


async def test_the_reminder_job_tells_the_audience_once_per_start_time(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    soon = await _create(call, world.creator, title="Soon", scheduled_at=_in(minutes=10))
    await _create(call, world.creator, title="Later", scheduled_at=_in(minutes=40))
    now = datetime.now(UTC)
    async with db.transaction():
        assert await streams.remind_upcoming(db, FixedClock(now)) == 1
    async with db.transaction():
        assert await streams.remind_upcoming(db, FixedClock(now)) == 0
    (reminder,) = (await _starting(db, soon["id"])).values()
    assert reminder["user_id"] == str(world.fan)
    assert "goes live in 10 minutes: Soon" in reminder["title"]

    status, _ = await call(
        "PATCH", f"{STREAMS}/{soon['id']}", world.creator, json={"scheduled_at": _in(minutes=12)}
    )
    assert status == 200
    async with db.transaction():
        assert await streams.remind_upcoming(db, FixedClock(datetime.now(UTC))) == 1

    declared = {job.name for job in jobs.JOBS if job.name.startswith("creator_stream_reminder")}
    assert declared == {f"creator_stream_reminder_{m:02d}" for m in range(0, 60, 5)}
