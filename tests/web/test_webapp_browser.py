"""The demo web app in headless Chromium, against a real gateway process and the real api on
the same database seeded with `make demo`'s data: two users in two windows sign in (an
e-mail code shown by the dev mail catcher; a password), see the history and scroll back to
the beginning, see each other online, typing and reading, chat live, get unread badges, and
one of them works through the notification bell. Screenshots: test-output/web/."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import asyncpg

from kernel import notify
from kernel.tokens import sign_access_token
from tests.gateway.conftest import Starter
from tests.web.conftest import Page, StartApi
from tools import analyst

OpenPage = Callable[[str], Awaitable[Page]]


def q(selector: str) -> str:
    """A JS expression: the element `selector` names (or null)."""
    return f"document.querySelector({json.dumps(selector)})"


def count(selector: str) -> str:
    return f"document.querySelectorAll({json.dumps(selector)}).length"


async def sign_in_with_code(page: Page, email: str) -> None:
    await page.wait(f"!{q('#signin')}.hidden")
    await page.fill("#email", email)
    await page.click("#signin-submit")  # "Send code"
    # Dev mode: the page shows the code the api just sent (from the dev mail catcher).
    shown = await page.wait(f"{q('#dev-code .code')} && {q('#dev-code .code')}.textContent")
    assert len(shown) == 6 and shown.isdigit()
    await page.screenshot(f"{page.name}-1-sign-in-code.png")
    await page.click("#use-code")
    assert await page.eval(f"{q('#code')}.value") == shown
    await page.click("#signin-submit")  # "Sign in"
    await page.wait("document.body.dataset.ready === 'true'")


async def sign_in_with_password(page: Page, email: str, password: str) -> None:
    await page.wait(f"!{q('#signin')}.hidden")
    await page.click(".tabs button[data-mode=password]")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("#signin-submit")
    await page.wait("document.body.dataset.ready === 'true'")


async def test_two_users_chat_in_two_browser_windows(
    demo: analyst.DemoData,
    db: asyncpg.Connection,
    start_gateway: Starter,
    start_api: StartApi,
    pages: OpenPage,
) -> None:
    gateway = await start_gateway()
    api = await start_api(PUBLIC_GATEWAY_URL=gateway.url)
    users = {u.email: u for u in demo.users}
    asha, tom = users["asha.rao@example.com"], users["tom.trader@example.com"]
    desk, pro = (c.channel for c in demo.channels)

    trader = await pages("tom")
    await trader.goto(api.url)
    await sign_in_with_code(trader, tom.email)
    assert await trader.text("#me") == f"{tom.email} · trader"
    await trader.wait(f"{q('#conn')}.dataset.state === 'connected'")

    # The channels of the realm's analysts; the first one is open with its latest page.
    await trader.wait(f"{q('#chat-room')}.dataset.channel === {json.dumps(desk)}")
    assert await trader.wait(f"{count('#messages .msg')} === 30")
    assert "Closing note, please? (day 3)" in await trader.text("#messages .msg:last-child .text")
    # Tom is subscribed to Pro: the premium room is not locked for him.
    assert await trader.eval(f"{q(f'.room[data-channel={json.dumps(pro)}] .lock')}.hidden")

    # Infinite scroll: at the top of the list the older page is loaded, down to message 1.
    await trader.eval(f"{q('#messages')}.scrollTop = 0")
    await trader.wait(f"{count('#messages .msg')} === 36")
    assert await trader.eval(f"{q('#messages .msg')}.dataset.seq") == "1"
    assert "beginning of the channel" in await trader.text("#older")
    await trader.eval(f"{q('#messages')}.scrollTop = {q('#messages')}.scrollHeight")

    author = await pages("asha")
    await author.goto(api.url)
    await sign_in_with_password(author, asha.email, analyst.DEMO_PASSWORD)
    await author.wait(f"{q('#chat-room')}.dataset.channel === {json.dumps(desk)}")

    # Presence, both ways.
    await trader.wait(f"{q(f'#presence li[data-user={json.dumps(str(asha.user_id))}]')}")
    await author.wait(f"{q(f'#presence li[data-user={json.dumps(str(tom.user_id))}]')}")
    assert "Asha Rao" in await trader.text("#presence")

    # Typing, then the message, live in the other window.
    await author.fill("#text", "Morning Tom, levels are up")
    await trader.wait(f"{q('#typing')}.textContent === 'Asha Rao is typing…'")
    await trader.screenshot("tom-2-typing.png")
    await author.click("#composer button[type=submit]")
    await trader.wait(
        f"{q('#messages .msg:last-child .text')}.textContent === 'Morning Tom, levels are up'"
    )
    assert await trader.text("#messages .msg:last-child .author") == "Asha Rao"
    assert await trader.eval(f"{q('#messages .msg:last-child')}.dataset.seq") == "37"
    await trader.wait(f"{q('#typing')}.textContent === ''")

    # Tom's window shows the channel, so it marks it read: Asha sees the read receipt.
    seen = q('#messages .msg[data-seq="37"] .receipt')
    receipt = await author.wait(f"{seen} && {seen}.textContent")
    assert receipt.startswith("✓ Seen by User ")
    await author.screenshot("asha-1-chat.png")

    # Tom answers in the Pro Room; Asha, still in the Market Desk, gets an unread badge.
    await trader.click(f".room[data-channel={json.dumps(pro)}]")
    await trader.wait(f"{q('#chat-room')}.dataset.channel === {json.dumps(pro)}")
    assert await trader.wait(f"{count('#messages .msg')} === 5")
    await trader.fill("#text", "In TATASTEEL at 169, thanks")
    await trader.click("#composer button[type=submit]")
    pro_badge = f".room[data-channel={json.dumps(pro)}] .badge"
    await author.wait(f"!{q(pro_badge)}.hidden && {q(pro_badge)}.textContent === '1'")
    await author.screenshot("asha-2-unread-badge.png")
    await author.click(f".room[data-channel={json.dumps(pro)}]")
    await author.wait(
        f"{q('#messages .msg:last-child .text')}.textContent === 'In TATASTEEL at 169, thanks'"
    )
    await author.wait(f"{q(pro_badge)}.hidden")
    await trader.wait(f"{q('#messages .msg:last-child .receipt')}")
    await trader.screenshot("tom-3-chat.png")

    # The bell: the welcome notification was unread at sign-in; a new one arrives live.
    await trader.wait(f"{q('#bell-count')}.textContent === '1' && !{q('#bell-count')}.hidden")
    await notify.notify(
        db,
        event_key="test:web:bell",
        recipients=[tom.user_id],
        notification_type="new_post",
        title="New post by Asha Rao",
        message="NIFTY weekly outlook",
        send_email=False,
        send_push=False,
    )
    await trader.wait(f"{q('#bell-count')}.textContent === '2'")
    await trader.click("#bell")
    await trader.wait(f"{count('#notifications .notif.unread')} === 2")
    assert await trader.text("#notifications .notif:first-child strong") == "New post by Asha Rao"
    await trader.screenshot("tom-4-notifications.png")
    await trader.click("#notifications .notif:first-child .mark-read")
    await trader.wait(f"{q('#bell-count')}.textContent === '1'")  # through the gateway
    await trader.click("#read-all")
    await trader.wait(f"{q('#bell-count')}.hidden && {count('#notifications .notif.unread')} === 0")
    unread = await db.fetchval(
        "SELECT count(*) FROM analyst.notifications WHERE user_id = $1 AND read_at IS NULL",
        tom.user_id,
    )
    assert unread == 0

    # Everything the pages loaded came from the api and the gateway, nothing from elsewhere.
    for page in (trader, author):
        outside = [url for url in page.requested_urls() if not url.startswith((api.url, "data:"))]
        assert outside == [], outside


async def test_a_new_account_signs_up_with_a_code(
    demo: analyst.DemoData, start_gateway: Starter, start_api: StartApi, pages: OpenPage
) -> None:
    gateway = await start_gateway()
    api = await start_api(PUBLIC_GATEWAY_URL=gateway.url)
    page = await pages("newcomer")
    await page.goto(api.url)
    await page.wait(f"!{q('#signin')}.hidden")
    await page.click(".tabs button[data-mode=signup]")
    await page.fill("#email", "new.trader@example.com")
    await page.fill("#password", "a-long-password")
    await page.click("#signin-submit")  # sends the signup code
    await page.wait(f"{q('#dev-code .code')}")
    await page.click("#use-code")
    await page.click("#signin-submit")  # "Create account"
    await page.wait("document.body.dataset.ready === 'true'")
    assert await page.text("#me") == "new.trader@example.com · trader"

    # A code for an address without an account is not sent, and the page says so.
    await page.click("#signout")
    await page.cdp.event("Page.loadEventFired")  # signing out reloads the page
    await page.wait(f"!{q('#signin')}.hidden")
    await page.fill("#email", "nobody@example.com")
    await page.click("#signin-submit")
    assert "No code was sent" in await page.wait(
        f"!{q('#dev-code')}.hidden && {q('#dev-code')}.textContent"
    )


async def test_a_make_demo_link_signs_the_window_in(
    demo: analyst.DemoData,
    secret: str,
    start_gateway: Starter,
    start_api: StartApi,
    pages: OpenPage,
) -> None:
    """`make demo` prints `<app>/#token=<access token>` links: one click, signed in."""
    gateway = await start_gateway()
    api = await start_api(PUBLIC_GATEWAY_URL=gateway.url)
    tara = next(u for u in demo.users if u.email == "tara.trader@example.com")
    desk, pro = (c.channel for c in demo.channels)
    page = await pages("tara")
    token = sign_access_token(secret, str(tara.user_id), "analyst", 600)
    await page.goto(f"{api.url}#token={token}")
    await page.wait("document.body.dataset.ready === 'true'")
    assert await page.text("#me") == "tara.trader@example.com · trader"
    assert "token" not in await page.eval("location.href")  # not left in the address bar
    await page.wait(f"{q('#chat-room')}.dataset.channel === {json.dumps(desk)}")
    # Tara has no subscription: the premium room is locked for her, and says why.
    room = f".room[data-channel={json.dumps(pro)}]"
    await page.wait(f"!{q(room + ' .lock')}.hidden")
    await page.click(room)
    reason = await page.wait(f"!{q('#locked')}.hidden && {q('#locked')}.textContent")
    assert "needs an active subscription with chat access" in reason
    assert await page.eval(f"{q('#composer')}.hidden")
    await page.screenshot("tara-locked-channel.png")


async def test_the_session_outlives_its_access_tokens(
    demo: analyst.DemoData, start_gateway: Starter, start_api: StartApi, pages: OpenPage
) -> None:
    """Access tokens of 4 s: the page trades its refresh token for new ones (REST) and hands
    them to the socket (`refresh`) before each expires, so the socket is never closed."""
    gateway = await start_gateway(GATEWAY_REFRESH_GRACE="1")
    api = await start_api(PUBLIC_GATEWAY_URL=gateway.url, ACCESS_TOKEN_TTL="4")
    page = await pages("asha")
    await page.goto(api.url)
    await sign_in_with_password(page, "asha.rao@example.com", analyst.DEMO_PASSWORD)
    session = "JSON.parse(sessionStorage.getItem('switchboard.session'))"
    first = await page.eval(f"{session}.access")
    await page.eval(
        "window.states = []; switchboard.client.on('state', (s) => states.push(s.state))"
    )
    # Let the first token, and the grace after it, run out (time itself is under test here).
    exp = await page.eval(f"JSON.parse(atob({session}.access.split('.')[1])).exp")
    await page.eval(
        f"new Promise((resolve) => setTimeout(resolve, ({exp} + 2) * 1000 - Date.now()))", 30
    )
    assert await page.eval(f"{session}.access") != first
    assert await page.eval("window.states") == []  # never disconnected
    assert await page.eval(f"{q('#conn')}.dataset.state") == "connected"
    await page.fill("#text", "still here")
    await page.click("#composer button[type=submit]")
    await page.wait(f"{q('#messages .msg:last-child .text')}.textContent === 'still here'")
