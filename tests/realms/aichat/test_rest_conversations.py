"""REST of assistant conversations (/v1/aichat/conversations...) over the real api app: create
with a model and a system prompt, list in keyset pages, read, rename, archive, delete, history
pages and soft delete of messages; only the owner reaches a conversation, and a token of
another realm is refused on these routes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from kernel.config import load_settings
from kernel.db import connect
from kernel.realms import enabled_realms
from kernel.tokens import sign_access_token
from tests.realms.aichat import rows

BASE = "/v1/aichat/conversations"


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database that keeps the reference plans and providers."""
    connection = await connect(dsn)
    yield connection
    await connection.close()


def bearer(secret: str, user: uuid.UUID, realm: str = "aichat") -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user), realm, 600)}"}


async def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = (await response.json())["error"]
    return body


async def _create(api: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = await api.post(BASE, json={"model": "gpt-4o", **body}, headers=headers)
    assert r.status == 201, await r.text()
    created: dict[str, Any] = await r.json()
    return created


async def test_create_with_model_and_system_prompt_counts_the_conversation(
    aichat_api: TestClient, conn: asyncpg.Connection, secret: str
) -> None:
    user = await rows.make_user(conn, plan_tier="PLUS")
    me = bearer(secret, user)
    created = await _create(
        aichat_api, me, title="Lisbon", system_prompt="Be brief.", description="trip"
    )
    assert created["channel"] == f"aichat.conv:{created['id']}"
    assert (created["title"], created["model"], created["system_prompt"]) == (
        "Lisbon",
        "gpt-4o",
        "Be brief.",
    )
    assert (created["message_count"], created["token_count"], created["archived"]) == (0, 0, False)
    stored = await conn.fetchrow(
        "SELECT user_id, system_prompt, description FROM aichat.conversations WHERE id = $1",
        uuid.UUID(created["id"]),
    )
    assert (stored["user_id"], stored["system_prompt"], stored["description"]) == (
        user,
        "Be brief.",
        "trip",
    )
    counted = await conn.fetchval(
        "SELECT conversations_count FROM aichat.usage_tracking WHERE user_id = $1", user
    )
    assert counted == 1


async def test_create_refuses_unknown_model_naming_the_allowed_ones(
    aichat_api: TestClient, conn: asyncpg.Connection, secret: str
) -> None:
    user = await rows.make_user(conn)
    r = await aichat_api.post(BASE, json={"model": "gpt-9"}, headers=bearer(secret, user))
    error = await _error(r, 400)
    assert error["code"] == "bad_request" and "gpt-9" in error["message"]
    assert error["details"]["allowed"] == [
        "claude-3-opus",
        "claude-3-sonnet",
        "gpt-3.5-turbo",
        "gpt-4",
        "gpt-4o",
    ]
    r = await aichat_api.post(
        BASE, json={"model": "gpt-4o", "extra": 1}, headers=bearer(secret, user)
    )
    assert (await _error(r, 400))["code"] == "bad_request"
    assert await conn.fetchval("SELECT count(*) FROM aichat.conversations") == 0


async def test_create_refused_past_the_plans_conversation_limit(
    aichat_api: TestClient, conn: asyncpg.Connection, secret: str
) -> None:
    await conn.execute("UPDATE aichat.plans SET max_conversations = 2 WHERE name = 'Free'")
    user = await rows.make_user(conn, plan_tier="FREE")
    me = bearer(secret, user)
    for _ in range(2):
        await _create(aichat_api, me, model="gpt-3.5-turbo")
    r = await aichat_api.post(BASE, json={"model": "gpt-3.5-turbo"}, headers=me)
    error = await _error(r, 403)
    assert error["code"] == "forbidden" and "at most 2" in error["message"]
    held = await conn.fetchval("SELECT count(*) FROM aichat.conversations WHERE user_id = $1", user)
    assert held == 2


async def test_list_pages_newest_first_and_separates_archived(
    aichat_api: TestClient, conn: asyncpg.Connection, secret: str
) -> None:
    user = await rows.make_user(conn, plan_tier="PLUS")
    stranger = await rows.make_user(conn, plan_tier="PLUS")
    await rows.make_conversation(conn, stranger, title="not mine")
    me = bearer(secret, user)
    made = [(await _create(aichat_api, me, title=f"c{i}"))["id"] for i in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        r = await aichat_api.get(BASE, params=params, headers=me)
        assert r.status == 200, await r.text()
        page = await r.json()
        pages += 1
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1] and pages == 3

    r = await aichat_api.patch(f"{BASE}/{made[0]}", json={"archived": True}, headers=me)
    assert r.status == 200 and (await r.json())["archived"] is True
    active = await (await aichat_api.get(BASE, headers=me)).json()
    archived = await (await aichat_api.get(BASE, params={"archived": "true"}, headers=me)).json()
    assert [c["id"] for c in active["items"]] == made[:0:-1]
    assert [c["id"] for c in archived["items"]] == [made[0]]
    assert archived["items"][0]["archived_at"] is not None

    r = await aichat_api.get(BASE, params={"cursor": "not a cursor!"}, headers=me)
    assert (await _error(r, 400))["code"] == "bad_request"


async def test_read_rename_archive_unarchive_and_delete(
    aichat_api: TestClient, conn: asyncpg.Connection, secret: str
) -> None:
    user = await rows.make_user(conn, plan_tier="PLUS")
    me = bearer(secret, user)
    conv = (await _create(aichat_api, me, system_prompt="old"))["id"]
    one = await aichat_api.get(f"{BASE}/{conv}", headers=me)
    assert one.status == 200 and (await one.json())["system_prompt"] == "old"

    r = await aichat_api.patch(
        f"{BASE}/{conv}", json={"title": "Renamed", "system_prompt": "new"}, headers=me
    )
    patched = await r.json()
    assert (patched["title"], patched["system_prompt"], patched["archived"]) == (
        "Renamed",
        "new",
        False,
    )
    r = await aichat_api.patch(f"{BASE}/{conv}", json={"archived": True}, headers=me)
    assert (await r.json())["archived"] is True
    r = await aichat_api.patch(f"{BASE}/{conv}", json={"archived": False}, headers=me)
    unarchived = await r.json()
    assert unarchived["archived"] is False and unarchived["archived_at"] is None
    assert unarchived["title"] == "Renamed"  # fields not named stay as they were
    r = await aichat_api.patch(f"{BASE}/{conv}", json={"title": ""}, headers=me)
    assert (await _error(r, 400))["code"] == "bad_request"

    # Deleting keeps the token usage of its replies, unlinked.
    usage = await rows.make_token_usage(conn, user, conversation_id=uuid.UUID(conv))
    r = await aichat_api.delete(f"{BASE}/{conv}", headers=me)
    assert r.status == 204
    assert (await _error(await aichat_api.get(f"{BASE}/{conv}", headers=me), 404))[
        "code"
    ] == "not_found"
    assert (
        await conn.fetchval("SELECT conversation_id FROM aichat.token_usage WHERE id = $1", usage)
        is None
    )
    assert (await _error(await aichat_api.delete(f"{BASE}/{conv}", headers=me), 404))[
        "code"
    ] == "not_found"


async def test_history_pages_in_seq_order_and_soft_delete(
    aichat_api: TestClient, conn: asyncpg.Connection, secret: str
) -> None:
    user = await rows.make_user(conn, plan_tier="PLUS")
    me = bearer(secret, user)
    conv = uuid.UUID((await _create(aichat_api, me))["id"])
    ids = []
    for i in range(7):
        role = "user" if i % 2 == 0 else "assistant"
        ids.append(await rows.make_message(conn, conv, role=role, content=f"m{i}", model="gpt-4o"))
    url = f"{BASE}/{conv}/messages"
    latest = await (await aichat_api.get(url, params={"limit": "3"}, headers=me)).json()
    assert [m["seq"] for m in latest] == [5, 6, 7]
    assert [m["text"] for m in latest] == ["m4", "m5", "m6"]
    assert latest[1]["role"] == "assistant" and latest[1]["user_id"] == "assistant"
    assert latest[0]["user_id"] == str(user)
    older = await (
        await aichat_api.get(url, params={"limit": "3", "before": "5"}, headers=me)
    ).json()
    assert [m["seq"] for m in older] == [2, 3, 4]
    oldest = await (await aichat_api.get(url, params={"before": "2"}, headers=me)).json()
    assert [m["text"] for m in oldest] == ["m0"]
    r = await aichat_api.get(url, params={"limit": "101"}, headers=me)
    assert (await _error(r, 400))["code"] == "bad_request"

    r = await aichat_api.delete(f"{url}/{ids[6]}", headers=me)
    assert r.status == 204
    last = (await (await aichat_api.get(url, params={"limit": "1"}, headers=me)).json())[0]
    assert last["deleted"] is True and last["text"] == "" and last["seq"] == 7
    stored = await conn.fetchrow(
        "SELECT content, is_deleted, deleted_at FROM aichat.messages WHERE id = $1", ids[6]
    )
    assert stored["content"] == "m6" and stored["is_deleted"] and stored["deleted_at"]
    r = await aichat_api.delete(f"{url}/{uuid.uuid4()}", headers=me)
    assert (await _error(r, 404))["code"] == "not_found"


async def test_another_users_conversation_is_not_found_to_the_caller(
    aichat_api: TestClient, conn: asyncpg.Connection, secret: str
) -> None:
    owner = await rows.make_user(conn, plan_tier="PLUS")
    intruder = bearer(secret, await rows.make_user(conn, plan_tier="PLUS"))
    conv = await rows.make_conversation(conn, owner, title="private")
    message = await rows.make_message(conn, conv, content="secret")
    url = f"{BASE}/{conv}"
    for response in (
        await aichat_api.get(url, headers=intruder),
        await aichat_api.patch(url, json={"title": "mine now"}, headers=intruder),
        await aichat_api.get(f"{url}/messages", headers=intruder),
        await aichat_api.delete(f"{url}/messages/{message}", headers=intruder),
        await aichat_api.delete(url, headers=intruder),
    ):
        assert (await _error(response, 404))["code"] == "not_found"
    listed = await (await aichat_api.get(BASE, headers=intruder)).json()
    assert listed["items"] == []
    kept = await conn.fetchrow(
        "SELECT c.title, m.is_deleted FROM aichat.conversations c"
        " JOIN aichat.messages m ON m.conversation_id = c.id WHERE c.id = $1",
        conv,
    )
    assert (kept["title"], kept["is_deleted"]) == ("private", False)


@pytest.fixture
async def two_realm_api(dsn: str, aiohttp_client: Any, secret: str) -> AsyncIterator[TestClient]:
    """The api serving aichat and the test-only echo realm: an echo token is valid here,
    only not on aichat's routes."""
    env = {"SWITCHBOARD_REALMS": "aichat,tests.echo_realm"}
    settings = load_settings({"DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret, **env})
    client: TestClient = await aiohttp_client(create_app(settings, realms=enabled_realms(env)))
    yield client
    await client.close()


async def test_a_token_of_another_realm_is_refused_and_no_token_is_unauthorized(
    two_realm_api: TestClient, conn: asyncpg.Connection, secret: str
) -> None:
    user = await rows.make_user(conn, plan_tier="PLUS")
    conv = await rows.make_conversation(conn, user)
    foreign = bearer(secret, user, realm="echo")
    for path in (BASE, f"{BASE}/{conv}", f"{BASE}/{conv}/messages", "/v1/aichat/usage"):
        assert (await _error(await two_realm_api.get(path, headers=foreign), 403))[
            "code"
        ] == "forbidden"
        assert (await _error(await two_realm_api.get(path), 401))["code"] == "unauthorized"
    r = await two_realm_api.post(BASE, json={"model": "gpt-4o"}, headers=foreign)
    assert (await _error(r, 403))["code"] == "forbidden"
    r = await two_realm_api.get(BASE, headers=bearer(secret, user))
    assert r.status == 200 and len((await r.json())["items"]) == 1
