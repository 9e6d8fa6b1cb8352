"""Paying analysts their share (issue 21 item 3): payment_transactions.payout_amount of every
captured payment, 80 % by default, through the payment gateway's payouts API, in the shape of
Razorpay's (RazorpayX) `POST /v1/payouts`.

The flow, in three steps that each commit on their own (schema readings: sql/0024):

1. **Queue** (`queue_payouts`, the daily job `queue_payouts`, or an admin's "pay out now"):
   for each analyst, the captured shares not yet in a payout (`payout_status 'pending'`) are
   locked and gathered into one payout row (`transaction_type 'payout'`, amount = their sum,
   `payout_status 'created'`); each share then names it and is `in_payout`. No network.
2. **Send** (`send_payout` / `send_created`, the hourly job `send_payouts`): each `created`
   payout is sent, locked, with its own id as `reference_id` and as the
   `X-Payout-Idempotency` key. The API's answer (its payout id and status) is recorded. If
   the answer is lost, or its transaction rolls back, the next run sends the same key again and
   the API returns the payout it already made: a payout is created at most once.
3. **Settle** (`apply_status`, from the answer or the signed webhook `payout.*`): `processed`
   marks the payout and its shares paid (`paid_out_at`) and tells the analyst
   (`payout_processed`); `failed`, `rejected`, `cancelled` or `reversed` releases the shares
   (`pending` again, for the next batch) and tells the analyst (`payout_failed`).

`payout_amount + platform_commission = amount` holds on every row: shares were split at
capture; a payout row has payout_amount = amount and no commission.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any, Literal

import aiohttp
import asyncpg
import msgspec
from msgspec import Struct

from kernel.config import Settings
from kernel.errors import Unavailable
from kernel.logs import EventLog
from kernel.notify import notify

log = EventLog("analyst.payouts")

MINIMUM_PAYOUT = 100  # paise: the payouts API's smallest amount (1 rupee)
SEND_BATCH = 100
TIMEOUT_S = 30.0

# The payout lifecycle at the gateway, and where a status stands in it: an event that would
# move a payout back (a late 'processing' after 'processed') is stale and ignored.
_RANK = {
    "created": 0,  # ours: queued here, not yet accepted by the API
    "queued": 1,
    "pending": 2,
    "processing": 3,
    "processed": 4,
    "failed": 4,
    "rejected": 4,
    "cancelled": 4,
    "reversed": 5,
}
FAILED = frozenset({"failed", "rejected", "cancelled", "reversed"})
GATEWAY_STATUSES = frozenset(_RANK) - {"created"}


class PayoutsConfig(Struct, frozen=True):
    base_url: str
    key_id: str
    key_secret: str
    account_number: str
    mode: str


def payouts_config(settings: Settings) -> PayoutsConfig:
    """The payouts API's settings, or Unavailable (503) naming what is missing."""
    missing = [
        name
        for name, value in (
            ("RAZORPAY_KEY_ID", settings.razorpay_key_id),
            ("RAZORPAY_KEY_SECRET", settings.razorpay_key_secret),
            ("RAZORPAY_PAYOUT_ACCOUNT", settings.razorpay_payout_account),
        )
        if not value
    ]
    if missing:
        raise Unavailable(f"payouts are not configured: {', '.join(missing)} not set")
    assert settings.razorpay_key_id and settings.razorpay_key_secret
    assert settings.razorpay_payout_account
    return PayoutsConfig(
        base_url=settings.razorpay_payouts_base_url.rstrip("/"),
        key_id=settings.razorpay_key_id,
        key_secret=settings.razorpay_key_secret,
        account_number=settings.razorpay_payout_account,
        mode=settings.razorpay_payout_mode,
    )


# --- the API ---------------------------------------------------------------------------------


class PayoutEntity(Struct):
    """A payout as the API returns it (the fields read here)."""

    id: str
    status: str
    amount: int | None = None
    currency: str | None = None
    reference_id: str | None = None
    fund_account_id: str | None = None
    failure_reason: str | None = None
    utr: str | None = None


