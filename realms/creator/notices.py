"""What the creator realm notifies its users of (issue 16, item 7), through the core's
kernel.notify: the in-app row (gateway.notifications, realm creator, the storage of record
served by /v1/creator/notifications) and push / e-mail jobs per the user's preferences. Each
runs in the caller's transaction and is idempotent by its event key.

* new_message: only to a party with no socket in the conversation on a live gateway, and
  collapsed per unread streak (one event key per recipient and read position), like the
  core's conversation notifications. A premium message's content is never in it.
* stream_starting: to a creator's live audience (live_audience), when a stream goes live
  (once per stream) and shortly before a scheduled start (once per start time).
* premium_message_purchased, tip_received: to the creator. An anonymous tip names nobody.
* content_approved, content_removed: to the content's creator, once per moderation action.
* new_subscriber: to the creator, once per subscription (when its first payment completes).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from kernel.notify import notify
from realms.creator import REALM
from realms.creator.wire import dm_channel

PREVIEW_CHARS = 140

# The recipient's read position, and whether a socket of theirs is in the conversation on a
# gateway that is alive (the core's presence ledger, gateway.live_members).
_RECIPIENT_STATE = """
SELECT CASE WHEN c.fan_id = $2 THEN c.fan_last_read_seq ELSE c.creator_last_read_seq END
           AS last_read_seq,
       EXISTS (SELECT 1 FROM gateway.live_members lm JOIN gateway.nodes nd USING (node_id)
                WHERE lm.channel = $3 AND lm.user_id = $2::text
                  AND nd.heartbeat_at > now() - interval '30 seconds') AS present
  FROM creator.conversations c WHERE c.id = $1 AND $2 IN (c.fan_id, c.creator_id)
"""


def _money(amount: int, currency: str) -> str:
    return f"{amount / 100:.2f} {currency}"


async def new_message(
    conn: asyncpg.Connection,
    *,
    conversation_id: uuid.UUID,
    recipient: uuid.UUID,
    sender_name: str | None,
    text: str | None,
    premium: bool,
) -> int:
    """Tell `recipient` of a new message unless they are in the conversation now; later
    messages of the same unread streak collapse into the first notification."""
    channel = dm_channel(conversation_id)
    state = await conn.fetchrow(_RECIPIENT_STATE, conversation_id, recipient, channel)
    if state is None or state["present"]:
        return 0
    who = f"@{sender_name}" if sender_name else "Someone"
    if premium:
        body = "A premium message is waiting for you"
    else:
        body = (text or "sent you an attachment")[:PREVIEW_CHARS]
    return await notify(
        conn,
        realm=REALM,
        event_key=f"conversation:{conversation_id}:after:{state['last_read_seq']}",
        recipients=[recipient],
        notification_type="new_message",
        title=f"New message from {who}"[:255],
        message=body,
        action_url=f"/v1/creator/conversations/{conversation_id}",
        related_entity_type="conversation",
        related_entity_id=conversation_id,
        notification_group=f"conversation:{conversation_id}",
    )


# Who hears of a creator's streams: followers who asked for it (notify_on_live) and fans
# whose subscription gives access now (has_active_subscription's rule) unless they follow
# with live notices off. notify() drops inactive accounts.
_LIVE_AUDIENCE = """
SELECT f.follower_id AS user_id FROM creator.follows f
 WHERE f.following_id = $1 AND f.unfollowed_at IS NULL AND f.notify_on_live
UNION
SELECT s.subscriber_id FROM creator.subscriptions s
 WHERE s.creator_id = $1 AND s.status IN ('active', 'cancelled')
   AND (s.expires_at IS NULL OR s.expires_at > now())
   AND NOT EXISTS (SELECT 1 FROM creator.follows f
                    WHERE f.follower_id = s.subscriber_id AND f.following_id = $1
                      AND f.unfollowed_at IS NULL AND NOT f.notify_on_live)
