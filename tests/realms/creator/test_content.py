"""realms/creator/sql/3002: creator.content, require_creator_account(),
publish_scheduled_content()."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from tests.realms.creator.rows import (
    column,
    db_now,
    fails,
    make_content,
    make_creator,
    make_user,
    rejects,
)


async def test_content_defaults(db: asyncpg.Connection) -> None:
    content_id = await make_content(db, await make_creator(db))
    row = await db.fetchrow("SELECT * FROM creator.content WHERE id = $1", content_id)
    assert (row["status"], row["moderation_status"]) == ("draft", "pending")
    assert (row["is_premium"], row["is_subscriber_only"]) == (False, False)
    assert (row["is_age_restricted"], row["is_shadow_banned"]) == (False, False)
    assert row["price"] is None and row["media_metadata"] == {}
    assert row["deleted_at"] is None


@pytest.mark.parametrize("content_type", ["image", "video", "audio", "text", "live_stream"])
async def test_documented_content_type_is_accepted(
    db: asyncpg.Connection, content_type: str
) -> None:
    content_id = await make_content(db, await make_creator(db), content_type=content_type)
    assert await column(db, "content", "content_type", content_id) == content_type


@pytest.mark.parametrize("content_type", ["photo", "Text", "gif", ""])
async def test_undocumented_content_type_is_rejected(
    db: asyncpg.Connection, content_type: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "content_content_type_valid",
        "content",
        creator_id=await make_creator(db),
        content_type=content_type,
    )


@pytest.mark.parametrize("name", ["creator_id", "content_type"])
async def test_content_required_column_cannot_be_null(db: asyncpg.Connection, name: str) -> None:
    fields: dict[str, Any] = {"creator_id": await make_creator(db), "content_type": "text"}
    fields[name] = None
    await rejects(db, asyncpg.NotNullViolationError, None, "content", **fields)


@pytest.mark.parametrize(
    ("name", "value", "constraint"),
    [
        ("status", "deleted", "content_status_valid"),
        ("status", "Published", "content_status_valid"),
        ("moderation_status", "ok", "content_moderation_status_valid"),
        ("moderation_status", "shadow_banned", "content_moderation_status_valid"),
    ],
)
async def test_undocumented_content_status_is_rejected(
    db: asyncpg.Connection, name: str, value: str, constraint: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        constraint,
        "content",
        creator_id=await make_creator(db),
        content_type="text",
        body="x",
        **{name: value},
    )


@pytest.mark.parametrize("status", ["draft", "scheduled", "published", "archived"])
async def test_every_content_status_is_accepted(db: asyncpg.Connection, status: str) -> None:
    now = await db_now(db)
    assert await make_content(
        db, await make_creator(db), status=status, scheduled_at=now, published_at=now
    )


@pytest.mark.parametrize(
    "moderation_status", ["pending", "approved", "rejected", "flagged", "removed"]
)
async def test_every_moderation_status_is_accepted(
    db: asyncpg.Connection, moderation_status: str
) -> None:
    assert await make_content(db, await make_creator(db), moderation_status=moderation_status)


@pytest.mark.parametrize(
    ("is_premium", "price"), [(True, None), (True, 0), (True, -100), (False, 500), (False, 0)]
)
async def test_price_goes_with_premium_and_is_positive(
    db: asyncpg.Connection, is_premium: bool, price: int | None
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "content_price_matches_premium",
        "content",
        creator_id=await make_creator(db),
        content_type="text",
        body="x",
        is_premium=is_premium,
        price=price,
    )


async def test_premium_content_with_a_price_is_accepted(db: asyncpg.Connection) -> None:
    content_id = await make_content(db, await make_creator(db), is_premium=True, price=1499)
    assert await column(db, "content", "price", content_id) == 1499


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"status": "scheduled"}, "content_scheduled_has_time"),
        ({"status": "published"}, "content_published_has_time"),
        ({"status": "published", "body": None, "published_at": "now"}, "content_text_has_body"),
        (
            {"content_type": "video", "status": "published", "published_at": "now"},
            "content_media_has_url",
        ),
        ({"media_metadata": ["x"]}, "content_media_metadata_object"),
        ({"content_warning": " "}, "content_content_warning_not_blank"),
    ],
)
async def test_incomplete_content_is_rejected(
    db: asyncpg.Connection, fields: dict[str, Any], constraint: str
) -> None:
    if fields.get("published_at") == "now":
        fields["published_at"] = await db_now(db)
    values: dict[str, Any] = {"creator_id": await make_creator(db), "content_type": "text"}
    values["body"] = "caption"
    values.update(fields)
    await rejects(db, asyncpg.CheckViolationError, constraint, "content", **values)


@pytest.mark.parametrize("content_type", ["text", "image", "video", "audio"])
async def test_draft_may_lack_body_and_media(db: asyncpg.Connection, content_type: str) -> None:
    assert await make_content(db, await make_creator(db), content_type=content_type, body=None)


async def test_published_video_with_media_is_accepted(db: asyncpg.Connection) -> None:
    assert await make_content(
        db,
        await make_creator(db),
        content_type="video",
        body=None,
        status="published",
        published_at=await db_now(db),
        media_url="https://cdn.example.com/v.mp4",
        media_metadata={"duration_seconds": 31, "mime_type": "video/mp4"},
        content_warning="flashing lights",
        is_age_restricted=True,
    )


async def test_content_by_unknown_user_is_rejected(db: asyncpg.Connection) -> None:
    # The creator-account trigger lets an unknown id through to the foreign key.
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        "content_creator_id_fkey",
        "content",
        creator_id=uuid4(),
        content_type="text",
    )


@pytest.mark.parametrize("account_type", ["fan", "admin", "moderator"])
async def test_only_a_creator_account_can_own_content(
    db: asyncpg.Connection, account_type: str
) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "content_creator_is_creator",
        "content",
        creator_id=await make_user(db, account_type),
        content_type="text",
    )


async def test_content_cannot_be_moved_to_a_fan(db: asyncpg.Connection) -> None:
    content_id = await make_content(db, await make_creator(db))
    await fails(
        db,
        asyncpg.CheckViolationError,
        "content_creator_is_creator",
        "UPDATE creator.content SET creator_id = $1 WHERE id = $2",
        await make_user(db),
        content_id,
    )


async def test_hard_deleting_a_creator_with_content_fails(db: asyncpg.Connection) -> None:
    creator_id = await make_creator(db)
    await make_content(db, creator_id)
    await fails(
        db,
        asyncpg.ForeignKeyViolationError,
        "content_creator_id_fkey",
        "DELETE FROM creator.users WHERE id = $1",
        creator_id,
    )


async def test_content_update_moves_updated_at(db: asyncpg.Connection) -> None:
    past = await db_now(db, "-1 hour")
    content_id = await make_content(db, await make_creator(db), created_at=past, updated_at=past)
    await db.execute("UPDATE creator.content SET title = 'New' WHERE id = $1", content_id)
    assert await column(db, "content", "updated_at", content_id) > past


# -- publish_scheduled_content() ------------------------------------------------------------------


async def test_publish_scheduled_content_publishes_due_posts_at_their_scheduled_time(
    db: asyncpg.Connection,
) -> None:
    creator_id = await make_creator(db)
    due_at = await db_now(db, "-5 minutes")
    due = await make_content(db, creator_id, status="scheduled", scheduled_at=due_at)
    future = await make_content(
        db, creator_id, status="scheduled", scheduled_at=due_at + timedelta(hours=1)
    )
    deleted = await make_content(
        db, creator_id, status="scheduled", scheduled_at=due_at, deleted_at=due_at
    )
    draft = await make_content(db, creator_id, scheduled_at=due_at)

    assert await db.fetchval("SELECT creator.publish_scheduled_content()") == 1
    assert await column(db, "content", "status", due) == "published"
    assert await column(db, "content", "published_at", due) == due_at
    for untouched, status in ((future, "scheduled"), (deleted, "scheduled"), (draft, "draft")):
        assert await column(db, "content", "status", untouched) == status
    assert await db.fetchval("SELECT creator.publish_scheduled_content()") == 0
