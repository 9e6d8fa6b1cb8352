"""Row builders for the creator schema tests: each inserts one valid row into creator.<table>
and returns its id. Keyword arguments are written to the columns of the same name, so any
column can be set; defaults are the smallest valid row."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

PASSWORD_HASH = "$2b$12$" + "a" * 53
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def insert(db: asyncpg.Connection, table: str, **fields: Any) -> uuid.UUID:
    """INSERT one row into creator.<table> with exactly these columns; returns its id."""
    for name in (table, *fields):
        if not _IDENTIFIER.match(name):
            raise ValueError(f"not a plain identifier: {name!r}")
    columns = ", ".join(fields)
    params = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    row_id = await db.fetchval(
        f"INSERT INTO creator.{table} ({columns}) VALUES ({params}) RETURNING id",
        *fields.values(),
    )
    assert isinstance(row_id, uuid.UUID)
    return row_id


async def rejects(
    db: asyncpg.Connection,
    exc: type[asyncpg.PostgresError],
    constraint: str | None,
    table: str,
    **fields: Any,
) -> None:
    """Inserting the row fails with `exc`, naming `constraint` when one is given."""
    with pytest.raises(exc) as info:
        await insert(db, table, **fields)
    if constraint is not None:
        assert info.value.constraint_name == constraint


async def fails(
    db: asyncpg.Connection,
    exc: type[asyncpg.PostgresError],
    constraint: str | None,
    sql: str,
    *args: Any,
) -> None:
    """Executing `sql` fails with `exc`, naming `constraint` when one is given."""
    with pytest.raises(exc) as info:
        await db.execute(sql, *args)
    if constraint is not None:
        assert info.value.constraint_name == constraint


async def db_now(db: asyncpg.Connection, offset: str = "0 seconds") -> datetime:
    """The database's now() shifted by an interval such as '-31 days'."""
    value = await db.fetchval("SELECT now() + $1::text::interval", offset)
    assert isinstance(value, datetime)
    return value


async def column(db: asyncpg.Connection, table: str, name: str, row_id: uuid.UUID) -> Any:
    """One column of one row of creator.<table>."""
    if not (_IDENTIFIER.match(table) and _IDENTIFIER.match(name)):
        raise ValueError("not a plain identifier")
    return await db.fetchval(f"SELECT {name} FROM creator.{table} WHERE id = $1", row_id)


# -- users -------------------------------------------------------------------------------------


async def make_user(db: asyncpg.Connection, account_type: str = "fan", **fields: Any) -> uuid.UUID:
    name = unique("u_")
    values: dict[str, Any] = {
        "username": name,
        "email": f"{name}@example.com",
        "password_hash": PASSWORD_HASH,
        "account_type": account_type,
        **fields,
    }
    return await insert(db, "users", **values)


async def make_creator(db: asyncpg.Connection, **fields: Any) -> uuid.UUID:
    return await make_user(db, "creator", **fields)


# -- content and subscriptions -----------------------------------------------------------------