"""


async def live_audience(conn: asyncpg.Connection, creator_id: uuid.UUID) -> list[uuid.UUID]:
    return [r["user_id"] for r in await conn.fetch(_LIVE_AUDIENCE, creator_id)]


async def stream_starting(
    conn: asyncpg.Connection,
    *,
    stream_id: uuid.UUID,
    creator_name: str,
    title: str,
    recipients: list[uuid.UUID],
) -> int:
    """The stream went live: its audience is told once (event key `stream:<id>:live`)."""
    return await notify(
        conn,
        realm=REALM,
        event_key=f"stream:{stream_id}:live",
        recipients=recipients,
        notification_type="stream_starting",
        title=f"@{creator_name} is live: {title}"[:255],
        message="Join the stream now",
        action_url=f"/v1/creator/streams/{stream_id}",
        related_entity_type="live_stream",
        related_entity_id=stream_id,
        priority="high",
    )


async def stream_starting_soon(
    conn: asyncpg.Connection,
    *,
    stream_id: uuid.UUID,
    scheduled_at: datetime,
    minutes: int,
    creator_name: str,
    title: str,
    recipients: list[uuid.UUID],
) -> int:
    """A scheduled stream starts within minutes: told once per start time."""
    return await notify(
        conn,
        realm=REALM,
        event_key=f"stream:{stream_id}:soon:{int(scheduled_at.timestamp())}",
        recipients=recipients,
        notification_type="stream_starting",
        title=f"@{creator_name} goes live in {minutes} minutes: {title}"[:255],
        message="The stream starts soon",
        action_url=f"/v1/creator/streams/{stream_id}",
        related_entity_type="live_stream",
        related_entity_id=stream_id,
    )


async def premium_message_purchased(
    conn: asyncpg.Connection,
    *,
    creator_id: uuid.UUID,
    transaction_id: uuid.UUID,
    message_id: uuid.UUID,
    buyer_name: str | None,
    net_amount: int,
    currency: str,
) -> int:
    who = f"@{buyer_name}" if buyer_name else "A fan"
    return await notify(
        conn,
        realm=REALM,
        event_key=f"purchase:{transaction_id}",
        recipients=[creator_id],
        notification_type="premium_message_purchased",
        title=f"{who} bought your premium message"[:255],
        message=f"You earned {_money(net_amount, currency)}",
        related_entity_type="message",
        related_entity_id=message_id,
    )


async def tip_received(
    conn: asyncpg.Connection,
    *,
    creator_id: uuid.UUID,
    tip_id: uuid.UUID,
    amount: int,
    currency: str,
    tipper_name: str | None,
    note: str | None,
) -> int:
    """`tipper_name` None for an anonymous tip: the notification then names nobody (its
    event key and entity are the tip's id, which the creator may read anyway)."""
    who = f"@{tipper_name}" if tipper_name else "An anonymous fan"
    return await notify(
        conn,
        realm=REALM,
        event_key=f"tip:{tip_id}",
        recipients=[creator_id],
        notification_type="tip_received",
        title=f"{who} tipped you {_money(amount, currency)}"[:255],
        message=note,
        related_entity_type="tip",
        related_entity_id=tip_id,
        priority="high",
    )


async def new_subscriber(
    conn: asyncpg.Connection,
    *,
    creator_id: uuid.UUID,
    subscription_id: uuid.UUID,
    subscriber_name: str | None,
    plan: str,
) -> int:
    """The creator's `new_subscriber`, idempotent by the subscription's id."""
    who = f"@{subscriber_name}" if subscriber_name else "A fan"
    return await notify(
        conn,
        realm=REALM,
        event_key=f"subscription:{subscription_id}",
        recipients=[creator_id],
        notification_type="new_subscriber",
        title=f"{who} subscribed to you"[:255],
        message=f"New {plan} subscription",
        related_entity_type="subscription",
        related_entity_id=subscription_id,
    )


async def content_moderated(
    conn: asyncpg.Connection,
    *,
    action_id: uuid.UUID,
    creator_id: uuid.UUID,
    content_id: uuid.UUID,
    content_title: str | None,
    approved: bool,
    reason: str | None,
) -> int:
    """content_approved or content_removed to the content's creator, once per moderation
    action (its event key)."""
    what = f'"{content_title}"' if content_title else "Your post"
    return await notify(
        conn,
        realm=REALM,
        event_key=f"moderation:{action_id}",
        recipients=[creator_id],
        notification_type="content_approved" if approved else "content_removed",
        title=f"{what} was {'approved' if approved else 'removed'}"[:255],
        message=reason,
        related_entity_type="content",
        related_entity_id=content_id,
        priority="medium" if approved else "high",
    )
