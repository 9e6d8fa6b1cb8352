"""Fixtures for the browser pages of the api (the demo web app, /docs, /dev/mail): the demo
data of tools/analyst.py, a real gateway process (tests/gateway's fixtures), the real api
app served on a loopback port over the same database, and pages of headless Chromium, each
in a browser context of its own (its own storage: one signed-in user per page), driven over
the DevTools protocol with tests/clients/drivers.py's client.

Screenshots go to test-output/web/ (git-ignored)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from websockets.asyncio.client import connect

from api.app import create_app
from kernel.config import load_settings
from realms.analyst.credentials import hash_password
from tests.clients.conftest import chromium  # the session's headless Chromium
from tests.clients.drivers import Cdp, Chromium
from tests.gateway import conftest as gateway_fixtures
from tools import analyst

__all__ = ["chromium"]

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "test-output" / "web"

start_gateway = gateway_fixtures.start_gateway

# Resolves with the (truthy) value of `check()` once it holds: checked now and after every
# change of the DOM, so waiting takes no fixed time; rejects after the deadline.
_WAIT = """
(check, timeoutMs, label) => new Promise((resolve, reject) => {
  let observer = null;
  let timer = null;
  const attempt = () => {
    let value;
    try { value = check(); } catch (_) { value = undefined; }
    if (!value) return false;
    if (observer) observer.disconnect();
    clearTimeout(timer);
    resolve(value instanceof Node ? true : value);  // an element found: true
    return true;
  };
  if (attempt()) return;
  observer = new MutationObserver(attempt);
  observer.observe(document, {
    subtree: true, childList: true, attributes: true, characterData: true,
  });
  timer = setTimeout(() => {
    observer.disconnect();
    reject(new Error('timed out waiting for ' + label));
  }, timeoutMs);
})
"""


class Page:
    """One tab of headless Chromium in a browser context of its own."""

    def __init__(self, cdp: Cdp, context: str, target: str, session: str, name: str) -> None:
        self.cdp = cdp
        self.context = context
        self.target = target
        self.session = session
        self.name = name
        self.requests: list[str] = []

    @classmethod
    async def open(cls, browser: Chromium, name: str) -> Page:
        cdp = Cdp(await connect(browser.devtools_url, max_size=None, compression=None))
        context = (await cdp.send("Target.createBrowserContext"))["browserContextId"]
        target = await cdp.send(
            "Target.createTarget", {"url": "about:blank", "browserContextId": context}
        )
        attached = await cdp.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = cls(cdp, context, target["targetId"], attached["sessionId"], name)
        for method in ("Runtime.enable", "Page.enable", "Network.enable", "Log.enable"):
            await page.send(method)
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1200, "height": 780, "deviceScaleFactor": 1, "mobile": False},
        )
        return page

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.cdp.send(method, params, session=self.session)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})
        await self.cdp.event("Page.loadEventFired")

    def requested_urls(self) -> list[str]:
        """Every URL the page asked the network for so far."""
        return [
            e["params"]["request"]["url"]
            for e in self.cdp._events
            if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == self.session
        ]

    def log_entries(self) -> list[str]:
        """The browser's own messages about the page (CSP refusals, failed loads...)."""
        return [
            f"{e['params']['entry']['level']}: {e['params']['entry']['text']}"
            for e in self.cdp._events
            if e.get("method") == "Log.entryAdded" and e.get("sessionId") == self.session
        ]

    async def eval(self, expression: str, timeout: float = 30) -> Any:
        result = await asyncio.wait_for(
            self.send(
                "Runtime.evaluate",
                {"expression": expression, "awaitPromise": True, "returnByValue": True},
            ),
            timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or json.dumps(details)[:1500]
            raise AssertionError(f"{self.name}: {text}\n" + "\n".join(self.cdp.console[-30:]))
        return result["result"].get("value")

    async def wait(self, condition: str, timeout: float = 20) -> Any:
        """The value of the JS expression `condition` once it is truthy."""
        label = json.dumps(condition)
        try:
            return await self.eval(
                f"({_WAIT})(() => ({condition}), {int(timeout * 1000)}, {label})", timeout + 10
            )
        except AssertionError as exc:
            shown = await self.eval("document.body.innerText.slice(0, 2000)")
            raise AssertionError(f"{exc}\n--- {self.name}: the page shows ---\n{shown}") from None

    async def click(self, selector: str) -> None:
        await self.wait(f"!!document.querySelector({json.dumps(selector)})")
        await self.eval(f"document.querySelector({json.dumps(selector)}).click()")

    async def fill(self, selector: str, text: str) -> None:
        """Focus the field and type `text` as a keyboard would (input events included)."""
        await self.wait(f"!!document.querySelector({json.dumps(selector)})")
        await self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.focus(); e.select && e.select(); })()"
        )
        await self.send("Input.insertText", {"text": text})

    async def text(self, selector: str) -> str:
        value = await self.eval(
            f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''"
        )
        return str(value)

    async def screenshot(self, name: str) -> Path:
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / name
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def close(self) -> None:
        try:
            await self.cdp.send("Target.closeTarget", {"targetId": self.target})
            await self.cdp.send("Target.disposeBrowserContext", {"browserContextId": self.context})
        finally:
            await self.cdp.close()
            if self.cdp.console:  # shown when the test fails
                print(f"--- {self.name}: browser console ---\n" + "\n".join(self.cdp.console))


@pytest.fixture
async def pages(chromium: Chromium) -> AsyncIterator[Callable[[str], Awaitable[Page]]]:
    opened: list[Page] = []

    async def open_(name: str) -> Page:
        page = await Page.open(chromium, name)
        opened.append(page)
        return page

    yield open_
    for page in opened:
        await page.close()


@pytest.fixture
async def demo(db: asyncpg.Connection) -> analyst.DemoData:
    """`make demo`'s data of the analyst realm (a cheap bcrypt cost for the password)."""
    return await analyst.seed_demo(db, password_hash=await hash_password(analyst.DEMO_PASSWORD, 4))


class WebApi:
    """The api app on a loopback port (this test's event loop serves the browser)."""

    def __init__(self, server: TestServer) -> None:
        self.server = server

    @property
    def url(self) -> str:
        return str(self.server.make_url("/"))


StartApi = Callable[..., Awaitable[WebApi]]


@pytest.fixture
async def start_api(dsn: str, secret: str) -> AsyncIterator[StartApi]:
    """Start the real api app on this test's database; `env` adds settings."""
    servers: list[TestServer] = []

    async def start(**env: str) -> WebApi:
        settings = load_settings(
            {"DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret, "BCRYPT_ROUNDS": "4", **env}
        )
        server = TestServer(create_app(settings), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return WebApi(server)

    yield start
    for server in servers:
        await server.close()  # before this test's database is dropped
