"""What the creator realm notifies its users of (issue 16, item 7), through the core's
kernel.notify: the in-app row (gateway.notifications, realm creator, the storage of record
served by /v1/creator/notifications) and push / e-mail jobs per the user's preferences. Each
runs in the caller's transaction and is idempotent by its event key.

* new_message: only to a party with no socket in the conversation on a live gateway, and
  collapsed per unread streak (one event key per recipient and read position), like the
  core's conversation notifications. A premium message's content is never in it.
* premium_message_purchased, tip_received: to the creator. An anonymous tip names nobody.
"""

from __future__ import annotations

import uuid

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
