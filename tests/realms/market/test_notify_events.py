"""Market notifications on real Postgres (and a real gateway for chat): the seed's
notification_settings switches decide e-mail, push and SMS per category, and SMS reaches the
SMS provider's stand-in through the real delivery worker; order status changes
notify the buyer, payout moves the seller; chat participants with no socket in the chat are
notified, and a muted one gets the in-app notification but no push; flash sales are
announced to subscribers who did not opt out of promotions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp.test_utils import TestClient

from kernel.config import Settings
from kernel.db import create_pool
from kernel.realms import Realms
from realms.market import REALM, events, jobs
from tests.notifications.sms_standin import ACCOUNT_SID, AUTH_TOKEN, FROM, SmsStandIn
from tests.realms.market.conftest import Connect, bearer
from tests.realms.market.test_jobs import FixedClock
from tests.realms.market.world import World
from workers.delivery import build_senders, close_senders
from workers.delivery.outbox import Outbox
from workers.delivery.worker import DeliveryWorker

NOTES = """
SELECT n.user_id::bigint AS user_id, n.notification_type, n.send_in_app, n.send_push,
       n.send_email, (SELECT array_agg(d.channel ORDER BY d.channel)
                        FROM gateway.notification_deliveries d
                       WHERE d.notification_id = n.id) AS jobs
  FROM gateway.notifications n WHERE n.realm = 'market' AND n.notification_type = $1
 ORDER BY n.user_id::bigint