class PayoutRefused(Exception):
    """The API refused to create the payout (a 4xx other than authentication): nothing was
    paid, and sending the same request again would be refused again."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(f"{status}: {description}")
        self.status = status
        self.description = description


class PayoutNotSent(Exception):
    """The API could not be reached or did not answer usably (network, 5xx, credentials):
    the payout may or may not exist there; send it again later with the same key."""


class PayoutsClient:
    """`POST {base}/v1/payouts` with HTTP basic auth (key id : key secret) and the
    X-Payout-Idempotency header, as Razorpay's payouts API takes them."""

    def __init__(self, config: PayoutsConfig, session: aiohttp.ClientSession | None = None) -> None:
        self.config = config
        credentials = f"{config.key_id}:{config.key_secret}".encode()
        self._basic = "Basic " + base64.b64encode(credentials).decode()
        self._session = session
        self._own = session is None

    async def __aenter__(self) -> PayoutsClient:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._own and self._session is not None:
            await self._session.close()
            self._session = None

    async def create_payout(
        self,
        *,
        reference: str,
        fund_account_id: str,
        amount: int,
        currency: str,
        narration: str,
        notes: dict[str, str],
    ) -> PayoutEntity:
        if self._session is None:
            raise RuntimeError("use PayoutsClient as `async with`")
        body = {
            "account_number": self.config.account_number,
            "fund_account_id": fund_account_id,
            "amount": amount,
            "currency": currency,
            "mode": self.config.mode,
            "purpose": "payout",
            "queue_if_low_balance": True,
            "reference_id": reference,
            "narration": narration,
            "notes": notes,
        }
        try:
            async with self._session.post(
                f"{self.config.base_url}/v1/payouts",
                json=body,
                headers={"Authorization": self._basic, "X-Payout-Idempotency": reference},
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PayoutNotSent(f"payouts API unreachable: {exc!r}") from exc
        if status in (200, 201):
            try:
                return msgspec.json.decode(raw, type=PayoutEntity)
            except msgspec.DecodeError as exc:
                raise PayoutNotSent(f"payouts API answered {status} with {raw[:200]!r}") from exc
        description = _error_description(raw)
        if status in (400, 404, 409, 422):
            raise PayoutRefused(status, description)
        raise PayoutNotSent(f"payouts API answered {status}: {description}")


def _error_description(raw: bytes) -> str:
    try:
        error = msgspec.json.decode(raw).get("error", {})
        return str(error.get("description") or error.get("code") or raw[:200].decode())
    except (msgspec.DecodeError, AttributeError, UnicodeDecodeError):
        return repr(raw[:200])


# --- 1. queue --------------------------------------------------------------------------------

# One statement: lock the shares due (skipping rows another transaction holds, e.g. a refund
# or a concurrent run), one payout per analyst of at least MINIMUM_PAYOUT, and each share
# pointed at it. $1: one analyst or NULL for all; $2: pay inactive (suspended, banned,
# deleted) accounts too (an admin's decision) or not (the batch).
_QUEUE = f"""
WITH due AS (
    SELECT t.id, t.analyst_id, t.payout_amount, t.currency
      FROM analyst.payment_transactions t
     WHERE t.payout_status = 'pending' AND t.status = 'captured' AND t.payout_amount > 0
       AND t.transaction_type IN ('subscription_payment', 'renewal')
       AND ($1::uuid IS NULL OR t.analyst_id = $1)
       AND EXISTS (SELECT 1 FROM analyst.analyst_profiles p
                     JOIN analyst.users u ON u.id = p.user_id
                    WHERE p.user_id = t.analyst_id AND p.razorpay_fund_account_id IS NOT NULL
                      AND ($2 OR (u.is_active AND u.deleted_at IS NULL)))
     ORDER BY t.id
       FOR UPDATE OF t SKIP LOCKED
),
batch AS (
    SELECT analyst_id, currency, sum(payout_amount)::integer AS amount, count(*) AS shares
      FROM due GROUP BY analyst_id, currency
    HAVING sum(payout_amount) >= {MINIMUM_PAYOUT}
),
payout AS (
    INSERT INTO analyst.payment_transactions
           (analyst_id, transaction_type, amount, currency, status, payout_amount,
            platform_commission, payout_status, metadata)
    SELECT analyst_id, 'payout', amount, currency, 'pending', amount, 0, 'created',
           jsonb_build_object('shares', shares)
      FROM batch
    RETURNING id, analyst_id, currency
),
linked AS (
    UPDATE analyst.payment_transactions t
       SET payout_status = 'in_payout', payout_transaction_id = p.id
      FROM due d JOIN payout p ON p.analyst_id = d.analyst_id AND p.currency = d.currency
     WHERE t.id = d.id
    RETURNING t.id
)
SELECT p.id, (SELECT count(*) FROM linked) AS shares FROM payout p ORDER BY p.id
"""


async def queue_payouts(
    conn: asyncpg.Connection, *, analyst_id: uuid.UUID | None = None, inactive: bool = False
) -> list[uuid.UUID]:
    """Gather each analyst's captured shares not yet paid out into one payout (status
    'created') and return the new payouts' ids. Analysts without a fund account, with less
    than MINIMUM_PAYOUT due, or (unless `inactive`) whose account is suspended or deleted
    are left for later. A share already in a payout is never taken again."""
    rows = await conn.fetch(_QUEUE, analyst_id, inactive)
    return [r["id"] for r in rows]


# --- 2. send ---------------------------------------------------------------------------------

_PAYOUT_COLUMNS = (
    "t.id, t.analyst_id, t.amount, t.currency, t.status, t.payout_status,"
    " t.razorpay_payout_id, t.metadata"
)

SendOutcome = Literal["sent", "refused", "not_sent", "skipped"]


async def send_payout(
    conn: asyncpg.Connection, client: PayoutsClient, payout_id: uuid.UUID, now: datetime
) -> SendOutcome:
    """Send one `created` payout (locked for the call) and record the answer. 'skipped' when
    it is no longer `created` (sent meanwhile, or settled by a webhook)."""
    async with conn.transaction():
        payout = await conn.fetchrow(
            f"SELECT {_PAYOUT_COLUMNS}, p.razorpay_fund_account_id, p.display_name"
            " FROM analyst.payment_transactions t"
            " JOIN analyst.analyst_profiles p ON p.user_id = t.analyst_id"
            " WHERE t.id = $1 AND t.transaction_type = 'payout' FOR UPDATE OF t",
            payout_id,
        )
        if payout is None or payout["payout_status"] != "created":
            return "skipped"
        try:
            entity = await client.create_payout(
                reference=str(payout["id"]),
                fund_account_id=payout["razorpay_fund_account_id"],
                amount=payout["amount"],
                currency=payout["currency"],
                narration="Switchboard analyst payout",
                notes={"payout_id": str(payout["id"]), "analyst_id": str(payout["analyst_id"])},
            )
        except PayoutRefused as refused:
            await _settle(conn, payout, "failed", f"refused: {refused.description}", None, now)
            log.warning("payout_refused", payout=str(payout_id), reason=refused.description)
            return "refused"
        except PayoutNotSent as exc:
            log.warning("payout_not_sent", payout=str(payout_id), error=str(exc))
            return "not_sent"
        await conn.execute(
            "UPDATE analyst.payment_transactions SET razorpay_payout_id = $2"
            " WHERE id = $1 OR payout_transaction_id = $1",
            payout["id"],
            entity.id,
        )
        status = entity.status if entity.status in GATEWAY_STATUSES else "processing"
        await _settle(conn, payout, status, entity.failure_reason, entity.id, now)
        log.info("payout_sent", payout=str(payout_id), razorpay_payout=entity.id, status=status)
        return "sent"


async def send_created(conn: asyncpg.Connection, client: PayoutsClient, now: datetime) -> int:
    """Send every `created` payout, oldest first; returns how many the API accepted or
    refused. Raises PayoutNotSent when none could be sent and at least one was tried (the
    API is down: the run should fail and be retried)."""
    handled = 0
    tried = 0
    done: set[uuid.UUID] = set()
    while True:
        ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM analyst.payment_transactions"
                " WHERE transaction_type = 'payout' AND payout_status = 'created'"
                " AND NOT (id = ANY($2::uuid[]))"
                " ORDER BY created_at, id LIMIT $1",
                SEND_BATCH,
                list(done),
            )
        ]
        if not ids:
            break
        for payout_id in ids:
            done.add(payout_id)
            outcome = await send_payout(conn, client, payout_id, now)
            tried += outcome != "skipped"
            handled += outcome in ("sent", "refused")
    if tried and not handled:
        raise PayoutNotSent(f"none of {tried} payouts could be sent; see the log")
    return handled


