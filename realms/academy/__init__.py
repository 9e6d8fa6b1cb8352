"""Realm `academy`: Dracarys trading academy (seed 001): lessons, progress, community, live.

So far the realm brings its schema (sql/); routes, namespaces and jobs follow."""

from __future__ import annotations

from pathlib import Path

from kernel.realms import Realm

REALM = Realm(
    name="academy",
    schema="academy",
    summary="Dracarys trading academy (seed 001): lessons, progress, community, live",
    user_id_type="uuid",
    sql_dir=Path(__file__).resolve().parent / "sql",
)
