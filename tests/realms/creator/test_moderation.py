"""realms/creator/sql/3007: creator.content_reports, creator.content_moderation_actions,
creator.user_violations (with has_feature_restriction(), lift_expired_suspensions()),
creator.notifications and creator.system_logs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.realms.creator.rows import (
    Chat,
    column,
    db_now,
    fails,
    insert,
    make_content,
    make_creator,
    make_report,
    make_stream,
    make_user,
    make_violation,
    rejects,
)

REPORT_TYPES = [
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


@pytest.fixture
async def moderator(db: asyncpg.Connection) -> UUID:
    return await make_user(db, "moderator")


# -- content_reports ----------------------------------------------------------------------------


async def test_report_defaults(db: asyncpg.Connection) -> None:
    report_id = await make_report(
        db, await make_user(db), target_type="user", reported_user_id=await make_creator(db)
    )
    row = await db.fetchrow("SELECT * FROM creator.content_reports WHERE id = $1", report_id)
    assert (row["status"], row["priority"], row["evidence"]) == ("pending", "medium", [])


@pytest.mark.parametrize("report_type", REPORT_TYPES)
async def test_documented_report_type_is_accepted(db: asyncpg.Connection, report_type: str) -> None:
    assert await make_report(
        db,
        await make_user(db),
        target_type="user",
        reported_user_id=await make_creator(db),
        report_type=report_type,
    )


@pytest.mark.parametrize("report_type", ["abuse", "Spam", "fraud"])
async def test_undocumented_report_type_is_rejected(
    db: asyncpg.Connection, report_type: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_report(
            db,
            await make_user(db),
            target_type="user",
            reported_user_id=await make_creator(db),
            report_type=report_type,
        )
    assert info.value.constraint_name == "content_reports_report_type_valid"


async def test_each_target_names_the_user_responsible_for_it(db: asyncpg.Connection) -> None:
    creator_id, reporter = await make_creator(db), await make_user(db)
    chat = await Chat.open(db)
    post = await make_content(db, creator_id)
    comment_author = await make_user(db)
    comment = await insert(db, "comments", content_id=post, user_id=comment_author, body="rude")
    targets = {
        "content": ("reported_content_id", post, creator_id),
        "message": ("reported_message_id", await chat.send(chat.fan_id), chat.fan_id),
        "comment": ("reported_comment_id", comment, comment_author),
        "live_stream": ("reported_live_stream_id", await make_stream(db, creator_id), creator_id),
        "user": ("reported_user_id", creator_id, creator_id),
    }
    someone_else = await make_user(db)
    for target_type, (name, target_id, responsible) in targets.items():
        fields: dict[str, Any] = {name: target_id}
        if name != "reported_user_id":
            fields["reported_user_id"] = someone_else  # overridden: nobody is framed
        report_id = await make_report(db, reporter, target_type=target_type, **fields)
        assert await column(db, "content_reports", "reported_user_id", report_id) == responsible


@pytest.mark.parametrize("target_type", ["content", "message", "comment", "live_stream", "user"])
async def test_report_must_name_its_target(db: asyncpg.Connection, target_type: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_report(db, await make_user(db), target_type=target_type)
    assert info.value.constraint_name == "content_reports_target_required"


@pytest.mark.parametrize(
    ("name", "constraint"),
    [
        ("reported_content_id", "content_reports_content_matches_target"),
        ("reported_message_id", "content_reports_message_matches_target"),
        ("reported_comment_id", "content_reports_comment_matches_target"),
        ("reported_live_stream_id", "content_reports_live_stream_matches_target"),
    ],
)
async def test_item_column_only_for_its_target_type(
    db: asyncpg.Connection, name: str, constraint: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_report(
            db,
            await make_user(db),
            target_type="user",
            reported_user_id=await make_creator(db),
            **{name: uuid4()},
        )
    assert info.value.constraint_name == constraint


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"target_type": "post"}, "content_reports_target_type_valid"),
        ({"priority": "urgent"}, "content_reports_priority_valid"),
        ({"status": "open"}, "content_reports_status_valid"),
        ({"status": "resolved"}, "content_reports_closed_has_time"),
        ({"status": "dismissed"}, "content_reports_closed_has_time"),
        ({"evidence": {"url": "x"}}, "content_reports_evidence_array"),
        ({"assigned_to": "moderator"}, "content_reports_assigned_has_time"),
    ],
)
async def test_inconsistent_report_is_rejected(
    db: asyncpg.Connection, moderator: UUID, fields: dict[str, Any], constraint: str
) -> None:
    if fields.get("assigned_to") == "moderator":
        fields["assigned_to"] = moderator
    values: dict[str, Any] = {"target_type": "user", "reported_user_id": await make_creator(db)}
    values.update(fields)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_report(db, await make_user(db), **values)
    assert info.value.constraint_name == constraint


@pytest.mark.parametrize("priority", ["low", "medium", "high", "critical"])
async def test_documented_priority_is_accepted(db: asyncpg.Connection, priority: str) -> None:
    assert await make_report(
        db,
        await make_user(db),
        target_type="user",
        reported_user_id=await make_creator(db),
        priority=priority,
    )


async def test_report_workflow_with_evidence_assignment_and_resolution(
    db: asyncpg.Connection, moderator: UUID
) -> None:
    now = await db_now(db)
    report_id = await make_report(
        db,
        await make_user(db),
        target_type="user",
        reported_user_id=await make_creator(db),
        evidence=[{"type": "screenshot", "url": "https://cdn.example.com/e.png"}],
        assigned_to=moderator,
        assigned_at=now,
    )
    for status in ("in_review", "escalated"):
        await db.execute(
            "UPDATE creator.content_reports SET status = $2 WHERE id = $1", report_id, status
        )
    await db.execute(
        "UPDATE creator.content_reports SET status = 'resolved', resolved_by = $2,"
        " resolved_at = now(), resolution_notes = 'removed' WHERE id = $1",
        report_id,
        moderator,
    )
    assert await column(db, "content_reports", "status", report_id) == "resolved"


async def test_nobody_reports_their_own_content(db: asyncpg.Connection) -> None:
    creator_id = await make_creator(db)
    post = await make_content(db, creator_id)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_report(db, creator_id, target_type="content", reported_content_id=post)
    assert info.value.constraint_name == "content_reports_not_self"


async def test_one_open_report_per_reporter_and_target(db: asyncpg.Connection) -> None:
    reporter, creator_id = await make_user(db), await make_creator(db)
    post = await make_content(db, creator_id)
    first = await make_report(db, reporter, target_type="content", reported_content_id=post)
    with pytest.raises(asyncpg.UniqueViolationError) as info:
        await make_report(
            db, reporter, target_type="content", reported_content_id=post, report_type="violence"
        )
    assert info.value.constraint_name == "content_reports_one_open_per_reporter"
    assert await make_report(
        db, await make_user(db), target_type="content", reported_content_id=post
    )
    assert await make_report(db, reporter, target_type="user", reported_user_id=creator_id)
    await db.execute(
        "UPDATE creator.content_reports SET status = 'dismissed', resolved_at = now()"
        " WHERE id = $1",
        first,
    )
    assert await make_report(db, reporter, target_type="content", reported_content_id=post)


async def test_report_outlives_its_reporter_and_its_purged_content(
    db: asyncpg.Connection,
) -> None:
    reporter, creator_id = await make_user(db), await make_creator(db)
    post = await make_content(db, creator_id)
    report_id = await make_report(db, reporter, target_type="content", reported_content_id=post)
    await db.execute("DELETE FROM creator.content WHERE id = $1", post)
    await db.execute("DELETE FROM creator.users WHERE id = $1", reporter)
    row = await db.fetchrow("SELECT * FROM creator.content_reports WHERE id = $1", report_id)
    assert (row["reporter_id"], row["reported_content_id"]) == (None, None)
    assert row["reported_user_id"] == creator_id


async def test_report_of_unknown_content_is_rejected(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError) as info:
        await make_report(
            db, await make_user(db), target_type="content", reported_content_id=uuid4()
        )
    assert info.value.constraint_name == "content_reports_reported_content_id_fkey"


async def test_report_update_moves_updated_at(db: asyncpg.Connection) -> None:
    past = await db_now(db, "-1 day")
    report_id = await make_report(
        db,
        await make_user(db),
        target_type="user",
        reported_user_id=await make_creator(db),
        created_at=past,
        updated_at=past,
    )
    await db.execute(
        "UPDATE creator.content_reports SET priority = 'high' WHERE id = $1", report_id
    )
    assert await column(db, "content_reports", "updated_at", report_id) > past


# -- content_moderation_actions -------------------------------------------------------------------


async def act(db: asyncpg.Connection, moderator: UUID | None, **fields: Any) -> UUID:
    values: dict[str, Any] = {"moderator_id": moderator, **fields}
    if moderator is None:
        values.setdefault("is_automated", True)
        values.setdefault("ai_model", "nsfw-v3")
        values.setdefault("confidence_score", 0.97)
    return await insert(db, "content_moderation_actions", **values)


@pytest.fixture
async def post(db: asyncpg.Connection) -> UUID:
    return await make_content(db, await make_creator(db))


@pytest.mark.parametrize(
    ("action", "column_name", "value"),
    [
        ("approve", "moderation_status", "approved"),
        ("reject", "moderation_status", "rejected"),
        ("remove", "moderation_status", "removed"),
        ("flag", "moderation_status", "flagged"),
        ("age_restrict", "is_age_restricted", True),
        ("shadow_ban", "is_shadow_banned", True),
        ("require_warning", "content_warning", "graphic"),
    ],
)
async def test_content_action_takes_effect_on_the_content(
    db: asyncpg.Connection, moderator: UUID, post: UUID, action: str, column_name: str, value: Any
) -> None:
    await act(
        db, moderator, target_type="content", content_id=post, action=action, warning_text="graphic"
    )
    assert await column(db, "content", column_name, post) == value


async def test_later_actions_keep_earlier_restrictions(
    db: asyncpg.Connection, moderator: UUID, post: UUID
) -> None:
    await act(db, moderator, target_type="content", content_id=post, action="age_restrict")
    await act(db, moderator, target_type="content", content_id=post, action="approve")
    row = await db.fetchrow("SELECT * FROM creator.content WHERE id = $1", post)
    assert (row["moderation_status"], row["is_age_restricted"]) == ("approved", True)


async def test_removing_a_message_deletes_it_and_its_unread_count(
    db: asyncpg.Connection, moderator: UUID
) -> None:
    chat = await Chat.open(db)
    message_id = await chat.send(chat.creator_id)
    await act(db, moderator, target_type="message", message_id=message_id, action="remove")
    row = await db.fetchrow("SELECT * FROM creator.messages WHERE id = $1", message_id)
    assert (row["is_deleted"], row["deleted_by"]) == (True, moderator)
    assert await chat.unread() == (0, 0)


async def test_flagging_a_message_leaves_it(db: asyncpg.Connection, moderator: UUID) -> None:
    chat = await Chat.open(db)
    message_id = await chat.send(chat.creator_id)
    await act(db, moderator, target_type="message", message_id=message_id, action="flag")
    assert await column(db, "messages", "is_deleted", message_id) is False


@pytest.mark.parametrize(
    ("action", "status", "deleted"),
    [("approve", "approved", False), ("flag", "flagged", False), ("remove", "removed", True)],
)
async def test_comment_action_takes_effect_on_the_comment(
    db: asyncpg.Connection, moderator: UUID, post: UUID, action: str, status: str, deleted: bool
) -> None:
    comment = await insert(db, "comments", content_id=post, user_id=await make_user(db), body="x")
    await act(db, moderator, target_type="comment", comment_id=comment, action=action)
    row = await db.fetchrow("SELECT * FROM creator.comments WHERE id = $1", comment)
    assert row["moderation_status"] == status
    assert (row["deleted_at"] is not None) is deleted
    assert row["deleted_by"] == (moderator if deleted else None)


@pytest.mark.parametrize("target_type", ["content", "message", "comment"])
async def test_action_must_name_its_target(
    db: asyncpg.Connection, moderator: UUID, target_type: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await act(db, moderator, target_type=target_type, action="flag")
    assert info.value.constraint_name == "content_moderation_actions_target_required"


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"action": "delete"}, "content_moderation_actions_action_valid"),
        (
            {"target_type": "user", "content_id": None},
            "content_moderation_actions_target_type_valid",
        ),
        (
            {"target_type": "message", "message_id": None},
            "content_moderation_actions_content_matches_target",
        ),
        (
            {"is_automated": True, "ai_model": "m", "confidence_score": 0.9},
            "content_moderation_actions_actor",
        ),
        ({"action": "require_warning"}, "content_moderation_actions_warning_has_text"),
        ({"confidence_score": 1.5}, "content_moderation_actions_confidence_score_range"),
        ({"confidence_score": -0.1}, "content_moderation_actions_confidence_score_range"),
        ({"reviewed_by": "moderator"}, "content_moderation_actions_reviewed_has_time"),
    ],
)
async def test_inconsistent_action_is_rejected(
    db: asyncpg.Connection, moderator: UUID, post: UUID, fields: dict[str, Any], constraint: str
) -> None:
    if fields.get("reviewed_by") == "moderator":
        fields["reviewed_by"] = moderator
    values: dict[str, Any] = {"target_type": "content", "content_id": post, "action": "flag"}
    values.update(fields)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await act(db, moderator, **values)
    assert info.value.constraint_name == constraint


@pytest.mark.parametrize(
    ("name", "constraint"),
    [
        ("message_id", "content_moderation_actions_message_matches_target"),
        ("comment_id", "content_moderation_actions_comment_matches_target"),
    ],
)
async def test_action_item_column_only_for_its_target_type(
    db: asyncpg.Connection, moderator: UUID, post: UUID, name: str, constraint: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await act(
            db, moderator, target_type="content", content_id=post, action="flag", **{name: uuid4()}
        )
    assert info.value.constraint_name == constraint


@pytest.mark.parametrize("action", ["reject", "age_restrict", "shadow_ban", "require_warning"])
async def test_messages_and_comments_are_only_approved_flagged_or_removed(
    db: asyncpg.Connection, moderator: UUID, action: str
) -> None:
    chat = await Chat.open(db)
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await act(
            db,
            moderator,
            target_type="message",
            message_id=await chat.send(),
            action=action,
            warning_text="w",
        )
    assert info.value.constraint_name == "content_moderation_actions_action_fits_target"


async def test_human_action_names_its_moderator(db: asyncpg.Connection, post: UUID) -> None:
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "content_moderation_actions_actor",
        "content_moderation_actions",
        target_type="content",
        content_id=post,
        action="flag",
    )


@pytest.mark.parametrize("missing", ["ai_model", "confidence_score"])
async def test_automated_action_names_its_model_and_confidence(
    db: asyncpg.Connection, post: UUID, missing: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await act(
            db, None, target_type="content", content_id=post, action="flag", **{missing: None}
        )
    assert info.value.constraint_name == "content_moderation_actions_automated_has_model"


async def test_automated_flag_escalated_to_human_review(
    db: asyncpg.Connection, moderator: UUID, post: UUID
) -> None:
    action_id = await act(
        db,
        None,
        target_type="content",
        content_id=post,
        action="flag",
        confidence_score=0.55,
        requires_human_review=True,
    )
    queued = await db.fetchval(
        "SELECT id FROM creator.content_moderation_actions"
        " WHERE requires_human_review AND reviewed_at IS NULL"
    )
    assert queued == action_id
    await db.execute(
        "UPDATE creator.content_moderation_actions SET reviewed_by = $2, reviewed_at = now()"
        " WHERE id = $1",
        action_id,
        moderator,
    )
    assert await column(db, "content", "moderation_status", post) == "flagged"


async def test_hard_deleting_a_moderator_with_actions_fails(
    db: asyncpg.Connection, moderator: UUID, post: UUID
) -> None:
    await act(db, moderator, target_type="content", content_id=post, action="approve")
    await fails(
        db,
        asyncpg.ForeignKeyViolationError,
        "content_moderation_actions_moderator_id_fkey",
        "DELETE FROM creator.users WHERE id = $1",
        moderator,
    )


async def test_action_outlives_its_report_and_its_purged_content(
    db: asyncpg.Connection, moderator: UUID, post: UUID
) -> None:
    report = await make_report(
        db, await make_user(db), target_type="content", reported_content_id=post
    )
    action_id = await act(
        db, moderator, target_type="content", content_id=post, action="remove", report_id=report
    )
    await db.execute("DELETE FROM creator.content_reports WHERE id = $1", report)
    await db.execute("DELETE FROM creator.content WHERE id = $1", post)
    row = await db.fetchrow(
        "SELECT * FROM creator.content_moderation_actions WHERE id = $1", action_id
    )
    assert (row["report_id"], row["content_id"], row["action"]) == (None, None, "remove")


async def test_action_update_moves_updated_at(
    db: asyncpg.Connection, moderator: UUID, post: UUID
) -> None:
    past = await db_now(db, "-1 day")
    action_id = await act(
        db,
        moderator,
        target_type="content",
        content_id=post,
        action="flag",
        created_at=past,
        updated_at=past,
    )
    await db.execute(
        "UPDATE creator.content_moderation_actions SET reason = 'x' WHERE id = $1", action_id
    )
    assert await column(db, "content_moderation_actions", "updated_at", action_id) > past


# -- user_violations ------------------------------------------------------------------------------


async def account(db: asyncpg.Connection, user_id: UUID) -> tuple[str, Any]:
    row = await db.fetchrow(
        "SELECT account_status, suspended_until FROM creator.users WHERE id = $1", user_id
    )
    return row["account_status"], row["suspended_until"]


@pytest.mark.parametrize("violation_type", REPORT_TYPES)
async def test_documented_violation_type_is_accepted(
    db: asyncpg.Connection, violation_type: str
) -> None:
    assert await make_violation(db, await make_user(db), violation_type=violation_type)


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"violation_type": "fraud"}, "user_violations_violation_type_valid"),
        ({"severity": "severe"}, "user_violations_severity_valid"),
        ({"enforcement_action": "shadow_ban"}, "user_violations_enforcement_action_valid"),
        ({"status": "pending"}, "user_violations_status_valid"),
        ({"evidence": "text"}, "user_violations_evidence_json"),
        ({"enforcement_action": "temporary_suspension"}, "user_violations_suspension_has_end"),
        (
            {"enforcement_action": "permanent_ban", "ends_at": "later"},
            "user_violations_ban_has_no_end",
        ),
        ({"ends_at": "earlier"}, "user_violations_ends_after_start"),
        (
            {"enforcement_action": "feature_restriction"},
            "user_violations_restricted_features_match_action",
        ),
        (
            {"enforcement_action": "feature_restriction", "restricted_features": []},
            "user_violations_restricted_features_match_action",
        ),
        (
            {"restricted_features": ["messaging"]},
            "user_violations_restricted_features_match_action",
        ),
    ],
)
async def test_inconsistent_violation_is_rejected(
    db: asyncpg.Connection, fields: dict[str, Any], constraint: str
) -> None:
    now = await db_now(db)
    moments = {"later": now + timedelta(days=1), "earlier": now - timedelta(days=1)}
    values = {k: moments.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await make_violation(db, await make_user(db), starts_at=now, **values)
    assert info.value.constraint_name == constraint


@pytest.mark.parametrize("severity", ["low", "medium", "high", "critical"])
async def test_documented_severity_is_accepted(db: asyncpg.Connection, severity: str) -> None:
    assert await make_violation(db, await make_user(db), severity=severity, evidence=[{"a": 1}])


async def test_warning_leaves_the_account_active(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await make_violation(db, user_id)
    assert await account(db, user_id) == ("active", None)


async def test_permanent_ban_bans_the_account(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await make_violation(
        db,
        user_id,
        enforcement_action="permanent_ban",
        severity="critical",
        description="underage content",
    )
    assert await account(db, user_id) == ("banned", None)
    assert await column(db, "users", "status_reason", user_id) == "underage content"


async def test_suspension_lasts_until_the_latest_end(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    week, day = await db_now(db, "7 days"), await db_now(db, "1 day")
    await make_violation(db, user_id, enforcement_action="temporary_suspension", ends_at=week)
    assert await account(db, user_id) == ("suspended", week)
    await make_violation(db, user_id, enforcement_action="temporary_suspension", ends_at=day)
    assert await account(db, user_id) == ("suspended", week)


async def test_suspension_never_lifts_a_ban(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await make_violation(db, user_id, enforcement_action="permanent_ban")
    await make_violation(
        db, user_id, enforcement_action="temporary_suspension", ends_at=await db_now(db, "1 day")
    )
    assert await account(db, user_id) == ("banned", None)


@pytest.mark.parametrize("status", ["expired", "overturned", "appealed"])
async def test_violation_recorded_inactive_changes_nothing(
    db: asyncpg.Connection, status: str
) -> None:
    user_id = await make_user(db)
    await make_violation(db, user_id, enforcement_action="permanent_ban", status=status)
    assert await account(db, user_id) == ("active", None)


async def test_suspension_already_over_changes_nothing(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    await make_violation(
        db,
        user_id,
        enforcement_action="temporary_suspension",
        starts_at=await db_now(db, "-2 days"),
        ends_at=await db_now(db, "-1 day"),
    )
    assert await account(db, user_id) == ("active", None)


async def restricted(db: asyncpg.Connection, user_id: UUID, feature: str) -> bool:
    result: bool = await db.fetchval(
        "SELECT creator.has_feature_restriction($1, $2)", user_id, feature
    )
    return result


async def test_feature_restriction_applies_to_its_features_while_in_force(
    db: asyncpg.Connection,
) -> None:
    user_id = await make_user(db)
    violation = await make_violation(
        db,
        user_id,
        enforcement_action="feature_restriction",
        restricted_features=["messaging", "tipping"],
        ends_at=await db_now(db, "1 day"),
    )
    assert await restricted(db, user_id, "messaging") is True
    assert await restricted(db, user_id, "live_streaming") is False
    assert await account(db, user_id) == ("active", None)
    await db.execute(
        "UPDATE creator.user_violations SET status = 'overturned' WHERE id = $1", violation
    )
    assert await restricted(db, user_id, "messaging") is False


@pytest.mark.parametrize(("starts", "ends"), [("-2 days", "-1 day"), ("1 day", "2 days")])
async def test_feature_restriction_outside_its_time_does_not_apply(
    db: asyncpg.Connection, starts: str, ends: str
) -> None:
    user_id = await make_user(db)
    await make_violation(
        db,
        user_id,
        enforcement_action="feature_restriction",
        restricted_features=["messaging"],
        starts_at=await db_now(db, starts),
        ends_at=await db_now(db, ends),
    )
    assert await restricted(db, user_id, "messaging") is False


async def test_lift_expired_suspensions_reinstates_only_due_accounts(
    db: asyncpg.Connection,
) -> None:
    due, later, banned = [await make_user(db) for _ in range(3)]
    tomorrow = await db_now(db, "1 day")
    for user_id in (due, later):
        await make_violation(
            db, user_id, enforcement_action="temporary_suspension", ends_at=tomorrow
        )
    await make_violation(db, banned, enforcement_action="permanent_ban")
    # A day passes for `due` alone.
    await db.execute(
        "UPDATE creator.user_violations SET starts_at = starts_at - interval '2 days',"
        " ends_at = ends_at - interval '2 days' WHERE user_id = $1",
        due,
    )
    await db.execute(
        "UPDATE creator.users SET suspended_until = suspended_until - interval '2 days'"
        " WHERE id = $1",
        due,
    )
    assert await db.fetchval("SELECT creator.lift_expired_suspensions()") == 1
    assert await account(db, due) == ("active", None)
    assert await column(db, "users", "status_reason", due) is None
    assert (await account(db, later))[0] == "suspended"
    assert (await account(db, banned))[0] == "banned"
    statuses = await db.fetch(
        "SELECT user_id, status FROM creator.user_violations ORDER BY created_at"
    )
    assert {r["user_id"]: r["status"] for r in statuses} == {
        due: "expired",
        later: "active",
        banned: "active",
    }


async def test_violations_go_with_their_user_and_outlive_their_report_and_issuer(
    db: asyncpg.Connection, moderator: UUID
) -> None:
    offender = await make_creator(db)
    report = await make_report(
        db, await make_user(db), target_type="user", reported_user_id=offender
    )
    violation = await make_violation(db, offender, report_id=report, issued_by=moderator)
    await db.execute("DELETE FROM creator.content_reports WHERE id = $1", report)
    await db.execute("DELETE FROM creator.users WHERE id = $1", moderator)
    row = await db.fetchrow("SELECT * FROM creator.user_violations WHERE id = $1", violation)
    assert (row["report_id"], row["issued_by"]) == (None, None)
    await db.execute("DELETE FROM creator.users WHERE id = $1", offender)
    assert await db.fetchval("SELECT count(*) FROM creator.user_violations") == 0


async def test_violation_update_moves_updated_at(db: asyncpg.Connection) -> None:
    past = await db_now(db, "-1 day")
    violation = await make_violation(
        db, await make_user(db), starts_at=past, created_at=past, updated_at=past
    )
    await db.execute(
        "UPDATE creator.user_violations SET status = 'appealed' WHERE id = $1", violation
    )
    assert await column(db, "user_violations", "updated_at", violation) > past


# -- notifications --------------------------------------------------------------------------------

NOTIFICATION_TYPES = [
    "new_subscriber",
    "content_like",
    "content_comment",
    "new_message",
    "premium_message_purchased",
    "tip_received",
    "stream_starting",
    "new_content",
    "content_approved",
    "content_removed",
    "moderation_action",
    "system_announcement",
]


async def notify(db: asyncpg.Connection, user_id: UUID, **fields: Any) -> UUID:
    values: dict[str, Any] = {
        "user_id": user_id,
        "notification_type": "tip_received",
        "title": "You got a tip",
        **fields,
    }
    return await insert(db, "notifications", **values)


async def test_notification_defaults_to_in_app_only(db: asyncpg.Connection) -> None:
    row = await db.fetchrow(
        "SELECT * FROM creator.notifications WHERE id = $1", await notify(db, await make_user(db))
    )
    assert (row["send_in_app"], row["send_push"], row["send_email"]) == (True, False, False)
    assert row["read_at"] is None and row["data"] == {}


@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
async def test_documented_notification_type_is_accepted(
    db: asyncpg.Connection, notification_type: str
) -> None:
    assert await notify(db, await make_user(db), notification_type=notification_type)


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"notification_type": "promo"}, "notifications_notification_type_valid"),
        ({"title": " "}, "notifications_title_not_blank"),
        ({"data": [1]}, "notifications_data_object"),
        ({"send_in_app": False}, "notifications_some_channel"),
        ({"push_sent_at": "now"}, "notifications_push_sent_only_if_requested"),
        ({"email_sent_at": "now"}, "notifications_email_sent_only_if_requested"),
    ],
)
async def test_inconsistent_notification_is_rejected(
    db: asyncpg.Connection, fields: dict[str, Any], constraint: str
) -> None:
    now = await db_now(db)
    values = {k: now if v == "now" else v for k, v in fields.items()}
    with pytest.raises(asyncpg.CheckViolationError) as info:
        await notify(db, await make_user(db), **values)
    assert info.value.constraint_name == constraint


async def test_notification_goes_with_its_user_and_loses_its_actor(
    db: asyncpg.Connection,
) -> None:
    user_id, actor, other = await make_creator(db), await make_user(db), await make_user(db)
    kept = await notify(db, other, actor_id=actor, send_push=True, push_sent_at=await db_now(db))
    await notify(db, user_id)
    await db.execute("DELETE FROM creator.users WHERE id = ANY($1::uuid[])", [user_id, actor])
    assert await db.fetchval("SELECT count(*) FROM creator.notifications") == 1
    assert await column(db, "notifications", "actor_id", kept) is None


async def test_notification_update_moves_updated_at(db: asyncpg.Connection) -> None:
    past = await db_now(db, "-1 day")
    notification = await notify(db, await make_user(db), created_at=past, updated_at=past)
    await db.execute("UPDATE creator.notifications SET read_at = now() WHERE id = $1", notification)
    assert await column(db, "notifications", "updated_at", notification) > past


# -- system_logs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "critical"])
async def test_documented_log_level_is_accepted(db: asyncpg.Connection, level: str) -> None:
    assert await insert(
        db,
        "system_logs",
        level=level,
        message="m",
        service="gateway",
        component="fanout",
        stack_trace="Traceback ..." if level in ("error", "critical") else None,
        request_id="req-1",
        session_id="sess-1",
        metadata={"conversation_id": str(uuid4())},
    )


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"level": "fatal"}, "system_logs_level_valid"),
        ({"metadata": []}, "system_logs_metadata_object"),
    ],
)
async def test_malformed_log_is_rejected(
    db: asyncpg.Connection, fields: dict[str, Any], constraint: str
) -> None:
    values: dict[str, Any] = {"level": "info", "message": "m", "service": "api"}
    values.update(fields)
    await rejects(db, asyncpg.CheckViolationError, constraint, "system_logs", **values)


@pytest.mark.parametrize("name", ["level", "message", "service"])
async def test_log_required_column_cannot_be_null(db: asyncpg.Connection, name: str) -> None:
    values: dict[str, Any] = {"level": "info", "message": "m", "service": "api"}
    values[name] = None
    await rejects(db, asyncpg.NotNullViolationError, None, "system_logs", **values)


async def test_log_outlives_its_user(db: asyncpg.Connection) -> None:
    user_id = await make_user(db)
    log_id = await insert(
        db, "system_logs", level="info", message="login", service="api", user_id=user_id
    )
    await db.execute("DELETE FROM creator.users WHERE id = $1", user_id)
    assert await column(db, "system_logs", "user_id", log_id) is None
