"""Realm `creator`: Creator platform (seed 003): fan DMs, paid messages, tips.

So far the realm brings its schema (sql/); routes, namespaces and jobs follow."""

from __future__ import annotations

from pathlib import Path

from kernel.realms import Realm

REALM = Realm(
    name="creator",
    schema="creator",
    summary="Creator platform (seed 003): fan-creator messaging, paid messages, tips, live streams",
    user_id_type="uuid",
    sql_dir=Path(__file__).resolve().parent / "sql",
)
