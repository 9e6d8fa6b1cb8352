"""/v1/creator/moderation and /v1/creator/staff over the real api app and real gateway
processes: the staff-only queue (filters, pages, taking a report), actions that take effect
live (a removed message disappears from every open client; a banned or suspended user's
sockets close), the escalation thresholds, the creator told of approval or removal once per
action, age verification, reinstatement, and the audit trail every one of them writes."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from realms.creator import notices
from tests.realms.creator.conftest import Call, Connect, World, make_account
from tests.realms.creator.rows import make_content, make_published_content


@pytest.fixture
async def admin(db: asyncpg.Connection) -> uuid.UUID:
    return await make_account(db, account_type="admin")


async def file(call: Call, user: uuid.UUID, target_type: str, target_id: Any, **kw: Any) -> str:
    body = {"target_type": target_type, "target_id": str(target_id), "report_type": "spam", **kw}
    status, filed = await call("POST", "/v1/creator/reports", user, json=body)
    assert status == 201, filed
    return str(filed["report"]["id"])


async def trail(db: asyncpg.Connection, entity_id: Any) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT action, admin_id, user_id, old_values, new_values FROM creator.audit_logs"
        " WHERE entity_id = $1 ORDER BY created_at, action",
        entity_id if isinstance(entity_id, uuid.UUID) else uuid.UUID(str(entity_id)),
    )


async def creator_message(call: Call, world: World) -> tuple[str, str]:
    """(channel, message id) of a message the creator sent the fan."""
    status, opened = await call(
        "POST", "/v1/creator/conversations", world.fan, json={"creator_id": str(world.creator)}
    )
    assert status == 200, opened
    conversation = opened["conversation"]
    status, sent = await call(
        "POST",
        f"/v1/creator/conversations/{conversation['id']}/messages",
        world.creator,
        json={"text": "something nasty"},
    )
    assert status == 201, sent
    return str(conversation["channel"]), str(sent["message"]["id"])


# -- who may moderate -------------------------------------------------------------------------


async def test_non_staff_get_403_from_every_staff_route(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    post = await make_published_content(db, world.creator)
    report_id = await file(call, world.fan, "content", post)
    for user in (world.fan, world.creator):
        for method, path, body in (
            ("GET", "/v1/creator/moderation/reports", None),
            ("GET", f"/v1/creator/moderation/reports/{report_id}", None),
            ("POST", f"/v1/creator/moderation/reports/{report_id}/take", None),
            ("POST", f"/v1/creator/moderation/reports/{report_id}/dismiss", {}),
            ("POST", f"/v1/creator/moderation/reports/{report_id}/escalate", {}),
            (
                "POST",
                "/v1/creator/moderation/actions",
                {"action": "remove", "report_id": report_id},
            ),
            (
                "POST",
                "/v1/creator/moderation/violations",
                {"user_id": str(world.stranger), "enforcement_action": "permanent_ban"},
            ),
            ("GET", f"/v1/creator/moderation/users/{world.stranger}/violations", None),
            (
                "PUT",
                f"/v1/creator/staff/users/{world.stranger}/age-verification",
                {"age_verified": False},
            ),
            ("GET", "/v1/creator/staff/audit-logs", None),
        ):
            status, answer = await call(method, path, user, json=body)
            assert status == 403, (method, path, answer)
    assert (
        await db.fetchval("SELECT account_status FROM creator.users WHERE id = $1", world.stranger)
        == "active"
    )
    assert await db.fetchval("SELECT status FROM creator.content_reports") == "pending"


# -- the queue ----------------------------------------------------------------------------------


async def test_the_queue_serves_open_reports_by_priority_then_age_with_filters_and_pages(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    post = await make_published_content(db, world.creator)
    spam = await file(call, world.fan, "content", post)  # low
    harassment = await file(call, world.fan, "user", world.stranger, report_type="harassment")
    underage = await file(call, world.stranger, "content", post, report_type="underage")
    other = await file(call, world.stranger, "user", world.fan, report_type="other")  # low

    status, page = await call("GET", "/v1/creator/moderation/reports?limit=3", world.moderator)
    assert status == 200, page
    assert [r["id"] for r in page["items"]] == [underage, harassment, spam]
    status, rest = await call(
        "GET",
        f"/v1/creator/moderation/reports?limit=3&cursor={page['next_cursor']}",
        world.moderator,
    )
    assert [r["id"] for r in rest["items"]] == [other] and rest["next_cursor"] is None

    status, users = await call(
        "GET", "/v1/creator/moderation/reports?target_type=user", world.moderator
    )
    assert {r["id"] for r in users["items"]} == {harassment, other}
    status, about = await call(
        "GET", f"/v1/creator/moderation/reports?reported_user_id={world.creator}", world.moderator
    )
    assert {r["id"] for r in about["items"]} == {spam, underage}
    status, critical = await call(
        "GET", "/v1/creator/moderation/reports?priority=critical", world.moderator
    )
    assert [r["id"] for r in critical["items"]] == [underage]

    status, dismissed = await call(
        "POST",
        f"/v1/creator/moderation/reports/{other}/dismiss",
        world.moderator,
        json={"notes": "not a violation"},
    )
    assert status == 200 and dismissed["status"] == "dismissed"
    assert dismissed["resolved_by"] == str(world.moderator) and dismissed["resolved_at"]
    status, again = await call(
        "POST", f"/v1/creator/moderation/reports/{other}/dismiss", world.moderator, json={}
    )
    assert status == 409, again
    status, open_ = await call("GET", "/v1/creator/moderation/reports", world.moderator)
    assert other not in {r["id"] for r in open_["items"]}
    status, closed = await call(
        "GET", "/v1/creator/moderation/reports?status=dismissed", world.moderator
    )
    assert [r["id"] for r in closed["items"]] == [other]


async def test_taking_a_report_assigns_it_and_another_moderator_gets_409(
    call: Call, world: World, db: asyncpg.Connection, admin: uuid.UUID
) -> None:
    report_id = await file(call, world.fan, "user", world.stranger)
    status, taken = await call(
        "POST", f"/v1/creator/moderation/reports/{report_id}/take", world.moderator
    )
    assert status == 200, taken
    assert taken["status"] == "in_review" and taken["assigned_to"] == str(world.moderator)
    status, again = await call(
        "POST", f"/v1/creator/moderation/reports/{report_id}/take", world.moderator
    )
    assert status == 200 and again["assigned_at"] == taken["assigned_at"]
    status, refused = await call("POST", f"/v1/creator/moderation/reports/{report_id}/take", admin)
    assert status == 409, refused
    status, mine = await call("GET", "/v1/creator/moderation/reports?mine=true", world.moderator)
    assert [r["id"] for r in mine["items"]] == [report_id]
    status, escalated = await call(
        "POST",
        f"/v1/creator/moderation/reports/{report_id}/escalate",
        world.moderator,
        json={"priority": "critical", "notes": "needs an admin"},
    )
    assert status == 200 and escalated["status"] == "escalated"
    assert escalated["priority"] == "critical"
    status, taken = await call("POST", f"/v1/creator/moderation/reports/{report_id}/take", admin)
    assert status == 200 and taken["assigned_to"] == str(admin)
    audited = await trail(db, report_id)
    assert [r["admin_id"] for r in audited if r["action"] == "content_reports.update"] == [
        world.moderator,
        world.moderator,
        admin,
    ]


# -- actions that take effect live --------------------------------------------------------------


async def test_removing_a_reported_message_disappears_from_every_open_client(
    call: Call, world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    channel, message = await creator_message(call, world)
    report_id = await file(call, world.fan, "message", message, report_type="harassment")
    fan, creator = await connect_as(world.fan), await connect_as(world.creator)
    await fan.ok("join", channel=channel)
    await creator.ok("join", channel=channel)

    status, acted = await call(
        "POST",
        "/v1/creator/moderation/actions",
        world.moderator,
        json={"report_id": report_id, "action": "remove", "reason": "harassment"},
    )
    assert status == 201, acted
    assert acted["target_type"] == "message" and acted["target_id"] == message
    assert acted["reports_closed"] == 1
    for client in (fan, creator):
        event = await client.expect(lambda f: f.get("kind") == "deleted")
        assert event["id"] == message and event["channel"] == channel
        await client.close()
    row = await db.fetchrow(
        "SELECT is_deleted, deleted_by FROM creator.messages WHERE id = $1", uuid.UUID(message)
    )
    assert row["is_deleted"] is True and row["deleted_by"] == world.moderator
    status, report = await call(
        "GET", f"/v1/creator/moderation/reports/{report_id}", world.moderator
    )
    assert report["status"] == "resolved" and report["resolved_by"] == str(world.moderator)
    # the message's deletion, the action and the report's resolution are audited, by the moderator
    assert any(
        r["action"] == "messages.update" and r["admin_id"] == world.moderator
        for r in await trail(db, message)
    )
    assert [(r["action"], r["admin_id"]) for r in await trail(db, acted["id"])] == [
        ("content_moderation_actions.insert", world.moderator)
    ]
    assert any(
        r["action"] == "content_reports.update" and r["new_values"]["status"] == "resolved"
        for r in await trail(db, report_id)
    )


async def test_a_message_only_gets_approve_flag_or_remove_and_actions_are_validated(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    _, message = await creator_message(call, world)
    post = await make_published_content(db, world.creator)
    user_report = await file(call, world.fan, "user", world.stranger)
    for body in (
        {"target_type": "message", "target_id": message, "action": "age_restrict"},
        {"target_type": "content", "target_id": str(post), "action": "require_warning"},
        {"report_id": user_report, "action": "remove"},
        {"action": "remove"},
        {"target_type": "content", "action": "remove"},
    ):
        status, answer = await call(
            "POST", "/v1/creator/moderation/actions", world.moderator, json=body
        )
        assert status == 400, (body, answer)
    status, answer = await call(
        "POST",
        "/v1/creator/moderation/actions",
        world.moderator,
        json={"target_type": "content", "target_id": str(uuid.uuid4()), "action": "remove"},
    )
    assert status == 404, answer
    assert await db.fetchval("SELECT count(*) FROM creator.content_moderation_actions") == 0


async def test_removing_content_closes_its_reports_and_tells_its_creator_once(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    post = await make_published_content(db, world.creator, title="Beach day")
    first = await file(call, world.fan, "content", post)
    second = await file(call, world.stranger, "content", post, report_type="violence")
    status, acted = await call(
        "POST",
        "/v1/creator/moderation/actions",
        world.moderator,
        json={
            "target_type": "content",
            "target_id": str(post),
            "action": "remove",
            "reason": "graphic violence",
        },
    )
    assert status == 201, acted
    assert acted["reports_closed"] == 2
    assert (
        await db.fetchval("SELECT moderation_status FROM creator.content WHERE id = $1", post)
        == "removed"
    )
    for report_id in (first, second):
        status, report = await call(
            "GET", f"/v1/creator/moderation/reports/{report_id}", world.moderator
        )
        assert report["status"] == "resolved"
    status, inbox = await call("GET", "/v1/creator/notifications", world.creator)
    removed = [n for n in inbox["items"] if n["notification_type"] == "content_removed"]
    assert len(removed) == 1, inbox
    assert removed[0]["related_entity_id"] == str(post)
    assert "Beach day" in removed[0]["title"] and removed[0]["message"] == "graphic violence"
    # idempotent by the action's id: telling again creates nothing
    again = await notices.content_moderated(
        db,
        action_id=uuid.UUID(acted["id"]),
        creator_id=world.creator,
        content_id=post,
        content_title="Beach day",
        approved=False,
        reason="graphic violence",
    )
    assert again == 0
    seed_rows = await db.fetchval(
        "SELECT count(*) FROM creator.notifications WHERE user_id = $1"
        " AND notification_type = 'content_removed'",
        world.creator,
    )
    assert seed_rows == 1
    # the content's state change is audited with the moderator as its actor
    changes = [r for r in await trail(db, post) if r["action"] == "content.update"]
    assert changes[-1]["admin_id"] == world.moderator
    assert changes[-1]["new_values"] == {"moderation_status": "removed"}


async def test_approving_pending_content_tells_its_creator(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    post = await make_content(
        db, world.creator, status="published", published_at=await db.fetchval("SELECT now()")
    )
    status, acted = await call(
        "POST",
        "/v1/creator/moderation/actions",
        world.moderator,
        json={"target_type": "content", "target_id": str(post), "action": "approve"},
    )
    assert status == 201, acted
    assert (
        await db.fetchval("SELECT moderation_status FROM creator.content WHERE id = $1", post)
        == "approved"
    )
    status, inbox = await call("GET", "/v1/creator/notifications", world.creator)
    assert [n["notification_type"] for n in inbox["items"]] == ["content_approved"]
    # a warning label is not a removal: nothing more is sent
    status, _ = await call(
        "POST",
        "/v1/creator/moderation/actions",
        world.moderator,
        json={
            "target_type": "content",
            "target_id": str(post),
            "action": "require_warning",
            "warning_text": "flashing lights",
        },
    )
    assert status == 201
    status, inbox = await call("GET", "/v1/creator/notifications", world.creator)
    assert len(inbox["items"]) == 1


# -- violations ---------------------------------------------------------------------------------


async def violation(call: Call, staff: uuid.UUID, **body: Any) -> tuple[int, Any]:
    return await call("POST", "/v1/creator/moderation/violations", staff, json=body)


async def test_a_ban_through_the_route_closes_the_users_sockets(
    call: Call, world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    report_id = await file(call, world.fan, "user", world.stranger, report_type="hate_speech")
    stranger = await connect_as(world.stranger)
    second = await connect_as(world.stranger)
    status, enforced = await violation(
        call,
        world.moderator,
        report_id=report_id,
        enforcement_action="permanent_ban",
        severity="critical",
        description="hate speech in chat",
    )
    assert status == 201, enforced
    assert enforced["account_status"] == "banned"
    [recorded] = enforced["violations"]
    assert recorded["user_id"] == str(world.stranger)
    assert recorded["violation_type"] == "hate_speech"  # taken from the report
    assert recorded["issued_by"] == str(world.moderator) and recorded["automatic"] is False
    assert await stranger.closed() == 4004
    assert await second.closed() == 4004
    status, report = await call(
        "GET", f"/v1/creator/moderation/reports/{report_id}", world.moderator
    )
    assert report["status"] == "resolved"
    status, _ = await call("GET", "/v1/creator/me", world.stranger)
    assert status == 401
    account = [r for r in await trail(db, world.stranger) if r["action"] == "users.update"]
    assert account[-1]["admin_id"] == world.moderator
    assert account[-1]["new_values"]["account_status"] == "banned"
    assert [r["action"] for r in await trail(db, recorded["id"])] == ["user_violations.insert"]


async def test_a_suspension_closes_sockets_until_its_end(
    call: Call, world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    fan = await connect_as(world.fan)
    status, enforced = await violation(
        call,
        world.moderator,
        user_id=str(world.fan),
        enforcement_action="temporary_suspension",
        duration_hours=48,
        violation_type="spam",
    )
    assert status == 201, enforced
    assert enforced["account_status"] == "suspended" and enforced["suspended_until"]
    assert await fan.closed() == 4004
    hours = await db.fetchval(
        "SELECT extract(epoch FROM suspended_until - now()) / 3600 FROM creator.users"
        " WHERE id = $1",
        world.fan,
    )
    assert 47 < hours <= 48


@pytest.mark.parametrize(
    "body",
    [
        {"enforcement_action": "temporary_suspension"},
        {"enforcement_action": "warning", "duration_hours": 5},
        {"enforcement_action": "permanent_ban", "duration_hours": 5},
        {"enforcement_action": "feature_restriction"},
        {"enforcement_action": "warning", "restricted_features": ["messaging"]},
    ],
)
async def test_a_violation_with_the_wrong_duration_or_features_is_a_bad_request(
    call: Call, world: World, db: asyncpg.Connection, body: dict[str, Any]
) -> None:
    status, answer = await violation(call, world.moderator, user_id=str(world.fan), **body)
    assert status == 400, answer
    assert await db.fetchval("SELECT count(*) FROM creator.user_violations") == 0


async def test_a_feature_restriction_leaves_the_account_active(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    status, enforced = await violation(
        call,
        world.moderator,
        user_id=str(world.fan),
        enforcement_action="feature_restriction",
        restricted_features=["messaging", "tipping"],
        duration_hours=24,
    )
    assert status == 201 and enforced["account_status"] == "active", enforced
    assert (
        await db.fetchval("SELECT creator.has_feature_restriction($1, 'messaging')", world.fan)
        is True
    )


async def test_three_warnings_bring_a_suspension_and_three_suspensions_a_ban(
    call: Call, world: World, connect_as: Connect, db: asyncpg.Connection
) -> None:
    fan = await connect_as(world.fan)
    for _ in range(2):
        status, enforced = await violation(
            call, world.moderator, user_id=str(world.fan), enforcement_action="warning"
        )
        assert status == 201 and enforced["account_status"] == "active", enforced
        assert len(enforced["violations"]) == 1
    status, enforced = await violation(
        call,
        world.moderator,
        user_id=str(world.fan),
        enforcement_action="warning",
        violation_type="harassment",
    )
    assert status == 201, enforced
    warning, suspension = enforced["violations"]
    assert warning["enforcement_action"] == "warning"
    assert suspension["enforcement_action"] == "temporary_suspension"
    assert suspension["automatic"] is True and suspension["issued_by"] is None
    assert suspension["violation_type"] == "harassment"
    assert enforced["account_status"] == "suspended"
    assert await fan.closed() == 4004  # the automatic suspension took effect live

    # a second suspension by hand; the third (counting the automatic one) brings a ban
    status, enforced = await violation(
        call,
        world.moderator,
        user_id=str(world.fan),
        enforcement_action="temporary_suspension",
        duration_hours=24,
    )
    assert [v["enforcement_action"] for v in enforced["violations"]] == ["temporary_suspension"]
    status, enforced = await violation(
        call,
        world.moderator,
        user_id=str(world.fan),
        enforcement_action="temporary_suspension",
        duration_hours=24,
    )
    assert [v["enforcement_action"] for v in enforced["violations"]] == [
        "temporary_suspension",
        "permanent_ban",
    ]
    assert enforced["account_status"] == "banned"
    status, history = await call(
        "GET", f"/v1/creator/moderation/users/{world.fan}/violations", world.moderator
    )
    assert status == 200 and history["account_status"] == "banned"
    assert len(history["violations"]) == 7
    assert sum(v["automatic"] for v in history["violations"]) == 2
    # every violation, and every change of the account's status, is audited
    inserted = await db.fetchval(
        "SELECT count(*) FROM creator.audit_logs WHERE action = 'user_violations.insert'"
        " AND user_id = $1 AND admin_id = $2",
        world.fan,
        world.moderator,
    )
    assert inserted == 7
    statuses = await db.fetch(
        "SELECT new_values ->> 'account_status' AS status FROM creator.audit_logs"
        " WHERE action = 'users.update' AND entity_id = $1 AND new_values ? 'account_status'"
        " ORDER BY created_at",
        world.fan,
    )
    assert [r["status"] for r in statuses] == ["suspended", "banned"]


async def test_overturned_warnings_do_not_count(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    for _ in range(2):
        await violation(call, world.moderator, user_id=str(world.fan), enforcement_action="warning")
    await db.execute("UPDATE creator.user_violations SET status = 'overturned'")
    status, enforced = await violation(
        call, world.moderator, user_id=str(world.fan), enforcement_action="warning"
    )
    assert status == 201, enforced
    assert len(enforced["violations"]) == 1 and enforced["account_status"] == "active"


async def test_staff_cannot_sanction_themselves_nor_an_unknown_user(
    call: Call, world: World
) -> None:
    status, _ = await violation(
        call, world.moderator, user_id=str(world.moderator), enforcement_action="warning"
    )
    assert status == 400
    status, _ = await violation(
        call, world.moderator, user_id=str(uuid.uuid4()), enforcement_action="warning"
    )
    assert status == 404


# -- staff: age verification, reinstatement, audit log -------------------------------------------


async def test_staff_verify_an_adults_age_with_an_audit_row(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    user = await make_account(db, verified=False)
    path = f"/v1/creator/staff/users/{user}/age-verification"
    status, state = await call("PUT", path, world.moderator, json={"age_verified": True})
    assert status == 200, state
    assert state["age_verified"] is True and state["age_verified_at"]
    audited = [r for r in await trail(db, user) if r["action"] == "users.update"]
    assert audited[-1]["admin_id"] == world.moderator
    assert audited[-1]["new_values"]["age_verified"] is True
    status, state = await call("PUT", path, world.moderator, json={"age_verified": False})
    assert status == 200 and state["age_verified"] is False and state["age_verified_at"] is None


async def test_a_minor_or_unknown_birth_date_cannot_be_verified(
    call: Call, world: World, db: asyncpg.Connection
) -> None:
    user = await make_account(db, verified=False, date_of_birth=None)
    path = f"/v1/creator/staff/users/{user}/age-verification"
    status, answer = await call("PUT", path, world.moderator, json={"age_verified": True})
    assert status == 400, answer
    year = await db.fetchval("SELECT extract(year FROM now())::int")
    status, answer = await call(
        "PUT",
        path,
        world.moderator,
        json={"age_verified": True, "date_of_birth": f"{year - 10}-01-01"},
    )
    assert status == 400, answer
    assert await db.fetchval("SELECT age_verified FROM creator.users WHERE id = $1", user) is False


async def test_an_admin_reinstates_a_banned_account(
    call: Call, world: World, db: asyncpg.Connection, admin: uuid.UUID
) -> None:
    await violation(
        call, world.moderator, user_id=str(world.fan), enforcement_action="permanent_ban"
    )
    path = f"/v1/creator/staff/users/{world.fan}/reinstate"
    status, _ = await call("POST", path, world.moderator, json={"reason": "appeal upheld"})
    assert status == 403  # admins only
    status, state = await call("POST", path, admin, json={"reason": "appeal upheld"})
    assert status == 200, state
    assert state["account_status"] == "active" and state["status_reason"] == "appeal upheld"
    assert await db.fetchval("SELECT status FROM creator.user_violations") == "overturned"
    status, again = await call("POST", path, admin, json={"reason": "again"})
    assert status == 409, again
    status, _ = await call("GET", "/v1/creator/me", world.fan)
    assert status == 200
    audited = [r for r in await trail(db, world.fan) if r["action"] == "users.update"]
    assert audited[-1]["admin_id"] == admin
    assert audited[-1]["new_values"]["account_status"] == "active"


async def test_admins_read_the_audit_trail_with_filters_and_pages(
    call: Call, world: World, db: asyncpg.Connection, admin: uuid.UUID
) -> None:
    for _ in range(3):
        await violation(call, world.moderator, user_id=str(world.fan), enforcement_action="warning")
    status, _ = await call("GET", "/v1/creator/staff/audit-logs", world.moderator)
    assert status == 403  # moderators do not read the trail
    status, page = await call(
        "GET",
        f"/v1/creator/staff/audit-logs?actor_id={world.moderator}"
        "&action=user_violations.insert&limit=2",
        admin,
    )
    assert status == 200, page
    assert len(page["items"]) == 2 and page["next_cursor"]
    assert {e["admin_id"] for e in page["items"]} == {str(world.moderator)}
    status, rest = await call(
        "GET",
        f"/v1/creator/staff/audit-logs?actor_id={world.moderator}"
        f"&action=user_violations.insert&limit=10&cursor={page['next_cursor']}",
        admin,
    )
    # three warnings and the suspension they brought
    assert len(page["items"]) + len(rest["items"]) == 4 and rest["next_cursor"] is None
    status, about = await call(
        "GET",
        f"/v1/creator/staff/audit-logs?entity_type=users&entity_id={world.fan}&category=user_account",
        admin,
    )
    assert [e["action"] for e in about["items"]][:1] == ["users.update"]
    assert about["items"][0]["new_values"]["account_status"] == "suspended"
    assert about["items"][-1]["action"] == "users.insert"
