"""Analyst profiles over HTTP: the analyst's own profile, discovery, one profile, and the
admins' verification queue and decisions, with every authorisation boundary."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from kernel.tokens import sign_access_token
from tests.factories import make_analyst, make_user

DOCS = [{"document_type": "sebi_certificate", "url": "https://files.example.com/sebi.pdf"}]


async def _json(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json() if status != 204 else None


def _auth(secret: str, user_id: uuid.UUID) -> dict[str, str]:
    token = sign_access_token(secret, str(user_id), "analyst", 600)
    return {"Authorization": f"Bearer {token}"}


def _sebi() -> str:
    return "INH" + str(uuid.uuid4().int)[:9]


async def _approved(db: asyncpg.Connection, **fields: Any) -> uuid.UUID:
    return await make_analyst(db, verification_status="approved", sebi_number=_sebi(), **fields)


async def _message(response: Any, status: int) -> str:
    body = await _json(response, status)
    return str(body["error"]["message"])


# --- the analyst's own profile ----------------------------------------------------------------


async def test_an_analyst_without_a_profile_creates_one_that_starts_pending(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_user(db, user_type="analyst")
    body = {
        "display_name": "  Rajesh Calls ",
        "bio": "Options since 2010.",
        "photo_url": "https://cdn.example.com/r.png",
        "specializations": ["Options", "Intraday"],
        "languages": ["English", "Hindi"],
        "sebi_number": " inh000012345 ",
        "verification_documents": DOCS,
    }
    profile = await _json(
        await api.post("/v1/me/profile", json=body, headers=_auth(secret, analyst)), 201
    )
    assert profile["analyst_id"] == str(analyst)
    assert profile["display_name"] == "Rajesh Calls"
    assert profile["verification_status"] == "pending" and profile["verified_at"] is None
    assert profile["country"] == "IN" and profile["sebi_number"] == "INH000012345"
    assert profile["avg_rating"] == 0 and profile["total_subscribers"] == 0
    assert profile["private"]["verification_documents"][0]["url"] == DOCS[0]["url"]
    own = await _json(await api.get("/v1/me/profile", headers=_auth(secret, analyst)), 200)
    assert own == profile


async def test_an_analyst_cannot_create_a_second_profile(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    response = await api.post(
        "/v1/me/profile", json={"display_name": "Again"}, headers=_auth(secret, analyst)
    )
    assert "already have a profile" in await _message(response, 409)


@pytest.mark.parametrize("user_type", ["trader", "admin"])
async def test_only_analysts_create_and_edit_profiles(
    api: TestClient, db: asyncpg.Connection, secret: str, user_type: str
) -> None:
    user = await make_user(db, user_type=user_type)
    headers = _auth(secret, user)
    await _json(await api.post("/v1/me/profile", json={"display_name": "X"}, headers=headers), 403)
    await _json(await api.patch("/v1/me/profile", json={"bio": "x"}, headers=headers), 403)
    await _json(await api.get("/v1/me/profile", headers=headers), 404)


async def test_every_profile_route_refuses_an_unauthenticated_caller(api: TestClient) -> None:
    somebody = uuid.uuid4()
    for method, path, body in [
        ("GET", "/v1/me/profile", None),
        ("POST", "/v1/me/profile", {"display_name": "X"}),
        ("PATCH", "/v1/me/profile", {}),
        ("GET", "/v1/analysts", None),
        ("GET", f"/v1/analysts/{somebody}", None),
        ("GET", "/v1/admin/verification-queue", None),
        ("POST", f"/v1/admin/analysts/{somebody}/review", None),
        ("POST", f"/v1/admin/analysts/{somebody}/approve", None),
        ("POST", f"/v1/admin/analysts/{somebody}/reject", {"rejection_reason": "x"}),
    ]:
        error = await _json(await api.request(method, path, json=body), 401)
        assert error["error"]["code"] == "unauthorized", (method, path)


async def test_a_sebi_or_ria_number_of_another_analyst_is_a_conflict_whatever_its_case(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    await make_analyst(db, sebi_number="INH000000001", ria_number="RIA-42")
    newcomer = await make_user(db, user_type="analyst")
    headers = _auth(secret, newcomer)
    message = await _message(
        await api.post(
            "/v1/me/profile",
            json={"display_name": "N", "sebi_number": "inh000000001"},
            headers=headers,
        ),
        409,
    )
    assert "SEBI number" in message
    await _json(await api.post("/v1/me/profile", json={"display_name": "N"}, headers=headers), 201)
    message = await _message(
        await api.patch("/v1/me/profile", json={"ria_number": "ria-42"}, headers=headers), 409
    )
    assert "RIA number" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bio", "x" * 2001),
        ("display_name", "   "),
        ("display_name", "x" * 256),
        ("country", "in"),
        ("photo_url", "ftp://example.com/x.png"),
        ("specializations", ["Options", ""]),
        ("languages", "English"),
        ("sebi_number", "x" * 51),
        ("verification_documents", [{"url": "https://x.example.com/a.pdf"}]),
        ("verification_documents", {"document_type": "pan"}),
    ],
)
async def test_malformed_profile_fields_are_refused_naming_the_field(
    api: TestClient, db: asyncpg.Connection, secret: str, field: str, value: Any
) -> None:
    analyst = await make_user(db, user_type="analyst")
    body = {"display_name": "Fine", field: value}
    message = await _message(
        await api.post("/v1/me/profile", json=body, headers=_auth(secret, analyst)), 400
    )
    assert field in message


async def test_a_bio_of_exactly_2000_characters_is_accepted(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    profile = await _json(
        await api.patch("/v1/me/profile", json={"bio": "₹" * 2000}, headers=_auth(secret, analyst)),
        200,
    )
    assert len(profile["bio"]) == 2000


@pytest.mark.parametrize(
    "field",
    [
        "avg_rating",
        "total_reviews",
        "total_subscribers",
        "active_subscribers",
        "total_posts",
        "monthly_revenue",
        "commission_rate",
        "verification_status",
        "verified_at",
        "is_featured",
    ],
)
async def test_counters_and_verification_fields_cannot_be_written_by_the_analyst(
    api: TestClient, db: asyncpg.Connection, secret: str, field: str
) -> None:
    analyst = await make_analyst(db)
    message = await _message(
        await api.patch("/v1/me/profile", json={field: 5}, headers=_auth(secret, analyst)), 400
    )
    assert field in message
    assert await db.fetchval(
        "SELECT avg_rating = 0 AND verification_status = 'pending' AND NOT is_featured"
        " FROM analyst.analyst_profiles WHERE user_id = $1",
        analyst,
    )


async def test_editing_changes_only_the_fields_given_and_null_clears_a_field(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(
        db, bio="old bio", languages=["English"], photo_url="https://x.example.com/p.png"
    )
    headers = _auth(secret, analyst)
    profile = await _json(
        await api.patch(
            "/v1/me/profile",
            json={"bio": "new bio", "photo_url": None, "country": "US"},
            headers=headers,
        ),
        200,
    )
    assert profile["bio"] == "new bio" and profile["photo_url"] is None
    assert profile["country"] == "US" and profile["languages"] == ["English"]
    unchanged = await _json(await api.patch("/v1/me/profile", json={}, headers=headers), 200)
    assert unchanged["bio"] == "new bio"


async def test_editing_without_a_profile_is_not_found(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_user(db, user_type="analyst")
    await _json(
        await api.patch("/v1/me/profile", json={"bio": "x"}, headers=_auth(secret, analyst)), 404
    )


async def test_a_new_sebi_number_on_an_approved_profile_sends_it_back_to_pending(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    reviewer = await make_user(db, user_type="admin")
    analyst = await _approved(db, verified_at=datetime.now(UTC), verified_by=reviewer)
    profile = await _json(
        await api.patch(
            "/v1/me/profile", json={"sebi_number": _sebi()}, headers=_auth(secret, analyst)
        ),
        200,
    )
    assert profile["verification_status"] == "pending"
    assert profile["verified_at"] is None and profile["private"]["verified_by"] is None


async def test_new_documents_on_an_approved_profile_send_it_back_to_pending(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await _approved(db)
    profile = await _json(
        await api.patch(
            "/v1/me/profile",
            json={"verification_documents": DOCS},
            headers=_auth(secret, analyst),
        ),
        200,
    )
    assert profile["verification_status"] == "pending"


async def test_unchanged_credentials_and_other_edits_keep_an_approved_profile_approved(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await _approved(db, verification_documents=DOCS)
    number = await db.fetchval(
        "SELECT sebi_number FROM analyst.analyst_profiles WHERE user_id = $1", analyst
    )
    profile = await _json(
        await api.patch(
            "/v1/me/profile",
            json={
                "display_name": "Renamed",
                "bio": "new",
                "sebi_number": number.lower(),
                "verification_documents": DOCS,
            },
            headers=_auth(secret, analyst),
        ),
        200,
    )
    assert profile["verification_status"] == "approved"


async def test_a_rejected_profile_with_new_credentials_is_resubmitted_as_pending(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(
        db, verification_status="rejected", rejection_reason="certificate unreadable"
    )
    profile = await _json(
        await api.patch(
            "/v1/me/profile", json={"verification_documents": DOCS}, headers=_auth(secret, analyst)
        ),
        200,
    )
    assert profile["verification_status"] == "pending"
    assert profile["private"]["rejection_reason"] is None


# --- one profile ------------------------------------------------------------------------------


async def test_an_approved_profile_is_visible_to_any_user_without_its_private_part(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await _approved(db, verification_documents=DOCS)
    trader = await make_user(db)
    profile = await _json(
        await api.get(f"/v1/analysts/{analyst}", headers=_auth(secret, trader)), 200
    )
    assert profile["analyst_id"] == str(analyst) and profile["private"] is None
    assert profile["sebi_number"] is not None


@pytest.mark.parametrize("status", ["pending", "in_review", "rejected"])
async def test_an_unapproved_profile_is_visible_only_to_its_analyst_and_admins(
    api: TestClient, db: asyncpg.Connection, secret: str, status: str
) -> None:
    analyst = await make_analyst(db, verification_status=status)
    path = f"/v1/analysts/{analyst}"
    for other in (await make_user(db), await make_analyst(db), await _approved(db)):
        await _json(await api.get(path, headers=_auth(secret, other)), 404)
    own = await _json(await api.get(path, headers=_auth(secret, analyst)), 200)
    assert own["verification_status"] == status and own["private"] is not None
    admin = await make_user(db, user_type="admin")
    seen = await _json(await api.get(path, headers=_auth(secret, admin)), 200)
    assert seen["private"] is not None


async def test_a_deleted_profile_or_inactive_analyst_is_hidden_from_other_users(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    deleted = await _approved(db, deleted_at=datetime.now(UTC))
    inactive = await _approved(db)
    await db.execute("UPDATE analyst.users SET is_active = false WHERE id = $1", inactive)
    trader = _auth(secret, await make_user(db))
    await _json(await api.get(f"/v1/analysts/{deleted}", headers=trader), 404)
    await _json(await api.get(f"/v1/analysts/{inactive}", headers=trader), 404)
    await _json(await api.get("/v1/me/profile", headers=_auth(secret, deleted)), 404)
    await _json(await api.get(f"/v1/analysts/{deleted}", headers=_auth(secret, deleted)), 404)


async def test_one_profile_by_an_unknown_or_malformed_id(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    headers = _auth(secret, await make_user(db))
    await _json(await api.get(f"/v1/analysts/{uuid.uuid4()}", headers=headers), 404)
    message = await _message(await api.get("/v1/analysts/not-a-uuid", headers=headers), 400)
    assert "analyst_id" in message


# --- discovery --------------------------------------------------------------------------------


async def test_discovery_lists_only_approved_live_profiles(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    visible = await _approved(db)
    await make_analyst(db)  # pending
    await make_analyst(db, verification_status="in_review")
    await make_analyst(db, verification_status="rejected")
    await _approved(db, deleted_at=datetime.now(UTC))
    inactive = await _approved(db)
    await db.execute("UPDATE analyst.users SET is_active = false WHERE id = $1", inactive)
    page = await _json(await api.get("/v1/analysts", headers=_auth(secret, visible)), 200)
    assert [p["analyst_id"] for p in page["items"]] == [str(visible)]
    assert page["items"][0]["private"] is None and page["next_cursor"] is None


async def test_discovery_filters_by_specialization_language_country_and_minimum_rating(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    options = await _approved(
        db, specializations=["Options", "Intraday"], languages=["Hindi"], avg_rating=4.5
    )
    swing = await _approved(
        db, specializations=["Swing Trading"], languages=["English"], country="US", avg_rating=3
    )
    unlabelled = await _approved(db, avg_rating=4.8)
    headers = _auth(secret, await make_user(db))

    async def ids(query: str) -> set[str]:
        page = await _json(await api.get(f"/v1/analysts?{query}", headers=headers), 200)
        return {p["analyst_id"] for p in page["items"]}

    assert await ids("specialization=Options") == {str(options)}
    assert await ids("specialization=Swing%20Trading") == {str(swing)}
    assert await ids("language=English") == {str(swing)}
    assert await ids("country=US") == {str(swing)}
    assert await ids("country=IN") == {str(options), str(unlabelled)}
    assert await ids("min_rating=4.5") == {str(options), str(unlabelled)}
    assert await ids("min_rating=4.5&specialization=Intraday&language=Hindi") == {str(options)}
    assert await ids("specialization=Crypto") == set()


@pytest.mark.parametrize(
    "query", ["min_rating=6", "min_rating=high", "sort=newest", "country=india", "limit=0"]
)
async def test_discovery_refuses_malformed_filters_naming_them(
    api: TestClient, db: asyncpg.Connection, secret: str, query: str
) -> None:
    response = await api.get(f"/v1/analysts?{query}", headers=_auth(secret, await make_user(db)))
    assert query.split("=")[0] in await _message(response, 400)


async def test_discovery_sorts_by_rating_or_by_active_subscribers_descending(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    top_rated = await _approved(db, avg_rating=4.9, active_subscribers=5)
    popular = await _approved(db, avg_rating=3.1, active_subscribers=900)
    middle = await _approved(db, avg_rating=4.0, active_subscribers=50)
    headers = _auth(secret, await make_user(db))
    by_rating = await _json(await api.get("/v1/analysts", headers=headers), 200)
    assert [p["analyst_id"] for p in by_rating["items"]] == [
        str(top_rated),
        str(middle),
        str(popular),
    ]
    by_subscribers = await _json(
        await api.get("/v1/analysts?sort=subscribers", headers=headers), 200
    )
    assert [p["analyst_id"] for p in by_subscribers["items"]] == [
        str(popular),
        str(middle),
        str(top_rated),
    ]


async def test_discovery_pages_are_stable_with_ties_broken_by_id(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    ids = [await _approved(db, avg_rating=4.2) for _ in range(3)]
    ids += [await _approved(db, avg_rating=3.7) for _ in range(2)]
    expected = sorted(ids[:3], reverse=True) + sorted(ids[3:], reverse=True)
    headers = _auth(secret, await make_user(db))
    first = await _json(await api.get("/v1/analysts?limit=3", headers=headers), 200)
    assert [p["analyst_id"] for p in first["items"]] == [str(i) for i in expected[:3]]
    await _approved(db, avg_rating=5)  # a newcomer sorts before the cursor: page 2 is unchanged
    second = await _json(
        await api.get(f"/v1/analysts?limit=3&cursor={first['next_cursor']}", headers=headers), 200
    )
    assert [p["analyst_id"] for p in second["items"]] == [str(i) for i in expected[3:]]
    assert second["next_cursor"] is None


async def test_discovery_refuses_a_foreign_cursor_or_one_issued_for_another_sort(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    for _ in range(2):
        await _approved(db)
    headers = _auth(secret, await make_user(db))
    first = await _json(await api.get("/v1/analysts?limit=1", headers=headers), 200)
    await _json(await api.get("/v1/analysts?cursor=garbage", headers=headers), 400)
    await _json(
        await api.get(
            f"/v1/analysts?sort=subscribers&cursor={first['next_cursor']}", headers=headers
        ),
        400,
    )


# --- verification (admins) --------------------------------------------------------------------


async def test_the_verification_queue_is_for_admins_only(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    for user in (await make_user(db), await make_analyst(db)):
        await _json(await api.get("/v1/admin/verification-queue", headers=_auth(secret, user)), 403)


async def test_the_queue_lists_pending_and_in_review_profiles_oldest_first_in_pages(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    start = datetime.now(UTC) - timedelta(days=10)
    waiting = [
        await make_analyst(
            db,
            verification_status="in_review" if i % 2 else "pending",
            created_at=start + timedelta(days=i),
        )
        for i in range(3)
    ]
    await _approved(db, created_at=start)
    await make_analyst(db, verification_status="rejected", created_at=start)
    await make_analyst(db, deleted_at=datetime.now(UTC), created_at=start)
    headers = _auth(secret, await make_user(db, user_type="admin"))
    first = await _json(await api.get("/v1/admin/verification-queue?limit=2", headers=headers), 200)
    assert [p["analyst_id"] for p in first["items"]] == [str(i) for i in waiting[:2]]
    assert first["items"][0]["private"] is not None
    second = await _json(
        await api.get(
            f"/v1/admin/verification-queue?limit=2&cursor={first['next_cursor']}", headers=headers
        ),
        200,
    )
    assert [p["analyst_id"] for p in second["items"]] == [str(waiting[2])]
    assert second["next_cursor"] is None
    in_review = await _json(
        await api.get("/v1/admin/verification-queue?status=in_review", headers=headers), 200
    )
    assert [p["analyst_id"] for p in in_review["items"]] == [str(waiting[1])]
    await _json(await api.get("/v1/admin/verification-queue?cursor=%%%", headers=headers), 400)
    message = await _message(
        await api.get("/v1/admin/verification-queue?status=approved", headers=headers), 400
    )
    assert "status" in message


async def _notifications(db: asyncpg.Connection, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT notification_type, message FROM analyst.notifications WHERE user_id = $1"
        " ORDER BY created_at",
        user_id,
    )


async def test_approval_records_when_and_by_whom(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db, sebi_number=_sebi(), rejection_reason="stale")
    reviewer = await make_user(db, user_type="admin")
    profile = await _json(
        await api.post(f"/v1/admin/analysts/{analyst}/approve", headers=_auth(secret, reviewer)),
        200,
    )
    assert profile["verification_status"] == "approved" and profile["verified_at"] is not None
    assert profile["private"]["verified_by"] == str(reviewer)
    assert profile["private"]["rejection_reason"] is None
    assert [n["notification_type"] for n in await _notifications(db, analyst)] == [
        "verification_approved"
    ]
    trader = _auth(secret, await make_user(db))
    await _json(await api.get(f"/v1/analysts/{analyst}", headers=trader), 200)
    again = await api.post(f"/v1/admin/analysts/{analyst}/approve", headers=_auth(secret, reviewer))
    assert "approved" in await _message(again, 409)


async def test_only_admins_decide_on_verification(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db, sebi_number=_sebi())
    for user in (analyst, await make_user(db), await _approved(db)):
        headers = _auth(secret, user)
        for action in ("review", "approve"):
            await _json(
                await api.post(f"/v1/admin/analysts/{analyst}/{action}", headers=headers), 403
            )
        await _json(
            await api.post(
                f"/v1/admin/analysts/{analyst}/reject",
                json={"rejection_reason": "no"},
                headers=headers,
            ),
            403,
        )
    assert (
        await db.fetchval(
            "SELECT verification_status FROM analyst.analyst_profiles WHERE user_id = $1", analyst
        )
        == "pending"
    )


async def test_an_admin_cannot_approve_a_profile_of_their_own(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    admin = await make_user(db, user_type="admin")
    await db.execute(
        "INSERT INTO analyst.analyst_profiles (user_id, display_name, sebi_number)"
        " VALUES ($1, 'Self', $2)",
        admin,
        _sebi(),
    )
    response = await api.post(f"/v1/admin/analysts/{admin}/approve", headers=_auth(secret, admin))
    assert "own profile" in await _message(response, 403)


async def test_approval_needs_a_sebi_or_ria_number(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    headers = _auth(secret, await make_user(db, user_type="admin"))
    response = await api.post(f"/v1/admin/analysts/{analyst}/approve", headers=headers)
    assert "SEBI or RIA" in await _message(response, 409)
    await db.execute(
        "UPDATE analyst.analyst_profiles SET ria_number = 'IA-7' WHERE user_id = $1", analyst
    )
    await _json(await api.post(f"/v1/admin/analysts/{analyst}/approve", headers=headers), 200)


async def test_rejection_needs_a_reason_and_clears_an_earlier_approval(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    admin = await make_user(db, user_type="admin")
    analyst = await _approved(db, verified_at=datetime.now(UTC), verified_by=admin)
    headers = _auth(secret, admin)
    path = f"/v1/admin/analysts/{analyst}/reject"
    assert "rejection_reason" in await _message(await api.post(path, json={}, headers=headers), 400)
    assert "rejection_reason" in await _message(
        await api.post(path, json={"rejection_reason": "   "}, headers=headers), 400
    )
    profile = await _json(
        await api.post(path, json={"rejection_reason": " SEBI number lapsed "}, headers=headers),
        200,
    )
    assert profile["verification_status"] == "rejected"
    assert profile["private"]["rejection_reason"] == "SEBI number lapsed"
    assert profile["verified_at"] is None and profile["private"]["verified_by"] is None
    [notice] = await _notifications(db, analyst)
    assert notice["notification_type"] == "verification_rejected"
    assert "SEBI number lapsed" in notice["message"]
    again = await api.post(path, json={"rejection_reason": "still"}, headers=headers)
    await _json(again, 409)
    trader = _auth(secret, await make_user(db))
    await _json(await api.get(f"/v1/analysts/{analyst}", headers=trader), 404)


async def test_review_takes_a_pending_profile_into_review_once(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db, sebi_number=_sebi())
    headers = _auth(secret, await make_user(db, user_type="admin"))
    path = f"/v1/admin/analysts/{analyst}/review"
    profile = await _json(await api.post(path, headers=headers), 200)
    assert profile["verification_status"] == "in_review"
    assert await _notifications(db, analyst) == []
    await _json(await api.post(path, headers=headers), 409)
    approved = await _json(
        await api.post(f"/v1/admin/analysts/{analyst}/approve", headers=headers), 200
    )
    assert approved["verification_status"] == "approved"
    assert len(await _notifications(db, analyst)) == 1


async def test_decisions_on_unknown_deleted_or_malformed_profiles(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    headers = _auth(secret, await make_user(db, user_type="admin"))
    deleted = await make_analyst(db, sebi_number=_sebi(), deleted_at=datetime.now(UTC))
    for target in (uuid.uuid4(), deleted):
        await _json(await api.post(f"/v1/admin/analysts/{target}/approve", headers=headers), 404)
    await _json(await api.post("/v1/admin/analysts/nope/approve", headers=headers), 400)


async def test_a_rejection_can_be_reconsidered_and_every_decision_notifies_the_analyst(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db, sebi_number=_sebi())
    headers = _auth(secret, await make_user(db, user_type="admin"))
    base = f"/v1/admin/analysts/{analyst}"
    await _json(
        await api.post(f"{base}/reject", json={"rejection_reason": "blurry"}, headers=headers), 200
    )
    await _json(await api.post(f"{base}/approve", headers=headers), 200)
    await _json(
        await api.post(f"{base}/reject", json={"rejection_reason": "lapsed"}, headers=headers), 200
    )
    assert [n["notification_type"] for n in await _notifications(db, analyst)] == [
        "verification_rejected",
        "verification_approved",
        "verification_rejected",
    ]
