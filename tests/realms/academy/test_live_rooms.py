"""The academy namespaces on a real gateway process: `academy.session:<id>` (joins only
while live, for the host and registered participants; attendance and the live count;
chat, pins, removal, end) and `academy.community:all` (the live feed), plus the user stream
(achievements, rank changes). REST calls go through the real api application."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.academy.conftest import Academy
from tests.realms.academy.live import connect, server_event

SESSIONS = "/v1/academy/sessions"


async def live_session(api: TestClient, host: dict[str, str], *, start: bool = True) -> str:
    r = await api.post(
        SESSIONS,
        json={"title": "Live", "scheduled_at": "2030-01-01T10:00:00Z", "duration_min": 30},
        headers=host,
    )
    session_id = str((await r.json())["id"])
    if start:
        assert (await api.post(f"{SESSIONS}/{session_id}/start", headers=host)).status == 200
    return session_id


async def test_only_the_host_and_registered_participants_join_and_only_while_live(
    academy_api: TestClient,
    academy: Academy,
    gateway: GatewayProcess,
    secret: str,
    sockets: list[WsClient],
) -> None:
    host, hh = await academy.user()
    member, hm = await academy.user()
    stranger, _ = await academy.user()
    session_id = await live_session(academy_api, hh, start=False)
    await academy_api.post(f"{SESSIONS}/{session_id}/registration", headers=hm)
    channel = f"academy.session:{session_id}"
    m = await connect(gateway, secret, member, sockets)
    refused = await m.call("join", channel=channel)
    assert refused["code"] == "forbidden" and "not live" in refused["message"]
    await academy_api.post(f"{SESSIONS}/{session_id}/start", headers=hh)
    s = await connect(gateway, secret, stranger, sockets)
    refused = await s.call("join", channel=channel)
    assert refused["code"] == "forbidden" and "registered participants" in refused["message"]
    h = await connect(gateway, secret, host, sockets)
    assert (await h.ok("join", channel=channel))["role"] == "owner"
    assert (await m.ok("join", channel=channel))["role"] == "member"


async def test_waitlisted_users_cannot_join(
    academy_api: TestClient,
    academy: Academy,
    gateway: GatewayProcess,
    secret: str,
    sockets: list[WsClient],
) -> None:
    _, hh = await academy.user()
    r = await academy_api.post(
        SESSIONS,
        json={
            "title": "Small",
            "scheduled_at": "2030-01-01T10:00:00Z",
            "duration_min": 30,
            "max_participants": 1,
        },
        headers=hh,
    )
    session_id = (await r.json())["id"]
    _, first = await academy.user()
    late, hl = await academy.user()
    await academy_api.post(f"{SESSIONS}/{session_id}/registration", headers=first)
    await academy_api.post(f"{SESSIONS}/{session_id}/registration", headers=hl)
    await academy_api.post(f"{SESSIONS}/{session_id}/start", headers=hh)
    client = await connect(gateway, secret, late, sockets)
    refused = await client.call("join", channel=f"academy.session:{session_id}")
    assert refused["code"] == "forbidden" and "waitlist" in refused["message"]


async def test_joining_and_leaving_keep_attendance_and_push_the_live_count(
    academy_api: TestClient,
    academy: Academy,
    db: asyncpg.Connection,
    gateway: GatewayProcess,
    secret: str,
    sockets: list[WsClient],
) -> None:
    host, hh = await academy.user()
    member, hm = await academy.user()
    session_id = await live_session(academy_api, hh)
    await academy_api.post(f"{SESSIONS}/{session_id}/registration", headers=hm)
    channel = f"academy.session:{session_id}"
    h = await connect(gateway, secret, host, sockets)
    await h.ok("join", channel=channel)
    m = await connect(gateway, secret, member, sockets)
    await m.ok("join", channel=channel)
    await h.expect(server_event("participants", current_participants=1))
    row = await db.fetchrow(
        "SELECT attendance_status, joined_at, left_at FROM academy.session_participants"
        " WHERE user_id = $1",
        member,
    )
    assert row["attendance_status"] == "attended" and row["joined_at"] is not None
    assert row["left_at"] is None
    await m.ok("leave", channel=channel)
    await h.expect(server_event("participants", current_participants=0))
    assert await db.fetchval(
        "SELECT left_at IS NOT NULL FROM academy.session_participants WHERE user_id = $1", member
    )
    assert (
        await db.fetchval(
            "SELECT current_participants FROM academy.live_sessions WHERE id = $1::uuid", session_id
        )
        == 0
    )


async def test_chat_pins_by_the_host_and_the_end_closes_the_room_keeping_history(
    academy_api: TestClient,
    academy: Academy,
    gateway: GatewayProcess,
    secret: str,
    sockets: list[WsClient],
) -> None:
    host, hh = await academy.user()
    member, hm = await academy.user()
    session_id = await live_session(academy_api, hh)
    await academy_api.post(f"{SESSIONS}/{session_id}/registration", headers=hm)
    channel = f"academy.session:{session_id}"
    h = await connect(gateway, secret, host, sockets)
    await h.ok("join", channel=channel)
    m = await connect(gateway, secret, member, sockets)
    await m.ok("join", channel=channel)
    sent = await m.ok("send", channel=channel, text="what about stops?", client_id="c1")
    got = await h.expect(lambda f: f.get("op") == "msg" and f.get("channel") == channel)
    assert (got["text"], got["seq"]) == ("what about stops?", sent["seq"])
    refused = await m.call("pin", channel=channel, id=sent["id"])
    assert refused["code"] == "forbidden"
    await h.ok("pin", channel=channel, id=sent["id"])
    await m.expect(lambda f: f.get("kind") == "pinned" and f.get("id") == sent["id"])

    assert (await academy_api.post(f"{SESSIONS}/{session_id}/end", headers=hh)).status == 200
    for client in (h, m):
        await client.expect(server_event("session_ended"))
        removed = await client.expect(lambda f: f.get("kind") == "removed")
        assert "not live" in removed["reason"]
    refused = await m.call("join", channel=channel)
    assert refused["code"] == "forbidden"
    r = await academy_api.get(f"{SESSIONS}/{session_id}/messages", headers=hm)
    history = await r.json()
    assert [(x["text"], x["pinned"]) for x in history] == [("what about stops?", True)]
    _, outsider = await academy.user()
    r = await academy_api.get(f"{SESSIONS}/{session_id}/messages", headers=outsider)
    assert await r.json() == []  # RLS: not a participant nor the host


async def test_the_host_removes_a_participant_who_cannot_come_back(
    academy_api: TestClient,
    academy: Academy,
    gateway: GatewayProcess,
    secret: str,
    sockets: list[WsClient],
) -> None:
    host, hh = await academy.user()
    member, hm = await academy.user()
    session_id = await live_session(academy_api, hh)
    await academy_api.post(f"{SESSIONS}/{session_id}/registration", headers=hm)
    channel = f"academy.session:{session_id}"
    h = await connect(gateway, secret, host, sockets)
    await h.ok("join", channel=channel)
    m = await connect(gateway, secret, member, sockets)
    await m.ok("join", channel=channel)
    path = f"{SESSIONS}/{session_id}/participants/{member}/removal"
    assert (await academy_api.post(path, json={}, headers=hm)).status == 403
    assert (await academy_api.post(path, json={"reason": "spam"}, headers=hh)).status == 204
    await m.expect(lambda f: f.get("kind") == "removed" and f.get("channel") == channel)
    await h.expect(server_event("participant_removed", user_id=str(member)))
    refused = await m.call("join", channel=channel)
    assert refused["code"] == "forbidden" and "removed" in refused["message"]


async def test_the_community_feed_gets_posts_comments_and_scores(
    academy_api: TestClient,
    academy: Academy,
    gateway: GatewayProcess,
    secret: str,
    sockets: list[WsClient],
) -> None:
    reader, _ = await academy.user()
    _, author = await academy.user()
    client = await connect(gateway, secret, reader, sockets)
    await client.ok("join", channel="academy.community:all")
    assert (await client.call("join", channel="academy.community:other"))["code"] == "bad_request"
    post = await (
        await academy_api.post(
            "/v1/academy/posts", json={"title": "Gaps", "content": "x" * 1000}, headers=author
        )
    ).json()
    event = await client.expect(server_event("post_created", id=post["id"]))
    assert len(event["data"]["excerpt"]) == 280
    await academy_api.post(
        f"/v1/academy/posts/{post['id']}/comments", json={"content": "+1"}, headers=author
    )
    await client.expect(server_event("comment_created", post_id=post["id"]))
    await academy_api.post(
        "/v1/academy/votes",
        json={"target_type": "post", "target_id": post["id"], "vote_type": "upvote"},
        headers=author,
    )
    await client.expect(server_event("score_changed", target_id=post["id"], score=1))


async def test_achievements_and_rank_changes_reach_the_users_stream(
    academy_api: TestClient,
    academy: Academy,
    db: asyncpg.Connection,
    gateway: GatewayProcess,
    secret: str,
    sockets: list[WsClient],
) -> None:
    user, headers = await academy.user()
    await db.execute(
        "INSERT INTO academy.achievements (code, title, description, requirements)"
        " VALUES ('first', 'First', 'One lesson', '{\"lessons_completed\": 1}')"
    )
    lesson = await db.fetchval(
        "INSERT INTO academy.lessons (level_id, gate_id, title, content_data, xp_reward)"
        " VALUES (77, 1, 'L', '{}', 10) RETURNING id"
    )
    client = await connect(gateway, secret, user, sockets)
    r = await academy_api.post(f"/v1/academy/lessons/{lesson}/complete", json={}, headers=headers)
    assert r.status == 200
    await client.expect(server_event("achievement_unlocked", code="first"))
    await client.expect(server_event("leaderboard_rank", rank=1, previous_rank=None))
