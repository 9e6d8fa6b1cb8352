"""What the market's payment paths share: the audit row every payment outcome writes (entity
`order`; it also keeps the PaymentIntent id and the webhook event ids acted on), the notice
that an order's payment arrived, and the metadata tag of the realm's intents."""

from __future__ import annotations

from typing import Any

import asyncpg

from realms.market import events

# Metadata every market intent carries; the webhook acts only on intents tagged with it.
REALM_TAG = "market"


async def audit(
    conn: asyncpg.Connection,
    order_id: int,
    action: str,
    new: dict[str, Any],
    *,
    user: int | None = None,
    old: dict[str, Any] | None = None,
) -> None:
    """One market.audit_logs row about the order, in the caller's transaction."""
    await conn.execute(
        "INSERT INTO market.audit_logs (user_id, action, entity_type, entity_id, old_values,"
        " new_values) VALUES ($1, $2, 'order', $3, $4, $5)",
        user,
        action,
        order_id,
        old,
        new,
    )


async def tell_paid(conn: asyncpg.Connection, order_id: int, how: str) -> None:
    """Tell the buyer and the seller that the order's payment arrived."""
    order = await conn.fetchrow(
        "SELECT buyer_id, seller_id, order_number FROM market.orders WHERE id = $1", order_id
    )
    await events.tell(
        conn,
        event_key=f"order:{order_id}:paid",
        users=[order["buyer_id"], order["seller_id"]],
        kind="payment",
        title="Payment received",
        message=f"The payment of order {order['order_number']} ({how}) has arrived.",
        action_url=f"/orders/{order_id}",
    )


async def seen_event(conn: asyncpg.Connection, order_id: int, event_id: str) -> bool:
    """Whether the event was acted on for the order (its id is in an audit row)."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM market.audit_logs WHERE entity_type = 'order'"
            " AND entity_id = $1 AND new_values ->> 'event_id' = $2)",
            order_id,
            event_id,
        )
    )