async def make_content(db: asyncpg.Connection, creator_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    values: dict[str, Any] = {
        "creator_id": creator_id,
        "content_type": "text",
        "body": "hello fans",
        **fields,
    }
    return await insert(db, "content", **values)


async def make_published_content(
    db: asyncpg.Connection, creator_id: uuid.UUID, **fields: Any
) -> uuid.UUID:
    fields.setdefault("status", "published")
    fields.setdefault("published_at", await db_now(db))
    fields.setdefault("moderation_status", "approved")
    return await make_content(db, creator_id, **fields)


async def make_subscription(
    db: asyncpg.Connection,
    subscriber_id: uuid.UUID,
    creator_id: uuid.UUID,
    *,
    status: str = "active",
    **fields: Any,
) -> uuid.UUID:
    """A monthly subscription started now, ending in 30 days, unless told otherwise."""
    now = await db_now(db)
    values: dict[str, Any] = {
        "subscriber_id": subscriber_id,
        "creator_id": creator_id,
        "subscription_type": "monthly",
        "status": status,
        "price": 999,
        "started_at": now,
        "expires_at": now + timedelta(days=30),
        **fields,
    }
    return await insert(db, "subscriptions", **values)


# -- messaging -----------------------------------------------------------------------------------


class Chat:
    """A creator, a fan and their conversation."""

    def __init__(
        self, db: asyncpg.Connection, creator_id: uuid.UUID, fan_id: uuid.UUID, conv_id: uuid.UUID
    ) -> None:
        self.db = db
        self.creator_id = creator_id
        self.fan_id = fan_id
        self.id = conv_id

    @classmethod
    async def open(cls, db: asyncpg.Connection, **fields: Any) -> Chat:
        creator_id = await make_creator(db)
        fan_id = await make_user(db)
        conv_id = await insert(db, "conversations", creator_id=creator_id, fan_id=fan_id, **fields)
        return cls(db, creator_id, fan_id, conv_id)

    async def send(
        self, sender_id: uuid.UUID | None = None, body: str | None = "hi", **fields: Any
    ) -> uuid.UUID:
        values: dict[str, Any] = {
            "conversation_id": self.id,
            "sender_id": sender_id or self.fan_id,
            "body": body,
            **fields,
        }
        return await insert(self.db, "messages", **values)

    async def send_many(self, sender_id: uuid.UUID, n: int) -> None:
        """n messages from `sender_id` in one INSERT statement."""
        await self.db.execute(
            "INSERT INTO creator.messages (conversation_id, sender_id, body)"
            " SELECT $1, $2, 'msg ' || g FROM generate_series(1, $3) g",
            self.id,
            sender_id,
            n,
        )

    async def state(self) -> asyncpg.Record:
        row = await self.db.fetchrow("SELECT * FROM creator.conversations WHERE id = $1", self.id)
        assert row is not None
        return row

    async def unread(self) -> tuple[int, int]:
        """(fan_unread_count, creator_unread_count)."""
        row = await self.state()
        return row["fan_unread_count"], row["creator_unread_count"]

    async def read(self, user_id: uuid.UUID, seq: int | None = None) -> int | None:
        result: int | None = await self.db.fetchval(
            "SELECT creator.mark_conversation_read($1, $2, $3)", self.id, user_id, seq
        )
        return result


# -- live streams and payments -----------------------------------------------------------------


async def make_stream(db: asyncpg.Connection, creator_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    return await insert(db, "live_streams", creator_id=creator_id, title="Live now", **fields)


async def make_transaction(
    db: asyncpg.Connection,
    user_id: uuid.UUID,
    creator_id: uuid.UUID,
    transaction_type: str = "tip",
    gross_amount: int = 1000,
    platform_fee: int = 200,
    **fields: Any,
) -> uuid.UUID:
    """A transaction with net = gross - fee and a fresh idempotency key."""
    values: dict[str, Any] = {
        "user_id": user_id,
        "creator_id": creator_id,
        "transaction_type": transaction_type,
        "gross_amount": gross_amount,
        "platform_fee": platform_fee,
        "net_amount": gross_amount - platform_fee,
        "idempotency_key": unique("key-"),
        **fields,
    }
    return await insert(db, "transactions", **values)


async def completed(db: asyncpg.Connection, transaction_id: uuid.UUID) -> uuid.UUID:
    """Moves a pending transaction to completed now; returns its id."""
    await db.execute(
        "UPDATE creator.transactions SET status = 'completed', completed_at = now() WHERE id = $1",
        transaction_id,
    )
    return transaction_id


async def make_tip(
    db: asyncpg.Connection,
    tipper_id: uuid.UUID,
    creator_id: uuid.UUID,
    amount: int = 500,
    **fields: Any,
) -> uuid.UUID:
    """A tip with its own tip transaction (pending)."""
    transaction_id = await make_transaction(
        db, tipper_id, creator_id, "tip", gross_amount=amount, platform_fee=100
    )
    values: dict[str, Any] = {
        "tipper_id": tipper_id,
        "creator_id": creator_id,
        "transaction_id": transaction_id,
        "amount": amount,
        **fields,
    }
    return await insert(db, "tips", **values)


# -- moderation ----------------------------------------------------------------------------------


async def make_report(
    db: asyncpg.Connection, reporter_id: uuid.UUID | None, **fields: Any
) -> uuid.UUID:
    values: dict[str, Any] = {"reporter_id": reporter_id, "report_type": "spam", **fields}
    return await insert(db, "content_reports", **values)


async def make_violation(db: asyncpg.Connection, user_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    values: dict[str, Any] = {
        "user_id": user_id,
        "violation_type": "spam",
        "severity": "low",
        "enforcement_action": "warning",
        **fields,
    }
    return await insert(db, "user_violations", **values)
