"""Chat channels over HTTP: an analyst's own channels (create, edit, archive, delete), who
sees which, and message history gated by the same rule as a socket join."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from kernel.tokens import sign_access_token
from tests.factories import insert_row, make_analyst, make_subscription, make_tier, make_user


def _auth(secret: str, user_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user_id), 'analyst', 600)}"}


async def _json(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json() if status != 204 else None


async def _channel(db: asyncpg.Connection, analyst_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    values = {"analyst_id": analyst_id, "channel_name": "Room", "channel_type": "community"}
    return await insert_row(db, "chat_channels", {**values, **fields})


async def _messages(
    db: asyncpg.Connection, channel: uuid.UUID, analyst: uuid.UUID, author: uuid.UUID, n: int
) -> list[uuid.UUID]:
    return [
        await insert_row(
            db,
            "chat_messages",
            {"channel_id": channel, "user_id": author, "analyst_id": analyst, "message": f"m{i}"},
        )
        for i in range(1, n + 1)
    ]


async def _create(
    api: TestClient, secret: str, who: uuid.UUID, status: int = 201, **body: Any
) -> Any:
    return await _json(
        await api.post(
            "/v1/channels",
            json={"channel_name": "Options desk", **body},
            headers=_auth(secret, who),
        ),
        status,
    )


async def _history(
    api: TestClient, secret: str, who: uuid.UUID, channel: uuid.UUID, status: int = 200, **q: Any
) -> Any:
    return await _json(
        await api.get(f"/v1/channels/{channel}/messages", params=q, headers=_auth(secret, who)),
        status,
    )


# --- managing one's channels ------------------------------------------------------------------


async def test_analyst_creates_a_channel_with_the_seeds_defaults(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    channel = await _create(api, secret, analyst, description="Weekly options talk")
    assert channel["analyst_id"] == str(analyst) and channel["channel_type"] == "community"
    assert channel["description"] == "Weekly options talk"
    assert (channel["is_active"], channel["is_archived"]) == (True, False)
    assert (channel["message_rate_limit"], channel["is_rate_limited"]) == (10, True)
    assert channel["require_subscription"] is True and channel["max_members"] is None


async def test_only_analysts_create_channels(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    for user_type in ("trader", "admin"):
        who = await make_user(db, user_type=user_type)
        await _create(api, secret, who, status=403)
    assert await db.fetchval("SELECT count(*) FROM analyst.chat_channels") == 0


async def test_minimum_tier_must_be_one_of_the_analysts_own_live_tiers(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, rival = await make_analyst(db), await make_analyst(db)
    own = await make_tier(db, analyst)
    gone = await make_tier(db, analyst, deleted_at=datetime.now(UTC))
    theirs = await make_tier(db, rival)
    for tier in (theirs, gone, uuid.uuid4()):
        error = await _create(api, secret, analyst, status=400, minimum_tier_required=str(tier))
        assert "minimum_tier_required" in error["error"]["message"]
    error = await _create(
        api, secret, analyst, status=400, minimum_tier_required=str(own), require_subscription=False
    )
    assert "require_subscription" in error["error"]["message"]
    made = await _create(api, secret, analyst, minimum_tier_required=str(own))
    assert made["minimum_tier_required"] == str(own)


async def test_malformed_channel_is_400_naming_the_field(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    for body, field in (
        ({"channel_name": ""}, "channel_name"),
        ({"channel_type": "broadcast"}, "channel_type"),
        ({"max_members": 0}, "max_members"),
        ({"message_rate_limit": 0}, "message_rate_limit"),
        ({"is_archived": True}, "is_archived"),
    ):
        error = await _create(api, secret, analyst, status=400, **body)
        assert field in error["error"]["message"], (field, error)


async def test_analyst_edits_their_channel_and_null_clears_a_field(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    tier = await make_tier(db, analyst)
    channel = await _channel(db, analyst, channel_description="old", max_members=50)
    edited = await _json(
        await api.patch(
            f"/v1/channels/{channel}",
            json={
                "channel_name": "Premium room",
                "channel_type": "premium",
                "description": None,
                "max_members": None,
                "message_rate_limit": 3,
                "minimum_tier_required": str(tier),
                "is_active": False,
            },
            headers=_auth(secret, analyst),
        ),
        200,
    )
    assert (edited["channel_name"], edited["channel_type"]) == ("Premium room", "premium")
    assert edited["description"] is None and edited["max_members"] is None
    assert edited["message_rate_limit"] == 3 and edited["minimum_tier_required"] == str(tier)
    assert edited["is_active"] is False


async def test_edit_keeps_the_tier_rules(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, rival = await make_analyst(db), await make_analyst(db)
    tier = await make_tier(db, analyst)
    channel = await _channel(db, analyst, minimum_tier_required=tier)
    url, headers = f"/v1/channels/{channel}", _auth(secret, analyst)
    theirs = await make_tier(db, rival)
    for body in (
        {"minimum_tier_required": str(theirs)},
        {"require_subscription": False},
        {"max_members": -1},
        {},
    ):
        assert (await api.patch(url, json=body, headers=headers)).status == 400, body
    ok = await _json(
        await api.patch(
            url,
            json={"require_subscription": False, "minimum_tier_required": None},
            headers=headers,
        ),
        200,
    )
    assert ok["require_subscription"] is False and ok["minimum_tier_required"] is None


async def test_only_the_channels_analyst_changes_it(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, other = await make_analyst(db), await make_analyst(db)
    admin = await make_user(db, user_type="admin")
    channel = await _channel(db, analyst)
    for who in (other, admin):
        headers = _auth(secret, who)
        patch = await api.patch(
            f"/v1/channels/{channel}", json={"channel_name": "mine"}, headers=headers
        )
        assert patch.status == 403
        assert (await api.post(f"/v1/channels/{channel}/archive", headers=headers)).status == 403
        assert (await api.delete(f"/v1/channels/{channel}", headers=headers)).status == 403
    hidden = await _channel(db, analyst, is_archived=True)
    response = await api.patch(
        f"/v1/channels/{hidden}", json={"channel_name": "x"}, headers=_auth(secret, other)
    )
    assert response.status == 404  # what they cannot see does not exist for them
    row = await db.fetchrow(
        "SELECT channel_name, is_archived, deleted_at FROM analyst.chat_channels WHERE id = $1",
        channel,
    )
    assert tuple(row) == ("Room", False, None)


async def test_archived_and_inactive_channels_are_seen_by_their_analyst_and_admins_only(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, trader = await make_analyst(db), await make_user(db)
    admin = await make_user(db, user_type="admin")
    start = datetime.now(UTC) - timedelta(hours=1)
    live = await _channel(db, analyst, created_at=start)
    paused = await _channel(db, analyst, is_active=False, created_at=start + timedelta(minutes=1))
    archived = await _json(
        await api.post(
            f"/v1/channels/{await _channel(db, analyst)}/archive",
            headers=_auth(secret, analyst),
        ),
        200,
    )
    assert archived["is_archived"] is True
    for who, expected in (
        (trader, [live]),
        (analyst, [live, paused, uuid.UUID(archived["id"])]),
        (admin, [live, paused, uuid.UUID(archived["id"])]),
    ):
        page = await _json(
            await api.get(
                "/v1/channels", params={"analyst_id": str(analyst)}, headers=_auth(secret, who)
            ),
            200,
        )
        assert [c["id"] for c in page["items"]] == [str(i) for i in expected]
    for hidden in (paused, archived["id"]):
        response = await api.get(f"/v1/channels/{hidden}", headers=_auth(secret, trader))
        assert response.status == 404
        response = await api.get(f"/v1/channels/{hidden}", headers=_auth(secret, analyst))
        assert response.status == 200
    back = await _json(
        await api.post(f"/v1/channels/{archived['id']}/unarchive", headers=_auth(secret, analyst)),
        200,
    )
    assert back["is_archived"] is False
    assert (await api.get(f"/v1/channels/{live}", headers=_auth(secret, trader))).status == 200


async def test_deleted_channel_is_kept_but_gone_for_everybody(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    admin = await make_user(db, user_type="admin")
    channel = await _channel(db, analyst)
    await _json(await api.delete(f"/v1/channels/{channel}", headers=_auth(secret, analyst)), 204)
    assert await db.fetchval(
        "SELECT deleted_at IS NOT NULL FROM analyst.chat_channels WHERE id = $1", channel
    )
    for who in (analyst, admin):
        response = await api.get(f"/v1/channels/{channel}", headers=_auth(secret, who))
        assert response.status == 404
        await _history(api, secret, who, channel, status=404)
    again = await api.delete(f"/v1/channels/{channel}", headers=_auth(secret, analyst))
    assert again.status == 404


async def test_channel_list_pages_with_a_stable_cursor_and_needs_an_analyst(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, trader = await make_analyst(db), await make_user(db)
    start = datetime.now(UTC) - timedelta(days=1)
    ids = [await _channel(db, analyst, created_at=start + timedelta(minutes=i)) for i in range(5)]
    headers = _auth(secret, trader)
    first = await _json(
        await api.get(
            "/v1/channels", params={"analyst_id": str(analyst), "limit": 3}, headers=headers
        ),
        200,
    )
    second = await _json(
        await api.get(
            "/v1/channels",
            params={"analyst_id": str(analyst), "limit": 3, "cursor": first["next_cursor"]},
            headers=headers,
        ),
        200,
    )
    assert [c["id"] for c in first["items"] + second["items"]] == [str(i) for i in ids]
    assert second["next_cursor"] is None
    missing = await api.get("/v1/channels", headers=headers)
    assert "analyst_id" in (await _json(missing, 400))["error"]["message"]
    bad = await api.get(
        "/v1/channels", params={"analyst_id": str(analyst), "cursor": "zz"}, headers=headers
    )
    assert bad.status == 400


async def test_channels_need_a_login(api: TestClient) -> None:
    channel = uuid.uuid4()
    for method, path, body in (
        ("POST", "/v1/channels", {"channel_name": "x"}),
        ("GET", f"/v1/channels?analyst_id={uuid.uuid4()}", None),
        ("GET", f"/v1/channels/{channel}", None),
        ("PATCH", f"/v1/channels/{channel}", {"channel_name": "x"}),
        ("POST", f"/v1/channels/{channel}/archive", None),
        ("DELETE", f"/v1/channels/{channel}", None),
        ("GET", f"/v1/channels/{channel}/messages", None),
    ):
        assert (await api.request(method, path, json=body)).status == 401, path


# --- message history --------------------------------------------------------------------------


async def test_subscriber_with_chat_access_reads_history_in_seq_order(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, member = await make_analyst(db), await make_user(db)
    await make_subscription(db, member, await make_tier(db, analyst))
    channel = await _channel(db, analyst)
    ids = await _messages(db, channel, analyst, member, 3)
    await db.execute(
        "UPDATE analyst.chat_messages SET is_deleted = true, deleted_by = $2, deleted_at = now()"
        " WHERE id = $1",
        ids[1],
        analyst,
    )
    history = await _history(api, secret, member, channel)
    assert [m["seq"] for m in history["items"]] == [1, 2, 3] and history["has_more"] is False
    assert [m["text"] for m in history["items"]] == ["m1", "", "m3"]
    assert [m.get("deleted", False) for m in history["items"]] == [False, True, False]
    assert history["items"][0]["id"] == str(ids[0])
    assert history["items"][0]["user_id"] == str(member)


async def test_history_pages_by_seq_in_both_directions(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    channel = await _channel(db, analyst)
    await _messages(db, channel, analyst, analyst, 7)

    async def seqs(**q: Any) -> tuple[list[int], bool]:
        page = await _history(api, secret, analyst, channel, **q)
        return [m["seq"] for m in page["items"]], page["has_more"]

    assert await seqs(limit=3) == ([5, 6, 7], True)
    assert await seqs(limit=3, before_seq=5) == ([2, 3, 4], True)
    assert await seqs(limit=3, before_seq=2) == ([1], False)
    assert await seqs(limit=3, after_seq=0) == ([1, 2, 3], True)
    assert await seqs(limit=3, after_seq=5) == ([6, 7], False)
    assert await seqs(limit=10, after_seq=2, before_seq=6) == ([3, 4, 5], False)
    for q, field in (
        ({"after_seq": 5, "before_seq": 5}, "after_seq"),
        ({"before_seq": 0}, "before_seq"),
        ({"limit": 101}, "limit"),
        ({"after_seq": "x"}, "after_seq"),
    ):
        error = await _history(api, secret, analyst, channel, status=400, **q)
        assert field in error["error"]["message"], q


async def test_history_is_refused_as_a_join_would_be(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst = await make_analyst(db)
    basic = await make_tier(db, analyst, tier_order=1)
    pro = await make_tier(db, analyst, tier_order=2)
    no_chat = await make_tier(db, analyst, tier_order=3, chat_access=False)
    channel = await _channel(db, analyst, minimum_tier_required=pro)
    await _messages(db, channel, analyst, analyst, 1)
    stranger, low, muted, lapsed, entitled = [await make_user(db) for _ in range(5)]
    await make_subscription(db, low, basic)
    await make_subscription(db, muted, no_chat)
    await make_subscription(db, lapsed, pro, status="cancelled")
    await make_subscription(db, entitled, pro)
    for who in (stranger, low, muted, lapsed):
        error = await _history(api, secret, who, channel, status=403)
        assert "subscription" in error["error"]["message"]
    assert len((await _history(api, secret, entitled, channel))["items"]) == 1


async def test_open_channel_history_is_readable_by_anyone_logged_in(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, stranger = await make_analyst(db), await make_user(db)
    channel = await _channel(db, analyst, require_subscription=False)
    await _messages(db, channel, analyst, analyst, 2)
    assert len((await _history(api, secret, stranger, channel))["items"]) == 2


async def test_archived_channel_history_is_for_its_analyst_and_admins(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    analyst, member = await make_analyst(db), await make_user(db)
    admin = await make_user(db, user_type="admin")
    await make_subscription(db, member, await make_tier(db, analyst))
    channel = await _channel(db, analyst, is_archived=True)
    await _messages(db, channel, analyst, member, 2)
    error = await _history(api, secret, member, channel, status=403)
    assert "archived" in error["error"]["message"]
    for who in (analyst, admin):
        assert len((await _history(api, secret, who, channel))["items"]) == 2


async def test_history_of_an_unknown_channel_is_404(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    user = await make_user(db)
    await _history(api, secret, user, uuid.uuid4(), status=404)
    response = await api.get("/v1/channels/not-a-uuid/messages", headers=_auth(secret, user))
    assert response.status == 400
