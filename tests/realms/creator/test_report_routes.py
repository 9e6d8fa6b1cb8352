"""POST/GET /v1/creator/reports over the real api app: what a user may report (content, a
message of their own conversations only, a comment, a live stream, a user), the seed's
reasons, priority by reason, and a repeated report answering the open one."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from tests.realms.creator.conftest import Call, World
from tests.realms.creator.rows import insert, make_content, make_published_content, make_stream

REASONS = [
    "inappropriate_content",
    "copyright_violation",
    "harassment",
    "spam",
    "underage",
    "non_consensual",
    "violence",
    "hate_speech",
    "other",
]


async def report(call: Call, user: uuid.UUID, **body: object) -> tuple[int, Any]:
    body = {"report_type": "spam", **body}
    return await call("POST", "/v1/creator/reports", user, json=body)


async def fan_message(call: Call, world: World) -> str:
    status, opened = await call(
        "POST", "/v1/creator/conversations", world.fan, json={"creator_id": str(world.creator)}
    )
    assert status == 200, opened
    cid = opened["conversation"]["id"]
    status, sent = await call(
        "POST", f"/v1/creator/conversations/{cid}/messages", world.creator, json={"text": "buy"}
    )
    assert status in (200, 201), sent
    return str(sent["message"]["id"])


@pytest.mark.parametrize("reason", REASONS)
async def test_a_user_reports_published_content_for_each_documented_reason(
    call: Call, world: World, db: asyncpg.Connection, reason: str
) -> None:
    post = await make_published_content(db, world.creator)
    status, body = await report(
        call, world.stranger, target_type="content", target_id=str(post), report_type=reason
    )
    assert status == 201, body
    assert body["created"] is True
    filed = body["report"]
    assert filed["target_type"] == "content" and filed["target_id"] == str(post)
    assert filed["report_type"] == reason and filed["status"] == "pending"
    row = await db.fetchrow(
        "SELECT reporter_id, reported_user_id, priority FROM creator.content_reports WHERE id = $1",
        uuid.UUID(filed["id"]),
    )
    assert row["reporter_id"] == world.stranger and row["reported_user_id"] == world.creator
    expected = {"underage": "critical", "non_consensual": "critical", "violence": "high"}
    assert row["priority"] == expected.get(reason, row["priority"])


async def test_an_undocumented_reason_is_a_bad_request(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    post = await make_published_content(db, world.creator)
    status, body = await report(
        call, world.fan, target_type="content", target_id=str(post), report_type="fraud"
    )
    assert status == 400 and body["error"]["code"] == "bad_request"


async def test_reporting_again_answers_the_open_report(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    post = await make_published_content(db, world.creator)
    target = {"target_type": "content", "target_id": str(post)}
    status, first = await report(call, world.fan, **target, description="spam link")
    assert status == 201 and first["created"] is True
    status, again = await report(call, world.fan, **target, report_type="violence")
    assert status == 201 and again["created"] is False
    assert again["report"]["id"] == first["report"]["id"]
    assert again["report"]["report_type"] == "spam"  # the open report is unchanged
    # another reporter's report of the same target is its own
    status, other = await report(call, world.stranger, **target)
    assert other["created"] is True and other["report"]["id"] != first["report"]["id"]
    count = await db.fetchval(
        "SELECT count(*) FROM creator.content_reports WHERE reported_content_id = $1", post
    )
    assert count == 2
    # once closed, the same reporter may report it again
    await db.execute(
        "UPDATE creator.content_reports SET status = 'dismissed', resolved_at = now()"
        " WHERE id = $1",
        uuid.UUID(first["report"]["id"]),
    )
    status, third = await report(call, world.fan, **target)
    assert third["created"] is True and third["report"]["id"] != first["report"]["id"]


async def test_concurrent_repeats_file_one_report(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    post = await make_published_content(db, world.creator)
    results = await asyncio.gather(
        *(report(call, world.fan, target_type="content", target_id=str(post)) for _ in range(8))
    )
    assert all(status == 201 for status, _ in results), results
    assert len({body["report"]["id"] for _, body in results}) == 1
    assert sum(body["created"] for _, body in results) == 1


async def test_only_a_message_the_reporter_can_see_may_be_reported(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    message = await fan_message(call, world)
    status, body = await report(call, world.stranger, target_type="message", target_id=message)
    assert status == 404, body
    status, body = await report(
        call, world.fan, target_type="message", target_id=message, report_type="harassment"
    )
    assert status == 201, body
    reported = await db.fetchval(
        "SELECT reported_user_id FROM creator.content_reports WHERE id = $1",
        uuid.UUID(body["report"]["id"]),
    )
    assert reported == world.creator


async def test_unpublished_or_unknown_content_cannot_be_reported(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    draft = await make_content(db, world.creator)
    for target in (draft, uuid.uuid4()):
        status, body = await report(call, world.fan, target_type="content", target_id=str(target))
        assert status == 404, body


async def test_nobody_reports_themselves_or_their_own_content(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    post = await make_published_content(db, world.creator)
    status, body = await report(call, world.creator, target_type="content", target_id=str(post))
    assert status == 400 and "own" in body["error"]["message"]
    status, body = await report(call, world.fan, target_type="user", target_id=str(world.fan))
    assert status == 400


async def test_users_streams_and_comments_can_be_reported(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    post = await make_published_content(db, world.creator)
    comment = await insert(db, "comments", content_id=post, user_id=world.stranger, body="rude")
    stream = await make_stream(db, world.creator)
    for target_type, target_id, responsible in (
        ("user", world.stranger, world.stranger),
        ("comment", comment, world.stranger),
        ("live_stream", stream, world.creator),
    ):
        status, body = await report(
            call, world.fan, target_type=target_type, target_id=str(target_id)
        )
        assert status == 201, body
        reported = await db.fetchval(
            "SELECT reported_user_id FROM creator.content_reports WHERE id = $1",
            uuid.UUID(body["report"]["id"]),
        )
        assert reported == responsible


async def test_evidence_is_kept_and_the_reporter_lists_their_reports(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    post = await make_published_content(db, world.creator)
    evidence = [{"url": "https://example.com/shot.png", "note": "screenshot"}, {"note": "again"}]
    status, body = await report(
        call, world.fan, target_type="content", target_id=str(post), evidence=evidence
    )
    assert status == 201 and body["report"]["evidence"] == evidence
    await report(call, world.fan, target_type="user", target_id=str(world.stranger))
    await report(call, world.stranger, target_type="user", target_id=str(world.creator))
    status, page = await call("GET", "/v1/creator/reports?limit=1", world.fan)
    assert status == 200 and len(page["items"]) == 1 and page["next_cursor"]
    status, rest = await call(
        "GET", f"/v1/creator/reports?limit=5&cursor={page['next_cursor']}", world.fan
    )
    mine = page["items"] + rest["items"]
    assert len(mine) == 2 and rest["next_cursor"] is None
    assert {r["target_type"] for r in mine} == {"content", "user"}
    assert "assigned_to" not in mine[0]  # staff fields are not the reporter's


async def test_reporting_needs_a_signed_in_user(call: Call, world: World) -> None:
    status, body = await call(
        "POST",
        "/v1/creator/reports",
        json={"target_type": "user", "target_id": str(world.fan), "report_type": "spam"},
    )
    assert status == 401, body
