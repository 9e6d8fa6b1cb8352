"""Realm `market`: GOGOMARKET marketplace (seed 004): chats, orders, sellers, couriers.

So far the realm brings its schema (sql/); routes, namespaces and jobs follow."""

from __future__ import annotations

from pathlib import Path

from kernel.realms import Realm

REALM = Realm(
    name="market",
    schema="market",
    summary="GOGOMARKET marketplace (seed 004): chats, orders, sellers, couriers",
    user_id_type="bigint",
    sql_dir=Path(__file__).resolve().parent / "sql",
)
