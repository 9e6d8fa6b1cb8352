"""Realm `market`: GOGOMARKET marketplace (seed 004): phone/e-mail accounts, chats
(`market.chat:<id>`: direct buyer-seller, group, support), live order tracking
(`market.order:<id>`), checkout, wallets, payouts and promotions, scheduled jobs, and REST
under /v1/market/.
BIGINT user ids; docs/realm-market.md says what each part does and why."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.realms import Realm

if TYPE_CHECKING:
    from aiohttp import web

    from kernel.conversation import Namespace, NamespaceContext
    from kernel.jobs import Job

# notification_type_enum of the seed: the kinds of notification the realm emits.
NOTIFICATION_CATEGORIES = ("order", "message", "review", "promotion", "system", "payment")


def _routes() -> Sequence[web.RouteTableDef]:
    from realms.market.routes import ROUTE_TABLES

    return ROUTE_TABLES


def _api_setup(app: web.Application) -> None:
    from realms.market.payments.provider import install

    install(app)


def _namespaces(context: NamespaceContext) -> Sequence[Namespace]:
    from realms.market.namespaces import build

    return build(context)


def _jobs() -> Sequence[Job]:
    from realms.market.jobs import JOBS

    return JOBS


REALM = Realm(
    name="market",
    schema="market",
    summary="GOGOMARKET marketplace (seed 004): chats, orders, sellers, couriers",
    user_id_type="bigint",
    sql_dir=Path(__file__).resolve().parent / "sql",
    # Blocked (inactive, suspended, banned) and soft-deleted users are refused everywhere.
    user_lookup_sql=(
        "SELECT role::text AS user_type, status = 'active' AS active FROM market.users"
        " WHERE id = $1 AND deleted_at IS NULL"
    ),
    # SMS goes to a verified phone only (as e-mail to a verified address).
    contact_sql=(
        "SELECT id, email, email_verified, status = 'active' AND deleted_at IS NULL AS active,"
        " CASE WHEN phone_verified THEN phone END AS phone"
        " FROM market.users WHERE id = ANY ($1::bigint[])"
    ),
    routes=_routes,
    api_setup=_api_setup,
    namespaces=_namespaces,
    jobs=_jobs,
    notification_categories=NOTIFICATION_CATEGORIES,
)
