"""Content of the creator realm over the real api app: creators write, publish, schedule and
delete posts; readers without access get them locked (a preview, never the body, media URLs
or metadata: checked on the raw response text); pay-per-view purchases go through the payment
flow (pending first, idempotent, a failed payment unlocks nothing)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from kernel.jobs import SystemClock
from realms.creator.jobs import publish_scheduled_content
from tests.realms.creator.conftest import Call, World, bearer, make_account

SECRET_MEDIA = "https://cdn.example.com/secret/full-video.mp4"
SECRET_THUMB = "https://cdn.example.com/secret/thumb.jpg"
SECRET_BODY = "the full text only payers read"
PREVIEW = {"blur_hash": "LEHV6nWB2yk8", "caption": "a teaser", "duration_ms": 60000}


def _video(**fields: Any) -> dict[str, Any]:
    return {
        "content_type": "video",
        "title": "Behind the scenes",
        "body": SECRET_BODY,
        "media_url": SECRET_MEDIA,
        "thumbnail_url": SECRET_THUMB,
        "media_metadata": {"codec": "h264", "poster": "https://cdn.example.com/secret/poster"},
        "preview": PREVIEW,
        "status": "published",
        **fields,
    }


async def _post(call: Call, db: asyncpg.Connection, creator: uuid.UUID, **fields: Any) -> str:
    """A published post, approved by moderation; its id."""
    status, body = await call("POST", "/v1/creator/content", creator, json=_video(**fields))
    assert status == 201, body
    await db.execute(
        "UPDATE creator.content SET moderation_status = 'approved' WHERE id = $1",
        uuid.UUID(body["id"]),
    )
    return str(body["id"])


async def _delete(api: TestClient, secret: str, user: uuid.UUID, path: str) -> int:
    response = await api.delete(path, headers=bearer(secret, user))
    return response.status


async def _raw(api: TestClient, secret: str, user: uuid.UUID, path: str) -> tuple[int, str]:
    response = await api.get(path, headers=bearer(secret, user))
    return response.status, await response.text()


def _assert_locked(item: dict[str, Any], reason: str) -> None:
    assert item["locked"] is True and item["lock_reason"] == reason
    assert item["body"] is None and item["media_url"] is None
    assert item["thumbnail_url"] is None and item["media_metadata"] is None
    assert item["preview"]["caption"] == "a teaser"


async def test_subscriber_content_is_locked_for_a_reader_without_a_subscription(
    call: Call, db: asyncpg.Connection, world: World, api: TestClient, secret: str
) -> None:
    content_id = await _post(call, db, world.creator, monetization="subscribers")
    status, item = await call("GET", f"/v1/creator/content/{content_id}", world.stranger)
    assert status == 200
    _assert_locked(item, "subscription_required")
    for path in (
        f"/v1/creator/content/{content_id}",
        f"/v1/creator/creators/{world.creator}/content",
    ):
        status, text = await _raw(api, secret, world.stranger, path)
        assert status == 200 and content_id in text
        assert "cdn.example.com/secret" not in text and SECRET_BODY not in text

    status, item = await call("GET", f"/v1/creator/content/{content_id}", world.fan)
    assert status == 200 and item["locked"] is False
    assert item["media_url"] == SECRET_MEDIA and item["body"] == SECRET_BODY
    assert item["media_metadata"] == {
        "codec": "h264",
        "poster": "https://cdn.example.com/secret/poster",
    }
    assert item["monetization"] == "subscribers"


async def test_an_expired_subscription_locks_subscriber_content_again(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    content_id = await _post(call, db, world.creator, monetization="subscribers")
    await db.execute(
        "UPDATE creator.subscriptions SET started_at = now() - interval '60 days',"
        " expires_at = now() - interval '1 day' WHERE subscriber_id = $1",
        world.fan,
    )
    _, item = await call("GET", f"/v1/creator/content/{content_id}", world.fan)
    _assert_locked(item, "subscription_required")


async def test_age_restricted_content_is_locked_for_an_unverified_reader(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    content_id = await _post(call, db, world.creator, is_age_restricted=True)
    unverified = await make_account(db, verified=False)
    _, item = await call("GET", f"/v1/creator/content/{content_id}", unverified)
    _assert_locked(item, "age_verification_required")
    _, item = await call("GET", f"/v1/creator/content/{content_id}", world.stranger)
    assert item["locked"] is False and item["media_url"] == SECRET_MEDIA


async def test_drafts_and_unmoderated_posts_exist_only_for_their_creator(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    status, draft = await call(
        "POST", "/v1/creator/content", world.creator, json=_video(status="draft")
    )
    assert status == 201 and draft["status"] == "draft"
    status, pending = await call("POST", "/v1/creator/content", world.creator, json=_video())
    assert status == 201 and pending["moderation_status"] == "pending"
    for item in (draft, pending):
        assert (await call("GET", f"/v1/creator/content/{item['id']}", world.fan))[0] == 404
        status, own = await call("GET", f"/v1/creator/content/{item['id']}", world.creator)
        assert status == 200 and own["media_url"] == SECRET_MEDIA
    _, page = await call("GET", f"/v1/creator/creators/{world.creator}/content", world.fan)
    assert page["items"] == []
    _, page = await call("GET", f"/v1/creator/creators/{world.creator}/content", world.creator)
    assert {i["id"] for i in page["items"]} == {draft["id"], pending["id"]}


async def test_only_verified_creators_create_content(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    assert (await call("POST", "/v1/creator/content", world.fan, json=_video()))[0] == 403
    unverified = await make_account(db, account_type="creator", verified=False)
    assert (await call("POST", "/v1/creator/content", unverified, json=_video()))[0] == 403


async def test_a_post_leaves_draft_only_with_what_its_type_needs(call: Call, world: World) -> None:
    status, body = await call(
        "POST", "/v1/creator/content", world.creator, json={"content_type": "text"}
    )
    assert status == 201 and body["status"] == "draft"
    path = f"/v1/creator/content/{body['id']}"
    status, error = await call("POST", f"{path}/publish", world.creator)
    assert status == 400 and "body" in error["error"]["message"]
    status, _ = await call("PATCH", path, world.creator, json={"body": "now with words"})
    assert status == 200
    status, published = await call("POST", f"{path}/publish", world.creator)
    assert status == 200 and published["status"] == "published"
    assert published["published_at"] is not None
    status, _ = await call(
        "POST", "/v1/creator/content", world.creator, json=_video(media_url=None)
    )
    assert status == 400


async def test_monetization_and_price_go_together(call: Call, world: World) -> None:
    bad = (
        _video(monetization="pay_per_view"),
        _video(monetization="free", price=500),
        _video(monetization="pay_per_view", price=0),
        _video(monetization="pay_per_view", price=-5),
        _video(monetization="subscribers", price=500),
    )
    for fields in bad:
        status, body = await call("POST", "/v1/creator/content", world.creator, json=fields)
        assert status == 400, (fields, body)
    status, body = await call(
        "POST",
        "/v1/creator/content",
        world.creator,
        json=_video(monetization="pay_per_view", price=500),
    )
    assert status == 201 and body["price"] == 500 and body["monetization"] == "pay_per_view"
    path = f"/v1/creator/content/{body['id']}"
    status, body = await call("PATCH", path, world.creator, json={"monetization": "free"})
    assert status == 200 and body["price"] is None and body["monetization"] == "free"


async def test_pay_per_view_purchase_unlocks_and_a_retry_never_charges_twice(
    call: Call, db: asyncpg.Connection, world: World, api: TestClient, secret: str
) -> None:
    content_id = await _post(call, db, world.creator, monetization="pay_per_view", price=1250)
    # a subscription does not open pay-per-view content
    _, item = await call("GET", f"/v1/creator/content/{content_id}", world.fan)
    _assert_locked(item, "purchase_required")
    path = f"/v1/creator/content/{content_id}/purchase"
    status, bought = await call("POST", path, world.fan, json={"payment_token": "tok_ok"})
    assert status == 200, bought
    assert bought["charged"] is True
    payment = bought["payment"]
    assert payment["status"] == "completed" and payment["transaction_type"] == "content_purchase"
    assert (payment["gross_amount"], payment["platform_fee"], payment["net_amount"]) == (
        1250,
        250,
        1000,
    )
    assert bought["content"]["locked"] is False
    assert bought["content"]["media_url"] == SECRET_MEDIA

    status, again = await call("POST", path, world.fan, json={"payment_token": "tok_ok"})
    assert status == 200 and again["charged"] is False
    assert again["payment"]["id"] == payment["id"]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM creator.transactions WHERE content_id = $1 AND user_id = $2",
            uuid.UUID(content_id),
            world.fan,
        )
        == 1
    )
    _, item = await call("GET", f"/v1/creator/content/{content_id}", world.fan)
    assert item["locked"] is False and item["body"] == SECRET_BODY
    # still locked for everyone else
    status, text = await _raw(api, secret, world.stranger, f"/v1/creator/content/{content_id}")
    assert status == 200 and "cdn.example.com/secret" not in text
    assert json.loads(text)["lock_reason"] == "purchase_required"


async def test_a_failed_payment_unlocks_nothing_and_may_be_retried(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    content_id = await _post(call, db, world.creator, monetization="pay_per_view", price=700)
    path = f"/v1/creator/content/{content_id}/purchase"
    status, error = await call(
        "POST", path, world.stranger, json={"payment_token": "tok_insufficient_funds"}
    )
    assert status == 400
    assert error["error"]["details"]["failure_code"] == "insufficient_funds"
    failed = uuid.UUID(error["error"]["details"]["transaction_id"])
    assert await db.fetchval("SELECT status FROM creator.transactions WHERE id = $1", failed) == (
        "failed"
    )
    _, item = await call("GET", f"/v1/creator/content/{content_id}", world.stranger)
    _assert_locked(item, "purchase_required")

    status, bought = await call("POST", path, world.stranger, json={"payment_token": "tok_ok"})
    assert status == 200 and bought["charged"] is True
    assert bought["payment"]["id"] != str(failed)


async def test_a_purchase_in_flight_answers_conflict(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    content_id = await _post(call, db, world.creator, monetization="pay_per_view", price=300)
    await db.execute(
        "INSERT INTO creator.transactions (user_id, creator_id, transaction_type, gross_amount,"
        " platform_fee, net_amount, idempotency_key, content_id)"
        " VALUES ($1, $2, 'content_purchase', 300, 60, 240, 'in-flight', $3)",
        world.stranger,
        world.creator,
        uuid.UUID(content_id),
    )
    path = f"/v1/creator/content/{content_id}/purchase"
    status, _ = await call("POST", path, world.stranger, json={"payment_token": "tok_ok"})
    assert status == 409
    _, item = await call("GET", f"/v1/creator/content/{content_id}", world.stranger)
    assert item["locked"] is True


async def test_buying_your_own_or_free_content_is_refused(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    paid = await _post(call, db, world.creator, monetization="pay_per_view", price=300)
    free = await _post(call, db, world.creator)
    body = {"payment_token": "tok_ok"}
    status, _ = await call("POST", f"/v1/creator/content/{paid}/purchase", world.creator, json=body)
    assert status == 400
    status, _ = await call("POST", f"/v1/creator/content/{free}/purchase", world.fan, json=body)
    assert status == 400
    status, _ = await call(
        "POST", f"/v1/creator/content/{uuid.uuid4()}/purchase", world.fan, json=body
    )
    assert status == 404


async def test_scheduled_content_is_published_by_the_job(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    status, _ = await call(
        "POST",
        "/v1/creator/content",
        world.creator,
        json=_video(status="scheduled", scheduled_at=past),
    )
    assert status == 400
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    status, item = await call(
        "POST", "/v1/creator/content", world.creator, json=_video(status="draft")
    )
    assert status == 201
    status, item = await call(
        "POST",
        f"/v1/creator/content/{item['id']}/schedule",
        world.creator,
        json={"scheduled_at": later},
    )
    assert status == 200 and item["status"] == "scheduled"
    content_id = uuid.UUID(item["id"])
    await db.execute(
        "UPDATE creator.content SET moderation_status = 'approved' WHERE id = $1", content_id
    )
    assert (await call("GET", f"/v1/creator/content/{content_id}", world.fan))[0] == 404
    # the scheduled time comes
    await db.execute(
        "UPDATE creator.content SET scheduled_at = now() - interval '1 second' WHERE id = $1",
        content_id,
    )
    async with db.transaction():
        assert await publish_scheduled_content(db, SystemClock()) == 1
    status, item = await call("GET", f"/v1/creator/content/{content_id}", world.fan)
    assert status == 200 and item["status"] == "published" and item["published_at"]


async def test_changing_what_readers_see_sends_approved_content_back_to_moderation(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    content_id = await _post(call, db, world.creator, monetization="pay_per_view", price=300)
    path = f"/v1/creator/content/{content_id}"
    status, item = await call("PATCH", path, world.creator, json={"price": 400})
    assert status == 200 and item["moderation_status"] == "approved" and item["price"] == 400
    status, item = await call("PATCH", path, world.creator, json={"media_url": SECRET_MEDIA + "2"})
    assert status == 200 and item["moderation_status"] == "pending"
    assert (await call("GET", path, world.fan))[0] == 404
    assert (await call("PATCH", path, world.fan, json={"title": "mine"}))[0] == 403


async def test_a_deleted_post_is_gone_for_everyone(
    call: Call, db: asyncpg.Connection, world: World, api: TestClient, secret: str
) -> None:
    content_id = await _post(call, db, world.creator)
    path = f"/v1/creator/content/{content_id}"
    assert await _delete(api, secret, world.fan, path) == 403
    assert await _delete(api, secret, world.creator, path) == 204
    assert (await call("GET", path, world.fan))[0] == 404
    assert (await call("GET", path, world.creator))[0] == 404
    assert await db.fetchval(
        "SELECT deleted_at IS NOT NULL FROM creator.content WHERE id = $1", uuid.UUID(content_id)
    )


async def test_a_creators_posts_are_listed_newest_first_in_pages(
    call: Call, db: asyncpg.Connection, world: World
) -> None:
    ids = [await _post(call, db, world.creator, title=f"post {i}") for i in range(3)]
    path = f"/v1/creator/creators/{world.creator}/content"
    _, first = await call("GET", f"{path}?limit=2", world.stranger)
    assert [i["id"] for i in first["items"]] == [ids[2], ids[1]]
    _, second = await call("GET", f"{path}?limit=2&cursor={first['next_cursor']}", world.stranger)
    assert [i["id"] for i in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    assert (await call("GET", f"/v1/creator/creators/{world.fan}/content", world.stranger))[
        0
    ] == 404
