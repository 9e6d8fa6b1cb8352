"""Market notifications: one call per domain event, `tell()`, which lets the seed's
notification_settings (market.notification_channel_enabled: e-mail, push and SMS switches x
the order, promotion, message and review categories) decide each recipient's channels, then
hands the event to the core's kernel.notify.notify (in-app row, push, e-mail and SMS jobs) in
the caller's transaction. The seed's types are the categories: order, message, review,
promotion, system, payment. SMS goes to the user's verified phone (the realm's contact_sql)
through the core's SMS channel (docs/realm-market.md, "Notifications")."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

import asyncpg

from kernel.notify import Priority, notify

Kind = Literal["order", "message", "review", "promotion", "system", "payment"]

_SWITCHES = """
SELECT u AS user_id,
       market.notification_channel_enabled(u, $2::market.notification_type_enum, 'email') AS email,
       market.notification_channel_enabled(u, $2::market.notification_type_enum, 'push') AS push,
       market.notification_channel_enabled(u, $2::market.notification_type_enum, 'sms') AS sms
  FROM unnest($1::bigint[]) AS u
"""


@dataclass
class Told:
    """What one event produced: notifications stored, and the users whose switches asked for
    SMS (an SMS job is queued for those of them with a verified phone)."""

    created: int = 0
    sms: list[int] = field(default_factory=list)


async def tell(
    conn: asyncpg.Connection,
    *,
    event_key: str,
    users: list[int],
    kind: Kind,
    title: str,
    message: str,
    action_url: str | None = None,
    in_app: bool = True,
    push: bool = True,
    email: bool = True,
    sms: bool = True,
    priority: Priority = "medium",
) -> Told:
    """Notify `users` of one event (`event_key`: a user is told once per key). A channel
    fires when the caller allows it here and the user's seed switches allow it for `kind`;
    in-app is not governed by the switches (the rows are the in-app notifications)."""
    from realms.market import REALM

    told = Told()
    users = sorted(set(users))
    if not users:
        return told
    rows = await conn.fetch(_SWITCHES, users, kind)
    groups: dict[tuple[bool, bool, bool], list[int]] = defaultdict(list)
    for r in rows:
        by_sms = sms and bool(r["sms"])
        groups[(email and r["email"], push and r["push"], by_sms)].append(r["user_id"])
        if by_sms:
            told.sms.append(r["user_id"])
    for (by_email, by_push, by_sms), ids in sorted(groups.items()):
        told.created += await notify(
            conn,
            realm=REALM,
            event_key=event_key,
            recipients=ids,
            notification_type=kind,
            title=title[:255],
            message=message,
            action_url=action_url,
            send_in_app=in_app,
            send_push=by_push,
            send_email=by_email,
            send_sms=by_sms,
            priority=priority,
        )
    return told


STATUS_TITLES = {
    "confirmed": "Your order is confirmed",
    "processing": "Your order is being prepared",
    "ready_for_pickup": "Your order is ready for pickup",
    "picked_up": "A courier picked up your order",
    "in_transit": "Your order is on its way",
    "delivered": "Your order was delivered",
    "cancelled": "Your order was cancelled",
    "refunded": "Your order was refunded",
}


async def order_status(
    conn: asyncpg.Connection, order_id: int, order_number: str, buyer: int, status: str
) -> Told:
    """The buyer hears every status change of their order."""
    return await tell(
        conn,
        event_key=f"order:{order_id}:{status}",
        users=[buyer],
        kind="order",
        title=STATUS_TITLES.get(status, f"Order {status}"),
        message=f"Order {order_number} is now {status.replace('_', ' ')}.",
        action_url=f"/orders/{order_id}",
        priority="high" if status in ("delivered", "cancelled") else "medium",
    )


async def payout_status(conn: asyncpg.Connection, payout_id: int, seller: int, status: str) -> Told:
    """The seller hears every status change of their payout."""
    return await tell(
        conn,
        event_key=f"payout:{payout_id}:{status}",
        users=[seller],
        kind="payment",
        title=f"Payout {status}",
        message=f"Your payout {payout_id} is {status}.",
        action_url=f"/payouts/{payout_id}",
    )