"""


async def device(db: asyncpg.Connection, user: int) -> None:
    await db.execute(
        "INSERT INTO gateway.push_devices (realm, user_id, token, platform)"
        " VALUES ('market', $1, $2, 'android')",
        str(user),
        f"device-{user}",
    )


async def test_the_seed_switches_decide_email_push_and_sms_per_category(
    world: World, db: asyncpg.Connection
) -> None:
    default = await world.buyer(email_verified=True, phone="+998900000001", phone_verified=True)
    texted = await world.buyer(email_verified=True, phone="+998900000002", phone_verified=True)
    quiet = await world.buyer(email_verified=True, phone="+998900000003", phone_verified=True)
    for user in (default, texted, quiet):
        await device(db, user)
    await world.notification_settings(user_id=texted, sms_enabled=True)
    await world.notification_settings(user_id=quiet, order_updates=False)
    async with db.transaction():
        told = await events.tell(db, event_key="order:1:confirmed", users=[default, texted, quiet],
                                 kind="order", title="Confirmed", message="Order 1")  # fmt: skip
    assert told.created == 3 and told.sms == [texted]
    rows = [tuple(r) for r in await db.fetch(NOTES, "order")]
    assert rows == [
        (default, "order", True, True, True, ["email", "push"]),
        (texted, "order", True, True, True, ["email", "push", "sms"]),
        (quiet, "order", True, False, False, None),  # in-app only: order updates are off
    ]
    async with db.transaction():
        # system notices have no category switch; SMS still needs sms_enabled
        again = await events.tell(db, event_key="sys:1", users=[quiet], kind="system",
                                  title="Hi", message="Maintenance")  # fmt: skip
    assert again.sms == [] and again.created == 1
    async with db.transaction():
        replay = await events.tell(db, event_key="order:1:confirmed", users=[default],
                                   kind="order", title="Confirmed", message="Order 1")  # fmt: skip
    assert replay.created == 0  # one notification per event and user


async def test_order_status_changes_notify_the_buyer_and_show_in_the_inbox(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    buyer, seller = await world.buyer(), await world.seller()
    order = await world.order(buyer_id=buyer, seller_id=seller)
    await world.order_item(order_id=order)
    resp = await market_api.post(
        f"/v1/market/orders/{order}/status", json={"status": "confirmed"},
        headers=bearer(secret, seller),
    )  # fmt: skip
    assert resp.status == 200
    rows = await db.fetch(NOTES, "order")
    assert [(r["user_id"], r["send_in_app"]) for r in rows] == [(buyer, True)]
    inbox = await market_api.get("/v1/market/notifications", headers=bearer(secret, buyer))
    body = await inbox.json()
    assert inbox.status == 200 and body["items"][0]["title"] == "Your order is confirmed"
    none = await market_api.get("/v1/market/notifications", headers=bearer(secret, seller))
    assert (await none.json())["items"] == []


async def test_payout_moves_notify_the_seller(
    market_api: TestClient, world: World, db: asyncpg.Connection, secret: str
) -> None:
    seller, accountant = await world.seller(), await world.admin("accounting")
    credit = await market_api.post(f"/v1/market/wallets/{seller}/credit", json={"amount": "50"},
                                   headers=bearer(secret, accountant))  # fmt: skip
    assert credit.status == 201
    asked = await market_api.post("/v1/market/payouts", json={"amount": "20", "method": "cash"},
                                  headers=bearer(secret, seller))  # fmt: skip
    payout = (await asked.json())["id"]
    moved = await market_api.post(
        f"/v1/market/payouts/{payout}/status", json={"status": "failed"},
        headers=bearer(secret, accountant),
    )  # fmt: skip
    assert moved.status == 200
    rows = await db.fetch(NOTES, "payment")
    assert [r["user_id"] for r in rows] == [seller]


async def test_switches_are_read_and_changed_over_rest(
    market_api: TestClient, world: World, secret: str
) -> None:
    user = await world.buyer()
    got = await market_api.get("/v1/market/notification-settings", headers=bearer(secret, user))
    assert (await got.json())["sms_enabled"] is False
    changed = await market_api.patch("/v1/market/notification-settings",
                                     json={"sms_enabled": True, "promotions": False},
                                     headers=bearer(secret, user))  # fmt: skip
    body = await changed.json()
    assert (body["sms_enabled"], body["promotions"], body["push_enabled"]) == (True, False, True)


async def test_absent_participants_are_notified_and_a_muted_one_gets_in_app_but_no_push(
    market_api: TestClient, sock: Connect, world: World, db: asyncpg.Connection, secret: str
) -> None:
    sender, muted, away, here = [await world.buyer(email_verified=True) for _ in range(4)]
    for user in (muted, away, here):
        await device(db, user)
    made = await market_api.post("/v1/market/chats", headers=bearer(secret, sender),
                                 json={"type": "group", "name": "Club",
                                       "members": [muted, away, here]})  # fmt: skip
    chat = await made.json()
    assert made.status in (200, 201), chat
    mute = await market_api.put(f"/v1/market/chats/{chat['id']}/mute", json={"muted": True},
                                headers=bearer(secret, muted))  # fmt: skip
    assert mute.status in (200, 204)
    s, h = await sock(sender), await sock(here)
    await h.ok("join", channel=chat["channel"])
    await s.ok("join", channel=chat["channel"])
    await s.ok("send", channel=chat["channel"], text="Sale tonight")
    await s.ok("send", channel=chat["channel"], text="Bring friends")
    rows = [tuple(r) for r in await db.fetch(NOTES, "message")]
    assert rows == [
        (muted, "message", True, False, False, None),
        (away, "message", True, True, True, ["email", "push"]),
    ]  # one per unread streak; `here` is in the chat and hears it live


async def test_flash_sales_are_announced_to_subscribers_who_did_not_opt_out(
    world: World, db: asyncpg.Connection
) -> None:
    seller = await world.seller()
    fan, opted_out, stranger = await world.buyer(), await world.buyer(), await world.buyer()
    for user in (fan, opted_out):
        await world.subscription(subscriber_id=user, subscribed_to_id=seller)
    await world.notification_settings(user_id=opted_out, promotions=False)
    now = datetime.now(UTC)
    sale = await world.flash_sale(starts_at=now - timedelta(minutes=10))
    await world.flash_sale_product(flash_sale_id=sale,
                                   product_id=await world.product(seller_id=seller))  # fmt: skip
    assert await jobs.announce_flash_sales(db, FixedClock(now)) == 1
    rows = await db.fetch(NOTES, "promotion")
    assert [r["user_id"] for r in rows] == [fan] and stranger != fan
    assert await jobs.announce_flash_sales(db, FixedClock(now)) == 0


async def test_sms_respects_sms_enabled_end_to_end_through_the_worker_and_the_provider(
    world: World, db: asyncpg.Connection, dsn: str, secret: str
) -> None:
    texted = await world.buyer(phone="+998901110001", phone_verified=True)
    default = await world.buyer(phone="+998901110002", phone_verified=True)
    unverified = await world.buyer(phone="+998901110003")
    opted_out = await world.buyer(phone="+998901110004", phone_verified=True)
    for user in (texted, unverified):
        await world.notification_settings(user_id=user, sms_enabled=True)
    await world.notification_settings(user_id=opted_out, sms_enabled=True, order_updates=False)
    async with db.transaction():
        told = await events.tell(db, event_key="order:9:in_transit",
                                 users=[texted, default, unverified, opted_out], kind="order",
                                 title="On its way", message="Order 9 is in transit")  # fmt: skip
    assert told.sms == [texted, unverified]  # the switches; only a verified phone gets a job
    jobs_of = await db.fetch(
        "SELECT user_id FROM gateway.notification_deliveries WHERE channel = 'sms'"
    )
    assert [r["user_id"] for r in jobs_of] == [str(texted)]
    provider = SmsStandIn()
    await provider.start()
    pool = await create_pool(dsn, min_size=1, max_size=4)
    settings = Settings(
        database_url=dsn,
        secret=secret,
        sms_base_url=provider.base_url,
        sms_account_sid=ACCOUNT_SID,
        sms_auth_token=AUTH_TOKEN,
        sms_from=FROM,
    )
    senders = build_senders(pool, settings)
    try:
        worker = DeliveryWorker(Outbox(pool, "w1", realms=Realms([REALM])), senders)
        while await worker.run_once():
            pass
    finally:
        await close_senders(senders)
        await pool.close()
        await provider.stop()
    assert [(m["To"], m["Body"]) for m in provider.sent] == [
        ("+998901110001", "On its way\nOrder 9 is in transit")
    ]
    status = await db.fetchval(
        "SELECT status FROM gateway.notification_deliveries WHERE channel = 'sms'"
    )
    assert status == "sent"
