"""Support tickets over HTTP: users open and follow their own, staff triage and work them
through the lifecycle, and every move by staff notifies the ticket's user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from kernel.tokens import sign_access_token
from tests.factories import insert_row, make_user


def _auth(secret: str, user_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user_id), 'analyst', 600)}"}


async def _json(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json() if status != 204 else None


async def _ticket(db: asyncpg.Connection, user_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    return await insert_row(
        db, "support_tickets", {"user_id": user_id, "subject": "Help", **fields}
    )


async def _move(
    api: TestClient,
    secret: str,
    who: uuid.UUID,
    ticket: uuid.UUID | str,
    status: str,
    expect: int = 200,
    notes: str | None = None,
) -> Any:
    body: dict[str, Any] = {"status": status}
    if notes is not None:
        body["resolution_notes"] = notes
    return await _json(
        await api.post(
            f"/v1/support/tickets/{ticket}/status", json=body, headers=_auth(secret, who)
        ),
        expect,
    )


async def _notices(db: asyncpg.Connection, user_id: uuid.UUID) -> list[str]:
    rows = await db.fetch(
        "SELECT title FROM analyst.notifications WHERE user_id = $1 ORDER BY created_at, title",
        user_id,
    )
    return [r["title"] for r in rows]


# --- users ------------------------------------------------------------------------------------


async def test_user_opens_a_ticket_that_starts_open(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user = await make_user(db)
    ticket = await _json(
        await api.post(
            "/v1/support/tickets",
            json={
                "subject": "Payment failed",
                "description": "UPI said OK",
                "ticket_type": "payment_issue",
                "priority": "high",
                "related_entity_type": "payment_transaction",
                "related_entity_id": str(uuid.uuid4()),
                "attachments": [{"url": "https://files.example.com/a.png", "name": "a.png"}],
            },
            headers=_auth(secret, user),
        ),
        201,
    )
    assert ticket["user_id"] == str(user) and ticket["status"] == "open"
    assert ticket["ticket_type"] == "payment_issue" and ticket["priority"] == "high"
    assert ticket["attachments"] == [{"url": "https://files.example.com/a.png", "name": "a.png"}]
    assert ticket["assigned_to"] is None and ticket["resolved_at"] is None
    plain = await _json(
        await api.post("/v1/support/tickets", json={"subject": "Hi"}, headers=_auth(secret, user)),
        201,
    )
    assert (plain["ticket_type"], plain["priority"]) == ("other", "medium")


async def test_malformed_ticket_is_400_naming_the_field(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    headers = _auth(secret, await make_user(db))
    for body, field in (
        ({"subject": ""}, "subject"),
        ({"subject": "s" * 501}, "subject"),
        ({"subject": "x", "ticket_type": "billing"}, "ticket_type"),
        ({"subject": "x", "priority": "urgent"}, "priority"),
        ({"subject": "x", "attachments": [{"url": "http://plain.example.com"}]}, "url"),
        ({"subject": "x", "related_entity_type": "post"}, "related_entity_id"),
        ({"subject": "x", "status": "closed"}, "status"),
    ):
        error = await _json(await api.post("/v1/support/tickets", json=body, headers=headers), 400)
        assert field in error["error"]["message"], (field, error)
    assert await db.fetchval("SELECT count(*) FROM analyst.support_tickets") == 0


async def test_support_needs_a_login(api: TestClient) -> None:
    ticket = uuid.uuid4()
    for method, path, body in (
        ("POST", "/v1/support/tickets", {"subject": "x"}),
        ("GET", "/v1/support/tickets", None),
        ("GET", f"/v1/support/tickets/{ticket}", None),
        ("GET", "/v1/support/queue", None),
        ("PATCH", f"/v1/support/tickets/{ticket}", {"priority": "low"}),
        ("POST", f"/v1/support/tickets/{ticket}/status", {"status": "closed"}),
    ):
        assert (await api.request(method, path, json=body)).status == 401, path


async def test_users_list_only_their_own_tickets_newest_first_in_pages(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user, other = await make_user(db), await make_user(db)
    start = datetime.now(UTC) - timedelta(hours=1)
    ids = [await _ticket(db, user, created_at=start + timedelta(minutes=i)) for i in range(5)]
    await _ticket(db, other)
    headers = _auth(secret, user)
    first = await _json(await api.get("/v1/support/tickets?limit=2", headers=headers), 200)
    await _ticket(db, user)  # newer than the cursor: page two does not shift
    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor:
        page = await _json(
            await api.get(
                "/v1/support/tickets", params={"limit": 2, "cursor": cursor}, headers=headers
            ),
            200,
        )
        rest += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
    assert [t["id"] for t in first["items"]] + rest == [str(i) for i in reversed(ids)]
    assert (await api.get("/v1/support/tickets?cursor=%%%", headers=headers)).status == 400


async def test_users_filter_their_tickets_by_status(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user = await make_user(db)
    closed = await _ticket(db, user, status="closed")
    await _ticket(db, user)
    page = await _json(
        await api.get("/v1/support/tickets?status=closed", headers=_auth(secret, user)), 200
    )
    assert [t["id"] for t in page["items"]] == [str(closed)]
    bad = await api.get("/v1/support/tickets?status=done", headers=_auth(secret, user))
    assert "status" in (await _json(bad, 400))["error"]["message"]


async def test_another_users_ticket_is_not_found(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    owner, stranger = await make_user(db), await make_user(db)
    ticket = await _ticket(db, owner)
    headers = _auth(secret, stranger)
    assert (await api.get(f"/v1/support/tickets/{ticket}", headers=headers)).status == 404
    await _move(api, secret, stranger, ticket, "closed", expect=404)
    assert await db.fetchval("SELECT status FROM analyst.support_tickets") == "open"
    assert (await api.get("/v1/support/tickets/nope", headers=headers)).status == 400


async def test_user_may_close_their_ticket_from_any_state_but_closed(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user = await make_user(db)
    for status in ("open", "in_progress", "waiting_user", "escalated", "resolved"):
        ticket = await _ticket(db, user, status=status)
        closed = await _move(api, secret, user, ticket, "closed")
        assert closed["status"] == "closed" and closed["closed_at"]
        await _move(api, secret, user, ticket, "closed", expect=409)
        await _move(api, secret, user, ticket, "open", expect=409)
    assert await _notices(db, user) == []  # one's own moves notify nobody


async def test_user_reopens_a_resolved_ticket_which_clears_the_resolution_stamp(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user, agent = await make_user(db), await make_user(db, user_type="admin")
    ticket = await _ticket(db, user, status="in_progress")
    resolved = await _move(api, secret, agent, ticket, "resolved", notes="refunded")
    assert resolved["resolved_by"] == str(agent) and resolved["resolved_at"]
    reopened = await _move(api, secret, user, ticket, "open")
    assert reopened["status"] == "open" and reopened["resolved_at"] is None
    assert reopened["resolution_notes"] == "refunded"


async def test_user_hands_back_a_ticket_waiting_on_them_but_cannot_work_it(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user = await make_user(db)
    ticket = await _ticket(db, user, status="waiting_user")
    answered = await _move(api, secret, user, ticket, "in_progress")
    assert answered["status"] == "in_progress" and answered["last_response_at"]
    for status in ("waiting_user", "resolved", "escalated"):
        error = await _move(api, secret, user, ticket, status, expect=403, notes=None)
        assert "support staff" in error["error"]["message"]


# --- staff ------------------------------------------------------------------------------------


async def test_staff_take_a_ticket_through_its_lifecycle_and_the_user_hears_of_each_move(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user, agent = await make_user(db), await make_user(db, user_type="admin")
    ticket = await _ticket(db, user)
    for status in ("in_progress", "waiting_user", "in_progress"):
        moved = await _move(api, secret, agent, ticket, status)
        assert moved["status"] == status and moved["last_response_at"]
    resolved = await _move(api, secret, agent, ticket, "resolved", notes="fixed the mandate")
    assert resolved["resolved_by"] == str(agent) and resolved["resolution_notes"]
    closed = await _move(api, secret, agent, ticket, "closed")
    assert closed["closed_at"] and closed["resolved_at"] == resolved["resolved_at"]
    titles = await _notices(db, user)
    assert len(titles) == 5 and "Your ticket is now waiting user" in titles
    assert (
        await db.fetchval(
            "SELECT count(DISTINCT related_entity_id) FROM analyst.notifications"
            " WHERE user_id = $1 AND notification_type = 'support_ticket_updated'",
            user,
        )
        == 1
    )


async def test_staff_escalate_from_any_open_state(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user, agent = await make_user(db), await make_user(db, user_type="admin")
    for status in ("open", "in_progress", "waiting_user"):
        ticket = await _ticket(db, user, status=status)
        assert (await _move(api, secret, agent, ticket, "escalated"))["status"] == "escalated"
    for status in ("resolved", "closed"):
        ticket = await _ticket(db, user, status=status)
        await _move(api, secret, agent, ticket, "escalated", expect=409)


async def test_impossible_moves_are_409(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user, agent = await make_user(db), await make_user(db, user_type="admin")
    for current, target in (
        ("open", "closed"),  # staff close only what is resolved
        ("open", "open"),
        ("in_progress", "open"),
        ("closed", "in_progress"),
        ("closed", "open"),
        ("escalated", "open"),
    ):
        ticket = await _ticket(db, user, status=current)
        error = await _move(api, secret, agent, ticket, target, expect=409, notes=None)
        assert current in error["error"]["message"]


async def test_resolving_needs_notes_and_notes_go_with_resolving_only(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user, agent = await make_user(db), await make_user(db, user_type="admin")
    ticket = await _ticket(db, user, status="in_progress")
    error = await _move(api, secret, agent, ticket, "resolved", expect=400)
    assert "resolution_notes" in error["error"]["message"]
    await _move(api, secret, agent, ticket, "waiting_user", expect=400, notes="n")
    await _move(api, secret, agent, ticket, "finished", expect=400)
    assert await db.fetchval("SELECT status FROM analyst.support_tickets") == "in_progress"


async def test_queue_is_for_staff_only(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user = await make_user(db)
    ticket = await _ticket(db, user)
    headers = _auth(secret, user)
    assert (await api.get("/v1/support/queue", headers=headers)).status == 403
    patch = await api.patch(
        f"/v1/support/tickets/{ticket}", json={"priority": "critical"}, headers=headers
    )
    assert patch.status == 403
    assert await db.fetchval("SELECT priority FROM analyst.support_tickets") == "medium"


async def test_queue_filters_and_puts_critical_first_then_oldest(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user, agent = await make_user(db), await make_user(db, user_type="admin")
    t0 = datetime.now(UTC) - timedelta(days=1)
    low = await _ticket(db, user, priority="low", created_at=t0)
    critical_new = await _ticket(db, user, priority="critical", created_at=t0 + timedelta(hours=2))
    critical_old = await _ticket(db, user, priority="critical", created_at=t0 + timedelta(hours=1))
    mine = await _ticket(db, user, priority="medium", assigned_to=agent, status="in_progress")
    headers = _auth(secret, agent)
    first = await _json(await api.get("/v1/support/queue?limit=2", headers=headers), 200)
    second = await _json(
        await api.get(
            "/v1/support/queue",
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=headers,
        ),
        200,
    )
    assert [t["id"] for t in first["items"] + second["items"]] == [
        str(critical_old),
        str(critical_new),
        str(mine),
        str(low),
    ]
    for params, expected in (
        ({"priority": "critical"}, [critical_old, critical_new]),
        ({"status": "in_progress"}, [mine]),
        ({"assigned_to": str(agent)}, [mine]),
        ({"unassigned": "true", "priority": "low"}, [low]),
    ):
        page = await _json(await api.get("/v1/support/queue", params=params, headers=headers), 200)
        assert [t["id"] for t in page["items"]] == [str(i) for i in expected], params
    both = await api.get(
        "/v1/support/queue",
        params={"unassigned": "true", "assigned_to": str(agent)},
        headers=headers,
    )
    assert both.status == 400
    assert (await api.get("/v1/support/queue?cursor=abc", headers=headers)).status == 400


async def test_staff_assign_a_ticket_to_an_admin_and_unassign_it(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user, agent = await make_user(db), await make_user(db, user_type="admin")
    colleague = await make_user(db, user_type="admin")
    ticket = await _ticket(db, user)
    headers = _auth(secret, agent)
    assigned = await _json(
        await api.patch(
            f"/v1/support/tickets/{ticket}",
            json={"assigned_to": str(colleague), "priority": "high"},
            headers=headers,
        ),
        200,
    )
    assert assigned["assigned_to"] == str(colleague) and assigned["assigned_at"]
    assert assigned["priority"] == "high" and assigned["status"] == "open"
    reprioritised = await _json(
        await api.patch(f"/v1/support/tickets/{ticket}", json={"priority": "low"}, headers=headers),
        200,
    )
    assert reprioritised["assigned_at"] == assigned["assigned_at"]
    unassigned = await _json(
        await api.patch(
            f"/v1/support/tickets/{ticket}", json={"assigned_to": None}, headers=headers
        ),
        200,
    )
    assert unassigned["assigned_to"] is None and unassigned["assigned_at"] is None


async def test_assignee_must_be_staff_and_closed_tickets_are_not_triaged(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user, agent = await make_user(db), await make_user(db, user_type="admin")
    ticket = await _ticket(db, user)
    headers = _auth(secret, agent)
    url = f"/v1/support/tickets/{ticket}"
    error = await _json(await api.patch(url, json={"assigned_to": str(user)}, headers=headers), 400)
    assert "assigned_to" in error["error"]["message"]
    await _json(await api.patch(url, json={"assigned_to": str(uuid.uuid4())}, headers=headers), 400)
    await _json(await api.patch(url, json={}, headers=headers), 400)
    await _json(await api.patch(url, json={"priority": "urgent"}, headers=headers), 400)
    closed = await _ticket(db, user, status="closed")
    await _json(
        await api.patch(f"/v1/support/tickets/{closed}", json={"priority": "low"}, headers=headers),
        409,
    )
    await _json(
        await api.patch(
            f"/v1/support/tickets/{uuid.uuid4()}", json={"priority": "low"}, headers=headers
        ),
        404,
    )


async def test_staff_see_any_ticket(api: TestClient, db: asyncpg.Connection, secret: str) -> None:
    user, agent = await make_user(db), await make_user(db, user_type="admin")
    ticket = await _ticket(db, user)
    got = await _json(
        await api.get(f"/v1/support/tickets/{ticket}", headers=_auth(secret, agent)), 200
    )
    assert got["id"] == str(ticket)
