"""Notifications (4011): read_at follows is_read, and market.notification_channel_enabled()
applies notification_settings (channel switch AND category switch, seed defaults without a
settings row)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.realms.market.world import T0, World, rejected

ENABLED = "SELECT market.notification_channel_enabled($1, $2, $3)"
CATEGORY = {"order": "order_updates", "promotion": "promotions", "message": "messages",
            "review": "reviews"}  # fmt: skip
TYPES = ["order", "message", "review", "promotion", "system", "payment"]
CHANNELS = ["email", "push", "sms"]


async def enabled(w: World, user: int, kind: str, channel: str) -> bool:
    verdict: bool = await w.db.fetchval(ENABLED, user, kind, channel)
    return verdict


async def test_marking_read_stamps_read_at_and_unread_clears_it(txworld: World) -> None:
    note = await txworld.notification()
    await txworld.db.execute("UPDATE market.notifications SET is_read = true WHERE id = $1", note)
    now = await txworld.db.fetchval("SELECT now()")
    assert await txworld.value("notifications", "read_at", note) == now
    await txworld.db.execute("UPDATE market.notifications SET is_read = false WHERE id = $1", note)
    assert await txworld.value("notifications", "read_at", note) is None


async def test_read_at_given_with_is_read_is_kept(txworld: World) -> None:
    note = await txworld.notification(is_read=True, read_at=T0)
    assert await txworld.value("notifications", "read_at", note) == T0


async def test_read_at_without_is_read_is_cleared(txworld: World) -> None:
    note = await txworld.notification(read_at=T0)
    assert await txworld.value("notifications", "read_at", note) is None


@pytest.mark.parametrize("kind", TYPES)
async def test_without_settings_email_and_push_are_on_and_sms_is_off(
    txworld: World, kind: str
) -> None:
    user = await txworld.buyer()
    assert [await enabled(txworld, user, kind, c) for c in CHANNELS] == [True, True, False]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_channel_switch_turns_that_channel_off_for_every_type(
    txworld: World, channel: str
) -> None:
    user = await txworld.buyer()
    switches = {"email_enabled": True, "push_enabled": True, "sms_enabled": True}
    switches[f"{channel}_enabled"] = False
    await txworld.notification_settings(user, **switches)
    for kind in TYPES:
        for other in CHANNELS:
            assert await enabled(txworld, user, kind, other) is (other != channel)


@pytest.mark.parametrize("kind", list(CATEGORY))
async def test_a_category_switch_turns_its_type_off_on_every_channel(
    txworld: World, kind: str
) -> None:
    user = await txworld.buyer()
    await txworld.notification_settings(user, sms_enabled=True, **{CATEGORY[kind]: False})
    for channel in CHANNELS:
        assert await enabled(txworld, user, kind, channel) is False
        for other in TYPES:
            if other != kind:
                assert await enabled(txworld, user, other, channel) is True


async def test_system_and_payment_notifications_ignore_category_switches(txworld: World) -> None:
    user = await txworld.buyer()
    await txworld.notification_settings(
        user, sms_enabled=True, order_updates=False, promotions=False, messages=False,
        reviews=False,
    )  # fmt: skip
    for kind in ("system", "payment"):
        assert [await enabled(txworld, user, kind, c) for c in CHANNELS] == [True, True, True]


async def test_an_unknown_channel_is_refused(txworld: World) -> None:
    await rejected(
        txworld.db,
        txworld.db.fetchval(ENABLED, await txworld.buyer(), "order", "pigeon"),
        asyncpg.InvalidParameterValueError,
    )
