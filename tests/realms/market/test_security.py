"""Row-level security (4015): a request running as market_app_user with market.user_id set sees
and writes only what the policies allow that user; admin access follows admin_roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.realms.market.world import D, World, rejected


async def act_as(w: World, user: int | None) -> None:
    """From here on (in the test's transaction) run as market_app_user for `user`."""
    await w.db.execute("RESET ROLE")
    await w.db.execute("SET LOCAL ROLE market_app_user")
    await w.db.execute("SELECT set_config('market.user_id', $1, true)", str(user or ""))


async def as_owner(w: World) -> None:
    await w.db.execute("RESET ROLE")


async def visible(w: World, table: str) -> set[int]:
    return {r["id"] for r in await w.db.fetch(f"SELECT id FROM market.{table}")}


async def test_without_a_user_no_private_row_is_visible(txworld: World) -> None:
    order = await txworld.order()
    await txworld.session(await txworld.value("orders", "buyer_id", order))
    await txworld.wallet()
    await txworld.notification()
    await txworld.message()
    product = await txworld.product()
    await act_as(txworld, None)
    for table in (
        "user_sessions",
        "user_addresses",
        "wallets",
        "orders",
        "order_items",
        "order_status_history",
        "notifications",
        "messages",
        "chats",
    ):
        assert await visible(txworld, table) == set(), table  # fmt: skip
    assert product in await visible(txworld, "products")


async def test_a_user_sees_and_ends_only_their_own_sessions(txworld: World) -> None:
    me, other = await txworld.buyer(), await txworld.buyer()
    mine, theirs = await txworld.session(me), await txworld.session(other)
    await act_as(txworld, me)
    assert await visible(txworld, "user_sessions") == {mine}
    assert await txworld.db.execute("DELETE FROM market.user_sessions WHERE id = $1",
                                    theirs) == "DELETE 0"  # fmt: skip
    assert await txworld.db.execute("DELETE FROM market.user_sessions WHERE id = $1",
                                    mine) == "DELETE 1"  # fmt: skip
    await rejected(
        txworld.db,
        txworld.db.execute(
            "INSERT INTO market.user_sessions (user_id, token, expires_at)"
            " VALUES ($1, 'forged', now() + interval '1 day')",
            me,
        ),
        asyncpg.InsufficientPrivilegeError,
    )


async def test_an_address_is_seen_by_its_owner_and_the_orders_seller_and_courier(
    txworld: World,
) -> None:
    courier = await txworld.courier()
    order = await txworld.order(courier_id=courier)
    row = await txworld.get("orders", order)
    address = row["delivery_address_id"]
    for user, sees in ((row["buyer_id"], True), (row["seller_id"], True), (courier, True),
                       (await txworld.seller(), False)):  # fmt: skip
        await as_owner(txworld)
        await act_as(txworld, user)
        assert (address in await visible(txworld, "user_addresses")) is sees


async def test_a_user_writes_only_their_own_addresses(txworld: World) -> None:
    me, other = await txworld.buyer(), await txworld.buyer()
    theirs = await txworld.address(other)
    await act_as(txworld, me)
    add = (
        "INSERT INTO market.user_addresses (user_id, type, full_name, phone, country, city,"
        " street) VALUES ($1, 'delivery', 'A B', '+998901234567', 'UZ', 'Tashkent', 'X 1')"
        " RETURNING id"
    )
    assert await txworld.db.fetchval(add, me) is not None
    error = await rejected(
        txworld.db, txworld.db.fetchval(add, other), asyncpg.InsufficientPrivilegeError
    )
    assert "row-level security" in str(error)
    assert (
        await txworld.db.execute(
            "UPDATE market.user_addresses SET city = 'Samarkand' WHERE id = $1", theirs
        )
        == "UPDATE 0"
    )


async def test_bank_accounts_are_private_and_only_the_platform_verifies_them(
    txworld: World,
) -> None:
    seller = await txworld.seller()
    mine, theirs = await txworld.bank_account(seller), await txworld.bank_account()
    accountant = await txworld.admin("accounting")
    await act_as(txworld, seller)
    assert await visible(txworld, "bank_accounts") == {mine}
    await txworld.db.execute(
        "UPDATE market.bank_accounts SET bank_name = 'Hamkorbank' WHERE id = $1", mine
    )
    await rejected(
        txworld.db,
        txworld.db.execute(
            "UPDATE market.bank_accounts SET is_verified = true WHERE id = $1", mine
        ),
        asyncpg.InsufficientPrivilegeError,
    )
    await act_as(txworld, accountant)
    assert {mine, theirs} <= await visible(txworld, "bank_accounts")


async def test_wallets_and_their_history_are_seen_by_the_owner_and_accounting(
    txworld: World,
) -> None:
    me = await txworld.buyer()
    mine, theirs = await txworld.wallet(me), await txworld.wallet()
    my_txn, their_txn = await txworld.wallet_txn(mine), await txworld.wallet_txn(theirs)
    accountant = await txworld.admin("accounting")
    await act_as(txworld, me)
    assert await visible(txworld, "wallets") == {mine}
    assert await visible(txworld, "wallet_transactions") == {my_txn}
    await rejected(
        txworld.db,
        txworld.db.execute("UPDATE market.wallets SET balance = 1000000000 WHERE id = $1", mine),
        asyncpg.InsufficientPrivilegeError,
    )
    await rejected(
        txworld.db,
        txworld.db.fetchrow(
            "SELECT * FROM market.apply_wallet_transaction($1, 'bonus', 1000)", mine
        ),
        asyncpg.InsufficientPrivilegeError,
    )
    await act_as(txworld, accountant)
    assert {mine, theirs} <= await visible(txworld, "wallets")
    assert {my_txn, their_txn} <= await visible(txworld, "wallet_transactions")


async def test_an_order_and_everything_on_it_is_seen_by_its_parties_only(txworld: World) -> None:
    courier = await txworld.courier()
    order = await txworld.order(courier_id=courier, status="in_transit")
    item = await txworld.order_item(order_id=order)
    tracking = await txworld.tracking(order_id=order)
    dispute = await txworld.dispute(order_id=order)
    dispute_message = await txworld.dispute_message(dispute_id=dispute)
    ret = await txworld.return_(order_id=order)
    return_item = await txworld.return_item(return_id=ret, order_item_id=item)
    commission = await txworld.commission(order_id=order)
    row = await txworld.get("orders", order)
    history = {r["id"] for r in await txworld.db.fetch(
        "SELECT id FROM market.order_status_history WHERE order_id = $1", order)}  # fmt: skip
    rows = {
        "orders": order, "order_items": item, "order_tracking": tracking, "disputes": dispute,
        "dispute_messages": dispute_message, "returns": ret, "return_items": return_item,
    }  # fmt: skip
    parties = [row["buyer_id"], row["seller_id"], courier, await txworld.admin("accounting")]
    stranger = await txworld.buyer()
    for user in parties:
        await act_as(txworld, user)
        for table, row_id in rows.items():
            assert row_id in await visible(txworld, table), (user, table)
        assert await visible(txworld, "order_status_history") == history
    await act_as(txworld, row["seller_id"])
    assert commission in await visible(txworld, "commissions")
    await act_as(txworld, stranger)
    for table in rows:
        assert await visible(txworld, table) == set(), table
    assert await visible(txworld, "commissions") == set()


async def test_a_chat_is_seen_by_its_participants_only(txworld: World) -> None:
    member, stranger = await txworld.buyer(), await txworld.buyer()
    chat = await txworld.chat(created_by=member)
    participant = await txworld.participant(chat, member)
    message = await txworld.message(chat, member)
    read = await txworld.message_read(message, member)
    await act_as(txworld, member)
    assert await visible(txworld, "chats") == {chat}
    assert await visible(txworld, "chat_participants") == {participant}
    assert await visible(txworld, "messages") == {message}
    assert await visible(txworld, "message_reads") == {read}
    await act_as(txworld, stranger)
    for table in ("chats", "chat_participants", "messages", "message_reads"):
        assert await visible(txworld, table) == set(), table
    await rejected(
        txworld.db,
        txworld.db.execute(
            "INSERT INTO market.messages (chat_id, sender_id, content) VALUES ($1, $2, 'hi')",
            chat,
            stranger,
        ),
        asyncpg.InsufficientPrivilegeError,
    )


async def test_notifications_are_private_and_only_their_read_state_is_writable(
    txworld: World,
) -> None:
    me = await txworld.buyer()
    mine, theirs = await txworld.notification(me), await txworld.notification()
    await act_as(txworld, me)
    assert await visible(txworld, "notifications") == {mine}
    await txworld.db.execute("UPDATE market.notifications SET is_read = true WHERE id = $1", mine)
    assert (
        await txworld.db.execute(
            "UPDATE market.notifications SET is_read = true WHERE id = $1", theirs
        )
        == "UPDATE 0"
    )
    await rejected(
        txworld.db,
        txworld.db.execute("UPDATE market.notifications SET title = 'x' WHERE id = $1", mine),
        asyncpg.InsufficientPrivilegeError,
    )
    await as_owner(txworld)
    assert await txworld.value("notifications", "is_read", mine) is True


async def test_a_role_manager_grants_admin_roles_but_not_super_admin(txworld: World) -> None:
    manager, target = await txworld.admin("role_manager"), await txworld.user("admin")
    grant = (
        "INSERT INTO market.admin_roles (user_id, role_type, permissions, granted_by)"
        " VALUES ($1, $2, '{}', $3) RETURNING id"
    )
    await act_as(txworld, manager)
    assert await txworld.db.fetchval(grant, target, "accounting", manager) is not None
    await rejected(
        txworld.db,
        txworld.db.fetchval(grant, target, "super_admin", manager),
        asyncpg.InsufficientPrivilegeError,
    )
    await as_owner(txworld)
    chief = await txworld.admin("super_admin")
    await act_as(txworld, chief)
    assert await txworld.db.fetchval(grant, target, "super_admin", chief) is not None


async def test_an_admin_sees_only_their_own_grants_unless_role_manager(txworld: World) -> None:
    accountant = await txworld.admin("accounting")
    manager = await txworld.admin("role_manager")
    await act_as(txworld, accountant)
    own = await txworld.db.fetch("SELECT user_id FROM market.admin_roles")
    assert {r["user_id"] for r in own} == {accountant}
    await act_as(txworld, manager)
    everyone = await txworld.db.fetch("SELECT user_id FROM market.admin_roles")
    assert {accountant, manager} <= {r["user_id"] for r in everyone}


async def test_an_expired_accounting_grant_gives_no_access(txworld: World) -> None:
    admin = await txworld.user("admin")
    now = datetime.now(UTC)
    await txworld.admin_role(
        user_id=admin,
        role_type="accounting",
        granted_at=now - timedelta(days=9),
        expires_at=now - timedelta(days=1),
    )
    wallet = await txworld.wallet()
    await act_as(txworld, admin)
    assert wallet not in await visible(txworld, "wallets")


async def test_payouts_are_seen_by_their_seller_and_managed_by_accounting(txworld: World) -> None:
    seller = await txworld.seller()
    payout = await txworld.payout(seller_id=seller)
    accountant = await txworld.admin("accounting")
    await act_as(txworld, seller)
    assert await visible(txworld, "payouts") == {payout}
    assert (
        await txworld.db.execute(
            "UPDATE market.payouts SET status = 'completed' WHERE id = $1", payout
        )
        == "UPDATE 0"
    )
    await act_as(txworld, accountant)
    assert (
        await txworld.db.execute(
            "UPDATE market.payouts SET status = 'processing' WHERE id = $1", payout
        )
        == "UPDATE 1"
    )
    new = await txworld.db.fetchval(
        "INSERT INTO market.payouts (seller_id, amount, method) VALUES ($1, $2, 'gogomoney')"
        " RETURNING id",
        seller,
        D(10),
    )
    assert new is not None


async def test_settings_public_to_all_private_to_technical_access(txworld: World) -> None:
    public = await txworld.setting(is_public=True)
    private = await txworld.setting()
    engineer = await txworld.admin("technical_access")
    await act_as(txworld, await txworld.buyer())
    assert public in await visible(txworld, "settings")
    assert private not in await visible(txworld, "settings")
    await rejected(
        txworld.db,
        txworld.db.execute(
            "INSERT INTO market.settings (key, value, type) VALUES ('site.x', '1', 'number')"
        ),
        asyncpg.InsufficientPrivilegeError,
    )
    await act_as(txworld, engineer)
    assert {public, private} <= await visible(txworld, "settings")
    await txworld.db.execute(
        "INSERT INTO market.settings (key, value, type) VALUES ('site.x', '1', 'number')"
    )


@pytest.mark.parametrize("table", ["audit_logs", "analytics_events"])
async def test_logs_are_read_with_technical_access_only(txworld: World, table: str) -> None:
    row = await txworld.make(table)
    accountant, engineer = (
        await txworld.admin("accounting"),
        await txworld.admin("technical_access"),
    )
    await act_as(txworld, accountant)
    assert row not in await visible(txworld, table)
    await act_as(txworld, engineer)
    assert row in await visible(txworld, table)


async def test_story_viewers_are_seen_by_the_viewer_and_the_author(txworld: World) -> None:
    author, viewer = await txworld.seller(), await txworld.buyer()
    view = await txworld.story_view(await txworld.story(author), viewer)
    for user, sees in ((author, True), (viewer, True), (await txworld.buyer(), False)):
        await act_as(txworld, user)
        assert (view in await visible(txworld, "story_views")) is sees


async def test_private_user_columns_and_promo_codes_are_not_readable(txworld: World) -> None:
    user = await txworld.buyer()
    await txworld.promo_code()
    await act_as(txworld, user)
    name = await txworld.db.fetchval("SELECT first_name FROM market.users WHERE id = $1", user)
    assert name == "Aziz"
    for query in ("SELECT email FROM market.users", "SELECT password_hash FROM market.users",
                  "SELECT code FROM market.promo_codes"):  # fmt: skip
        await rejected(txworld.db, txworld.db.fetch(query), asyncpg.InsufficientPrivilegeError)