# --- 3. settle -------------------------------------------------------------------------------


def moves_forward(current: str, new: str) -> bool:
    """Whether a payout in `current` may take status `new`: only forward in the lifecycle;
    a failed payout is final; a processed one can only be reversed."""
    if new not in _RANK or current == new or current in FAILED:
        return False
    if current == "processed":
        return new == "reversed"
    return _RANK[new] > _RANK[current]


async def apply_status(
    conn: asyncpg.Connection,
    payout_id: uuid.UUID,
    status: str,
    *,
    failure_reason: str | None = None,
    razorpay_payout_id: str | None = None,
    now: datetime,
) -> bool:
    """Move the payout (locked here) to `status` if that is forward; False when it is not."""
    payout = await conn.fetchrow(
        f"SELECT {_PAYOUT_COLUMNS} FROM analyst.payment_transactions t"
        " WHERE t.id = $1 AND t.transaction_type = 'payout' FOR UPDATE",
        payout_id,
    )
    if payout is None or not moves_forward(payout["payout_status"], status):
        return False
    await _settle(conn, payout, status, failure_reason, razorpay_payout_id, now)
    return True


async def _settle(
    conn: asyncpg.Connection,
    payout: asyncpg.Record,
    status: str,
    failure_reason: str | None,
    razorpay_payout_id: str | None,
    now: datetime,
) -> None:
    """Write `status` on the payout and its effects on its shares, and tell the analyst of
    an outcome. The payout row is locked by the caller."""
    if not moves_forward(payout["payout_status"], status):
        return
    paid = status == "processed"
    failed = status in FAILED
    await conn.execute(
        "UPDATE analyst.payment_transactions SET payout_status = $2,"
        " razorpay_payout_id = coalesce($3, razorpay_payout_id),"
        " status = CASE WHEN $4 THEN 'captured' WHEN $5 THEN 'failed' ELSE status END,"
        " paid_out_at = CASE WHEN $4 THEN $6 WHEN $5 THEN NULL ELSE paid_out_at END,"
        " failure_reason = CASE WHEN $5 THEN $7 ELSE failure_reason END"
        " WHERE id = $1",
        payout["id"],
        status,
        razorpay_payout_id,
        paid,
        failed,
        now,
        failure_reason,
    )
    if paid:
        await conn.execute(
            "UPDATE analyst.payment_transactions SET payout_status = 'paid', paid_out_at = $2"
            " WHERE payout_transaction_id = $1",
            payout["id"],
            now,
        )
    elif failed:
        # Released: pending again, so the next batch pays them (the money did not reach the
        # analyst, or came back).
        await conn.execute(
            "UPDATE analyst.payment_transactions SET payout_status = 'pending',"
            " payout_transaction_id = NULL, razorpay_payout_id = NULL, paid_out_at = NULL"
            " WHERE payout_transaction_id = $1",
            payout["id"],
        )
    if paid or failed:
        await _tell_analyst(conn, payout, status, failure_reason)


async def _tell_analyst(
    conn: asyncpg.Connection, payout: asyncpg.Record, status: str, failure_reason: str | None
) -> None:
    rupees = f"\u20b9{payout['amount'] / 100:,.2f}"
    if status == "processed":
        kind, title = "payout_processed", f"Payout of {rupees} sent"
        message = "Your earnings are on their way to your bank account."
    else:
        kind, title = "payout_failed", f"Payout of {rupees} {status}"
        message = (
            f"{failure_reason or 'The transfer did not complete.'} The amount will be paid"
            " out again in the next payout; check your payout account."
        )
    await notify(
        conn,
        event_key=f"payout:{payout['id']}:{status}",
        recipients=[payout["analyst_id"]],
        notification_type=kind,
        title=title[:255],
        message=message,
        action_url=f"/payouts/{payout['id']}",
        related_entity_type="payout",
        related_entity_id=payout["id"],
        priority="high",
        bypass_preferences=True,
    )


def metadata_with_event(metadata: Any, key: str) -> bool:
    """Whether webhook event `key` was already applied to a payout with `metadata`."""
    return isinstance(metadata, dict) and key in metadata.get("webhook_events", [])
