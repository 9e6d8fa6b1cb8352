"""Razorpay without a network: local order and refund ids, the two HMAC-SHA256 signatures
Razorpay uses (checkout and webhooks), and the order rows (payment_transactions) this API opens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import uuid
from typing import Literal

import asyncpg
from msgspec import Struct

from kernel.config import Settings
from kernel.errors import Unavailable

_ID_ALPHABET = string.ascii_letters + string.digits


class Order(Struct):
    """An order the client pays with Razorpay Checkout (amount in paise)."""

    payment_id: uuid.UUID
    razorpay_order_id: str
    amount: int
    currency: str


def _local_id(prefix: str) -> str:
    # Razorpay ids are a prefix and 14 base-62 characters.
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(14))


def new_order_id() -> str:
    return _local_id("order_")


def new_refund_id() -> str:
    return _local_id("rfnd_")


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def payment_signature(key_secret: str, order_id: str, payment_id: str) -> str:
    """What Checkout hands the client after a payment: HMAC(key secret, "order|payment")."""
    return _hmac_hex(key_secret, f"{order_id}|{payment_id}".encode())


def webhook_signature(webhook_secret: str, body: bytes) -> str:
    """The X-Razorpay-Signature of a webhook: HMAC(webhook secret, raw body)."""
    return _hmac_hex(webhook_secret, body)


def signature_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode())


def key_secret(settings: Settings) -> str:
    """RAZORPAY_KEY_SECRET, or Unavailable (503) when payments are not configured."""
    if not settings.razorpay_key_secret:
        raise Unavailable("payments are not configured: RAZORPAY_KEY_SECRET is not set")
    return settings.razorpay_key_secret


def webhook_secret(settings: Settings) -> str:
    """RAZORPAY_WEBHOOK_SECRET, or Unavailable (503) when webhooks are not configured."""
    if not settings.razorpay_webhook_secret:
        raise Unavailable("payment webhooks are not configured: RAZORPAY_WEBHOOK_SECRET is not set")
    return settings.razorpay_webhook_secret


async def create_order(
    conn: asyncpg.Connection,
    subscription_id: uuid.UUID,
    transaction_type: Literal["subscription_payment", "renewal"],
    amount: int,
) -> Order:
    """Open a pending order for `amount` paise on `subscription_id` (its payer, analyst and
    currency are copied). Run it in the transaction that decided the amount."""
    row = await conn.fetchrow(
        "INSERT INTO analyst.payment_transactions (user_id, analyst_id, subscription_id,"
        " razorpay_order_id, transaction_type, amount, currency, status)"
        " SELECT user_id, analyst_id, id, $2, $3, $4, currency, 'pending'"
        " FROM analyst.subscriptions WHERE id = $1"
        " RETURNING id, razorpay_order_id, amount, currency",
        subscription_id,
        new_order_id(),
        transaction_type,
        amount,
    )
    if row is None:
        raise LookupError(f"no subscription {subscription_id}")
    return Order(row["id"], row["razorpay_order_id"], row["amount"], row["currency"])
