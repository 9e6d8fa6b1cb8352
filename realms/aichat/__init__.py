"""Realm `aichat`: AI SaaS chat (seed 002): AI assistant chats, quotas, billing.

So far the realm brings its schema (sql/); routes, namespaces and jobs follow."""

from __future__ import annotations

from pathlib import Path

from kernel.realms import Realm

REALM = Realm(
    name="aichat",
    schema="aichat",
    summary="AI SaaS chat (seed 002): conversations with an AI assistant, token quotas, billing",
    user_id_type="uuid",
    sql_dir=Path(__file__).resolve().parent / "sql",
)
