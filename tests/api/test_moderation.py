"""Moderation over HTTP: reports by users, the admins' queue, and actions on the content or
account, each in one transaction with its notification."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from kernel.tokens import sign_access_token
from tests.factories import insert_row, make_analyst, make_user


def _auth(secret: str, user_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user_id), 'analyst', 600)}"}


async def _json(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json() if status != 204 else None


async def _post(db: asyncpg.Connection, analyst_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    values = {"analyst_id": analyst_id, "content": "NIFTY looks strong", "post_type": "analysis"}
    return await insert_row(db, "posts", {**values, **fields})


async def _chat_message(
    db: asyncpg.Connection, analyst_id: uuid.UUID, author_id: uuid.UUID
) -> uuid.UUID:
    channel = await insert_row(
        db,
        "chat_channels",
        {"analyst_id": analyst_id, "channel_name": "Room", "channel_type": "community"},
    )
    return await insert_row(
        db,
        "chat_messages",
        {"channel_id": channel, "user_id": author_id, "analyst_id": analyst_id, "message": "hi"},
    )


async def _report(
    api: TestClient,
    secret: str,
    reporter: uuid.UUID,
    entity_type: str,
    entity_id: uuid.UUID,
    reason: str = "spam",
    status: int = 201,
) -> Any:
    body = {"entity_type": entity_type, "entity_id": str(entity_id), "reason": reason}
    return await _json(
        await api.post("/v1/moderation/flags", json=body, headers=_auth(secret, reporter)), status
    )


async def _flag(db: asyncpg.Connection, **fields: Any) -> uuid.UUID:
    values = {
        "flagged_entity_type": "user",
        "flagged_entity_id": uuid.uuid4(),
        "flag_reason": "spam",
        **fields,
    }
    return await insert_row(db, "moderation_flags", values)


async def _act(
    api: TestClient, secret: str, admin: uuid.UUID, flag_id: str, action: str, status: int = 200
) -> Any:
    return await _json(
        await api.post(
            f"/v1/moderation/queue/{flag_id}/action",
            json={"action": action, "notes": "checked"},
            headers=_auth(secret, admin),
        ),
        status,
    )


# --- reporting --------------------------------------------------------------------------------


async def test_report_of_a_post_is_pending_with_a_priority_from_its_reason(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, reporter = await make_analyst(db), await make_user(db)
    post = await _post(db, analyst)
    report = await _report(api, secret, reporter, "post", post, reason="fake_calls")
    assert report["status"] == "pending" and report["entity_id"] == str(post)
    assert "priority" not in report and "resolution_notes" not in report
    row = await db.fetchrow(
        "SELECT reported_by, priority FROM analyst.moderation_flags WHERE id = $1::uuid",
        report["id"],
    )
    assert row["reported_by"] == reporter and row["priority"] == "high"


async def test_report_of_each_kind_of_entity_is_accepted(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, author, reporter = await make_analyst(db), await make_user(db), await make_user(db)
    review = await insert_row(
        db, "reviews", {"user_id": author, "analyst_id": analyst, "rating": 1}
    )
    message = await _chat_message(db, analyst, author)
    for kind, entity in (
        ("user", author),
        ("analyst", analyst),
        ("post", await _post(db, analyst)),
        ("chat_message", message),
        ("review", review),
    ):
        await _report(api, secret, reporter, kind, entity)
    flagged = await db.fetchrow(
        "SELECT is_flagged, flagged_by, flagged_reason FROM analyst.chat_messages WHERE id = $1",
        message,
    )
    assert tuple(flagged) == (True, reporter, "spam")
    assert await db.fetchval("SELECT is_flagged FROM analyst.reviews WHERE id = $1", review)


async def test_report_of_a_missing_or_deleted_entity_is_404(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, trader, reporter = await make_analyst(db), await make_user(db), await make_user(db)
    deleted = await _post(db, analyst, deleted_at=datetime.now(UTC))
    await _report(api, secret, reporter, "post", uuid.uuid4(), status=404)
    await _report(api, secret, reporter, "post", deleted, status=404)
    await _report(api, secret, reporter, "analyst", trader, status=404)  # not an analyst
    assert await db.fetchval("SELECT count(*) FROM analyst.moderation_flags") == 0


async def test_reporting_oneself_or_ones_own_content_is_refused(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    body = await _report(api, secret, analyst, "analyst", analyst, status=400)
    assert "yourself" in body["error"]["message"]
    await _report(api, secret, analyst, "post", await _post(db, analyst), status=400)


async def test_second_open_report_of_the_same_entity_is_409_until_the_first_is_closed(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    target, reporter, other = await make_user(db), await make_user(db), await make_user(db)
    admin = await make_user(db, user_type="admin")
    first = await _report(api, secret, reporter, "user", target)
    body = await _report(api, secret, reporter, "user", target, reason="harassment", status=409)
    assert body["error"]["code"] == "conflict"
    await _report(api, secret, other, "user", target)  # another reporter is not a duplicate
    await _json(
        await api.post(
            f"/v1/moderation/queue/{first['id']}/resolve",
            json={"outcome": "dismissed", "notes": "not spam"},
            headers=_auth(secret, admin),
        ),
        200,
    )
    await _report(api, secret, reporter, "user", target)


async def test_malformed_report_is_400_naming_the_field(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    reporter, target = await make_user(db), await make_user(db)
    headers = _auth(secret, reporter)
    for body, field in (
        ({"entity_type": "user", "entity_id": str(target), "reason": "rude"}, "reason"),
        ({"entity_type": "tier", "entity_id": str(target), "reason": "spam"}, "entity_type"),
        ({"entity_type": "user", "entity_id": "nope", "reason": "spam"}, "entity_id"),
        ({"entity_type": "user", "entity_id": str(target), "reason": "spam", "x": 1}, "x"),
        (
            {
                "entity_type": "user",
                "entity_id": str(target),
                "reason": "spam",
                "description": "d" * 2001,
            },
            "description",
        ),
    ):
        error = await _json(await api.post("/v1/moderation/flags", json=body, headers=headers), 400)
        assert field in error["error"]["message"], error


async def test_moderation_needs_a_login(api: TestClient) -> None:
    report = {"entity_type": "user", "entity_id": str(uuid.uuid4()), "reason": "spam"}
    for method, path, body in (
        ("POST", "/v1/moderation/flags", report),
        ("GET", "/v1/moderation/flags", None),
        ("GET", f"/v1/moderation/flags/{uuid.uuid4()}", None),
        ("GET", "/v1/moderation/queue", None),
        ("POST", f"/v1/moderation/queue/{uuid.uuid4()}/review", {}),
        (
            "POST",
            f"/v1/moderation/queue/{uuid.uuid4()}/action",
            {"action": "user_warned", "notes": "n"},
        ),
    ):
        assert (await api.request(method, path, json=body)).status == 401, path


# --- what reporters see -----------------------------------------------------------------------


async def test_reporters_see_only_their_own_reports(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    mine, theirs, target = await make_user(db), await make_user(db), await make_user(db)
    own = await _report(api, secret, mine, "user", target)
    other = await _report(api, secret, theirs, "user", target)
    listed = await _json(await api.get("/v1/moderation/flags", headers=_auth(secret, mine)), 200)
    assert [r["id"] for r in listed["items"]] == [own["id"]]
    await _json(
        await api.get(f"/v1/moderation/flags/{other['id']}", headers=_auth(secret, mine)), 404
    )
    got = await _json(
        await api.get(f"/v1/moderation/flags/{own['id']}", headers=_auth(secret, mine)), 200
    )
    assert got["id"] == own["id"] and "reviewed_by" not in got


async def test_own_reports_come_in_pages_with_a_stable_cursor(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    reporter = await make_user(db)
    start = datetime.now(UTC) - timedelta(hours=1)
    ids = [
        await _flag(db, reported_by=reporter, created_at=start + timedelta(minutes=i))
        for i in range(5)
    ]
    headers = _auth(secret, reporter)
    first = await _json(await api.get("/v1/moderation/flags?limit=3", headers=headers), 200)
    await _flag(db, reported_by=reporter)  # newer than the cursor: does not shift page two
    second = await _json(
        await api.get(
            "/v1/moderation/flags",
            params={"limit": 3, "cursor": first["next_cursor"]},
            headers=headers,
        ),
        200,
    )
    assert [r["id"] for r in first["items"] + second["items"]] == [str(i) for i in reversed(ids)]
    assert second["next_cursor"] is None
    bad = await api.get("/v1/moderation/flags?cursor=garbage", headers=headers)
    assert bad.status == 400


async def test_page_limit_out_of_range_is_400_naming_limit(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    response = await api.get(
        "/v1/moderation/flags?limit=0", headers=_auth(secret, await make_user(db))
    )
    assert "limit" in (await _json(response, 400))["error"]["message"]


# --- the admins' queue ------------------------------------------------------------------------


async def test_queue_and_its_actions_are_for_admins_only(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    trader = await make_user(db)
    flag = await _flag(db)
    headers = _auth(secret, trader)
    assert (await api.get("/v1/moderation/queue", headers=headers)).status == 403
    assert (await api.get(f"/v1/moderation/queue/{flag}", headers=headers)).status == 403
    for step, body in (
        ("review", {}),
        ("resolve", {"outcome": "dismissed", "notes": "n"}),
        ("action", {"action": "user_warned", "notes": "n"}),
    ):
        response = await api.post(f"/v1/moderation/queue/{flag}/{step}", json=body, headers=headers)
        assert response.status == 403, step
    assert await db.fetchval("SELECT status FROM analyst.moderation_flags") == "pending"


async def test_queue_puts_critical_first_then_high_medium_low_and_oldest_first_within(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    admin = await make_user(db, user_type="admin")
    t0 = datetime.now(UTC) - timedelta(days=1)
    made = {}
    for name, priority, minutes in (
        ("low_old", "low", 0),
        ("medium_new", "medium", 30),
        ("critical_new", "critical", 50),
        ("high_old", "high", 5),
        ("medium_old", "medium", 10),
        ("critical_old", "critical", 20),
    ):
        made[await _flag(db, priority=priority, created_at=t0 + timedelta(minutes=minutes))] = name
    await _flag(db, priority="critical", status="resolved")  # closed: not in the queue
    headers = _auth(secret, admin)
    first = await _json(await api.get("/v1/moderation/queue?limit=4", headers=headers), 200)
    second = await _json(
        await api.get(
            "/v1/moderation/queue",
            params={"limit": 4, "cursor": first["next_cursor"]},
            headers=headers,
        ),
        200,
    )
    order = [made[uuid.UUID(f["id"])] for f in first["items"] + second["items"]]
    assert order == [
        "critical_old",
        "critical_new",
        "high_old",
        "medium_old",
        "medium_new",
        "low_old",
    ]
    assert second["next_cursor"] is None
    closed = await _json(
        await api.get("/v1/moderation/queue?status=resolved", headers=headers), 200
    )
    assert len(closed["items"]) == 1
    assert (await api.get("/v1/moderation/queue?status=gone", headers=headers)).status == 400


async def test_admin_takes_a_flag_under_review_and_then_resolves_it(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    admin = await make_user(db, user_type="admin")
    flag = await _flag(db)
    headers = _auth(secret, admin)
    taken = await _json(
        await api.post(
            f"/v1/moderation/queue/{flag}/review", json={"priority": "critical"}, headers=headers
        ),
        200,
    )
    assert taken["status"] == "under_review" and taken["priority"] == "critical"
    assert taken["reviewed_by"] == str(admin) and taken["reviewed_at"]
    again = await api.post(f"/v1/moderation/queue/{flag}/review", json={}, headers=headers)
    assert again.status == 409
    resolved = await _json(
        await api.post(
            f"/v1/moderation/queue/{flag}/resolve",
            json={"outcome": "resolved", "notes": "talked to them"},
            headers=headers,
        ),
        200,
    )
    assert resolved["status"] == "resolved" and resolved["resolution_notes"] == "talked to them"
    for step, body in (
        ("resolve", {"outcome": "dismissed", "notes": "n"}),
        ("action", {"action": "user_warned", "notes": "n"}),
    ):
        response = await api.post(f"/v1/moderation/queue/{flag}/{step}", json=body, headers=headers)
        assert response.status == 409, step


async def test_resolving_needs_notes_and_a_known_outcome(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    admin = await make_user(db, user_type="admin")
    flag = await _flag(db)
    headers = _auth(secret, admin)
    for body, field in (
        ({"outcome": "resolved"}, "notes"),
        ({"outcome": "resolved", "notes": ""}, "notes"),
        ({"outcome": "action_taken", "notes": "n"}, "outcome"),
    ):
        error = await _json(
            await api.post(f"/v1/moderation/queue/{flag}/resolve", json=body, headers=headers), 400
        )
        assert field in error["error"]["message"]
    missing = await api.post(
        f"/v1/moderation/queue/{uuid.uuid4()}/resolve",
        json={"outcome": "resolved", "notes": "n"},
        headers=headers,
    )
    assert missing.status == 404
    assert (await api.get("/v1/moderation/queue/not-a-uuid", headers=headers)).status == 400


# --- actions ----------------------------------------------------------------------------------


async def test_content_removed_soft_deletes_the_post_and_notifies_its_analyst(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, reporter = await make_analyst(db), await make_user(db)
    admin = await make_user(db, user_type="admin")
    post = await _post(db, analyst)
    report = await _report(api, secret, reporter, "post", post, reason="fake_calls")
    acted = await _act(api, secret, admin, report["id"], "content_removed")
    assert acted["status"] == "action_taken" and acted["action_taken"] == "content_removed"
    assert acted["reviewed_by"] == str(admin) and acted["resolution_notes"] == "checked"
    assert await db.fetchval("SELECT deleted_at IS NOT NULL FROM analyst.posts WHERE id = $1", post)
    notice = await db.fetchrow(
        "SELECT notification_type, related_entity_type, related_entity_id"
        " FROM analyst.notifications WHERE user_id = $1",
        analyst,
    )
    assert tuple(notice) == ("moderation_action", "post", post)
    told = await db.fetch(  # the reporter learns the report was acted on, nothing more
        "SELECT notification_type, send_push, send_email FROM analyst.notifications"
        " WHERE user_id = $1",
        reporter,
    )
    assert [tuple(r) for r in told] == [("report_closed", False, False)]
    mine = await _json(
        await api.get(f"/v1/moderation/flags/{report['id']}", headers=_auth(secret, reporter)), 200
    )
    assert mine["status"] == "action_taken"


async def test_content_removed_deletes_a_chat_message_by_the_admin(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, author = await make_analyst(db), await make_user(db)
    admin = await make_user(db, user_type="admin")
    message = await _chat_message(db, analyst, author)
    flag = await _flag(db, flagged_entity_type="chat_message", flagged_entity_id=message)
    await _act(api, secret, admin, str(flag), "content_removed")
    row = await db.fetchrow(
        "SELECT is_deleted, deleted_by, deleted_at, deletion_reason"
        " FROM analyst.chat_messages WHERE id = $1",
        message,
    )
    assert row["is_deleted"] and row["deleted_by"] == admin and row["deleted_at"]
    assert row["deletion_reason"] == "moderation: spam"


async def test_content_removed_takes_a_review_out_of_the_rating(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, author = await make_analyst(db), await make_user(db)
    admin = await make_user(db, user_type="admin")
    review = await insert_row(
        db, "reviews", {"user_id": author, "analyst_id": analyst, "rating": 1}
    )
    flag = await _flag(db, flagged_entity_type="review", flagged_entity_id=review)
    await _act(api, secret, admin, str(flag), "content_removed")
    row = await db.fetchrow(
        "SELECT is_approved, moderated_by FROM analyst.reviews WHERE id = $1", review
    )
    assert tuple(row) == (False, admin)
    total = await db.fetchval(
        "SELECT total_reviews FROM analyst.analyst_profiles WHERE user_id = $1", analyst
    )
    assert total == 0


async def test_content_removed_does_not_apply_to_an_account(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    target = await make_user(db)
    admin = await make_user(db, user_type="admin")
    flag = await _flag(db, flagged_entity_id=target)
    error = await _act(api, secret, admin, str(flag), "content_removed", status=400)
    assert "content_removed" in error["error"]["message"]
    assert await db.fetchval("SELECT status FROM analyst.moderation_flags") == "pending"


async def test_user_warned_changes_nothing_but_the_flag_and_notifies_the_author(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, author = await make_analyst(db), await make_user(db)
    admin = await make_user(db, user_type="admin")
    review = await insert_row(
        db, "reviews", {"user_id": author, "analyst_id": analyst, "rating": 2}
    )
    flag = await _flag(db, flagged_entity_type="review", flagged_entity_id=review)
    await _act(api, secret, admin, str(flag), "user_warned")
    assert await db.fetchval("SELECT is_approved FROM analyst.reviews WHERE id = $1", review)
    assert await db.fetchval("SELECT is_active FROM analyst.users WHERE id = $1", author)
    assert (
        await db.fetchval("SELECT title FROM analyst.notifications WHERE user_id = $1", author)
        == "A moderator has warned you"
    )


async def test_user_suspended_deactivates_the_account_and_ends_its_sessions(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    target, reporter = await make_user(db), await make_user(db)
    admin = await make_user(db, user_type="admin")
    await db.execute(
        "INSERT INTO gateway.refresh_tokens (user_id, token_hash, family_id, expires_at)"
        " VALUES ($1, 'h', gen_random_uuid(), now() + interval '1 day')",
        target,
    )
    report = await _report(api, secret, reporter, "user", target, reason="harassment")
    await _act(api, secret, admin, report["id"], "user_suspended")
    row = await db.fetchrow("SELECT is_active, deleted_at FROM analyst.users WHERE id = $1", target)
    assert row["is_active"] is False and row["deleted_at"] is None
    assert await db.fetchval(
        "SELECT revoked_at IS NOT NULL FROM gateway.refresh_tokens WHERE user_id = $1", target
    )
    assert (await api.get("/v1/moderation/flags", headers=_auth(secret, target))).status == 401
    # Notified before the suspension, so the notice exists although the account is inactive.
    assert (
        await db.fetchval("SELECT count(*) FROM analyst.notifications WHERE user_id = $1", target)
        == 1
    )


async def test_user_banned_also_soft_deletes_the_account(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, author = await make_analyst(db), await make_user(db)
    admin = await make_user(db, user_type="admin")
    message = await _chat_message(db, analyst, author)
    flag = await _flag(db, flagged_entity_type="chat_message", flagged_entity_id=message)
    await _act(api, secret, admin, str(flag), "user_banned")
    row = await db.fetchrow("SELECT is_active, deleted_at FROM analyst.users WHERE id = $1", author)
    assert row["is_active"] is False and row["deleted_at"] is not None
    assert not await db.fetchval(
        "SELECT is_deleted FROM analyst.chat_messages WHERE id = $1", message
    )


async def test_admins_are_not_suspended_through_moderation(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    admin, other_admin = (
        await make_user(db, user_type="admin"),
        await make_user(db, user_type="admin"),
    )
    flag = await _flag(db, flagged_entity_id=other_admin)
    await _act(api, secret, admin, str(flag), "user_banned", status=403)
    assert await db.fetchval("SELECT is_active FROM analyst.users WHERE id = $1", other_admin)
    assert await db.fetchval("SELECT count(*) FROM analyst.notifications") == 0


async def test_action_on_an_entity_that_no_longer_exists_is_409(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    admin = await make_user(db, user_type="admin")
    flag = await _flag(db, flagged_entity_type="post", flagged_entity_id=uuid.uuid4())
    await _act(api, secret, admin, str(flag), "content_removed", status=409)


async def test_action_needs_a_known_action_and_notes(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    admin = await make_user(db, user_type="admin")
    flag = await _flag(db)
    for body, field in (
        ({"action": "user_deleted", "notes": "n"}, "action"),
        ({"action": "user_warned"}, "notes"),
    ):
        error = await _json(
            await api.post(
                f"/v1/moderation/queue/{flag}/action", json=body, headers=_auth(secret, admin)
            ),
            400,
        )
        assert field in error["error"]["message"]
