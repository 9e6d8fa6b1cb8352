"""/v1/market/wallet, /v1/market/wallets/{user}/credit, /v1/market/bank-accounts and
/v1/market/payouts: a user's GoGoMoney wallet and its history, credits by accounting, a
seller's bank accounts and payout requests, and accounting's handling of payouts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import asyncpg
from aiohttp import web
from msgspec import Meta, Struct

from kernel.errors import Forbidden, NotFound
from kernel.web.endpoints import endpoint
from kernel.web.keys import POOL
from kernel.web.pagination import Page, PageQuery, decode_cursor, page_of
from realms.market import money, payouts
from realms.market.routes.access import amount, has_role, me, path_id, require_role

routes = web.RouteTableDef()

Amount = Decimal  # range checked by access.amount
Text = Annotated[str, Meta(max_length=2000)]


class WalletOut(Struct):
    id: int
    balance: Decimal
    currency: str
    is_active: bool


class TransactionOut(Struct):
    id: int
    type: str
    amount: Decimal
    balance_before: Decimal
    balance_after: Decimal
    reference_type: str | None
    reference_id: int | None
    description: str | None
    created_at: datetime


class CreditBody(Struct, forbid_unknown_fields=True, kw_only=True):
    amount: Amount
    type: Literal["deposit", "bonus"] = "deposit"
    description: Text | None = None


class BankAccountBody(Struct, forbid_unknown_fields=True, kw_only=True):
    bank_name: Annotated[str, Meta(min_length=1, max_length=200)]
    account_holder_name: Annotated[str, Meta(min_length=1, max_length=200)]
    account_number: Annotated[str, Meta(min_length=4, max_length=100)]
    routing_number: Annotated[str, Meta(max_length=50)] | None = None
    is_default: bool = False


class BankAccountOut(Struct):
    id: int
    bank_name: str
    account_holder_name: str
    account_last4: str
    routing_number: str | None
    is_default: bool
    is_verified: bool


class PayoutBody(Struct, forbid_unknown_fields=True, kw_only=True):
    amount: Amount
    method: Literal["bank_transfer", "gogomoney", "cash"]
    bank_account_id: Annotated[int, Meta(ge=1, le=2**63 - 1)] | None = None
    notes: Text | None = None


class PayoutOut(Struct):
    id: int
    seller_id: int
    amount: Decimal
    currency: str
    method: str
    status: str
    bank_account_id: int | None
    transaction_id: str | None
    notes: str | None
    processed_at: datetime | None
    created_at: datetime


class PayoutsQuery(PageQuery, kw_only=True):
    status: Literal["pending", "processing", "completed", "failed", "cancelled"] | None = None
    seller_id: Annotated[int, Meta(ge=1, le=2**63 - 1)] | None = None


class PayoutStatusBody(Struct, forbid_unknown_fields=True, kw_only=True):
    status: Literal["processing", "completed", "failed", "cancelled"]
    transaction_id: Annotated[str, Meta(max_length=255)] | None = None
    notes: Text | None = None


async def _wallet(pool: asyncpg.Pool, user_id: int) -> WalletOut:
    async with pool.acquire() as conn:
        wallet = await money.wallet_of(conn, user_id)
        row = await conn.fetchrow(
            "SELECT id, balance, currency, is_active FROM market.wallets WHERE id = $1", wallet
        )
    return WalletOut(**dict(row))


@endpoint(
    routes,
    "GET",
    "/v1/wallet",
    summary="The caller's GoGoMoney wallet (opened at balance 0 on first use)",
    tag="market money",
    response=WalletOut,
    errors=(401,),
)
async def my_wallet(request: web.Request) -> WalletOut:
    return await _wallet(request.app[POOL], (await me(request)).id)


@endpoint(
    routes,
    "GET",
    "/v1/wallet/transactions",
    summary="The caller's wallet transactions, newest first",
    tag="market money",
    query=PageQuery,
    response=Page[TransactionOut],
    errors=(400, 401),
)
async def my_transactions(request: web.Request, query: PageQuery) -> Page[TransactionOut]:
    who = await me(request)
    after = decode_cursor(query.cursor, int)
    rows = await request.app[POOL].fetch(
        "SELECT t.id, t.type::text AS type, t.amount, t.balance_before, t.balance_after,"
        " t.reference_type, t.reference_id, t.description, t.created_at"
        "  FROM market.wallet_transactions t JOIN market.wallets w ON w.id = t.wallet_id"
        " WHERE w.user_id = $1 AND ($2::bigint IS NULL OR t.id < $2)"
        " ORDER BY t.id DESC LIMIT $3",
        who.id,
        after[0] if after else None,
        query.limit + 1,
    )
    return page_of([TransactionOut(**dict(r)) for r in rows], query.limit, lambda t: (t.id,))


@endpoint(
    routes,
    "POST",
    "/v1/wallets/{user_id}/credit",
    summary="Credit a user's wallet (a deposit or a bonus); accounting only",
    tag="market money",
    body=CreditBody,
    response=TransactionOut,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
async def credit(request: web.Request, body: CreditBody) -> TransactionOut:
    await require_role(request, "accounting")
    user_id = path_id(request, "user_id")
    amount(body.amount, "amount")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM market.users WHERE id = $1 AND deleted_at IS NULL)",
            user_id,
        ):
            raise NotFound(f"user {user_id} does not exist")
        wallet = await money.wallet_of(conn, user_id)
        row = await money.move(conn, wallet, body.type, body.amount, None, body.description)
    return TransactionOut(
        id=row["id"],
        type=body.type,
        amount=row["amount"],
        balance_before=row["balance_before"],
        balance_after=row["balance_after"],
        reference_type=None,
        reference_id=None,
        description=row["description"],
        created_at=row["created_at"],
    )


_BANK = (
    "SELECT id, bank_name, account_holder_name, right(account_number, 4) AS account_last4,"
    " routing_number, is_default, is_verified FROM market.bank_accounts"
)


@endpoint(
    routes,
    "GET",
    "/v1/bank-accounts",
    summary="The caller's bank accounts (numbers shown by their last four characters)",
    tag="market money",
    response=list[BankAccountOut],
    errors=(401,),
)
async def my_bank_accounts(request: web.Request) -> list[BankAccountOut]:
    who = await me(request)
    rows = await request.app[POOL].fetch(
        _BANK + " WHERE user_id = $1 AND deleted_at IS NULL ORDER BY id", who.id
    )
    return [BankAccountOut(**dict(r)) for r in rows]


@endpoint(
    routes,
    "POST",
    "/v1/bank-accounts",
    summary="Add a bank account for payouts (sellers); verification is accounting's",
    tag="market money",
    body=BankAccountBody,
    response=BankAccountOut,
    status=201,
    errors=(400, 401, 403, 409),
)
async def add_bank_account(request: web.Request, body: BankAccountBody) -> BankAccountOut:
    who = await me(request)
    if who.role != "seller":
        raise Forbidden("bank accounts are for sellers' payouts")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if body.is_default:
            await conn.execute(
                "UPDATE market.bank_accounts SET is_default = false"
                " WHERE user_id = $1 AND is_default AND deleted_at IS NULL",
                who.id,
            )
        row = await conn.fetchrow(
            "WITH made AS (INSERT INTO market.bank_accounts (user_id, bank_name,"
            " account_holder_name, account_number, routing_number, is_default)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *)"
            " SELECT id, bank_name, account_holder_name, right(account_number, 4)"
            "  AS account_last4, routing_number, is_default, is_verified FROM made",
            who.id,
            body.bank_name,
            body.account_holder_name,
            body.account_number,
            body.routing_number,
            body.is_default,
        )
    return BankAccountOut(**dict(row))


_PAYOUT = (
    "SELECT id, seller_id, amount, currency, method::text AS method, status::text AS status,"
    " bank_account_id, transaction_id, notes, processed_at, created_at FROM market.payouts"
)


@endpoint(
    routes,
    "POST",
    "/v1/payouts",
    summary="A seller asks for a payout; the amount leaves the wallet at once (409:"
    " insufficient funds)",
    tag="market money",
    body=PayoutBody,
    response=PayoutOut,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
async def request_payout(request: web.Request, body: PayoutBody) -> PayoutOut:
    who = await me(request)
    if who.role != "seller":
        raise Forbidden("payouts are for sellers")
    amount(body.amount, "amount")
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        payout = await payouts.request_payout(
            conn, who.id, body.amount, body.method, body.bank_account_id, body.notes
        )
    return PayoutOut(**dict(await pool.fetchrow(_PAYOUT + " WHERE id = $1", payout)))


@endpoint(
    routes,
    "GET",
    "/v1/payouts",
    summary="Payouts, newest first: a seller's own, or (accounting) everyone's",
    tag="market money",
    query=PayoutsQuery,
    response=Page[PayoutOut],
    errors=(400, 401),
)
async def list_payouts(request: web.Request, query: PayoutsQuery) -> Page[PayoutOut]:
    who = await me(request)
    seller = query.seller_id if await has_role(request, who.id, "accounting") else who.id
    after = decode_cursor(query.cursor, int)
    rows = await request.app[POOL].fetch(
        _PAYOUT + " WHERE ($1::bigint IS NULL OR seller_id = $1)"
        " AND ($2::market.payout_status_enum IS NULL OR status = $2)"
        " AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
        seller,
        query.status,
        after[0] if after else None,
        query.limit + 1,
    )
    return page_of([PayoutOut(**dict(r)) for r in rows], query.limit, lambda p: (p.id,))


@endpoint(
    routes,
    "POST",
    "/v1/payouts/{payout_id}/status",
    summary="Move a payout on (accounting), or cancel one's own pending payout; failed and"
    " cancelled payouts go back to the wallet",
    tag="market money",
    body=PayoutStatusBody,
    response=PayoutOut,
    errors=(400, 401, 403, 404, 409),
)
async def move_payout(request: web.Request, body: PayoutStatusBody) -> PayoutOut:
    who = await me(request)
    payout_id = path_id(request, "payout_id")
    accounting = await has_role(request, who.id, "accounting")
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        await payouts.move_payout(
            conn, payout_id, who.id, accounting, body.status, body.transaction_id, body.notes
        )
    return PayoutOut(**dict(await pool.fetchrow(_PAYOUT + " WHERE id = $1", payout_id)))
