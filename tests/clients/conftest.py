"""Fixtures for the client-library tests: real gateway processes (tests/gateway's fixtures), a
local web server (token endpoint, the browser test page and the JS module), a lossy
WebSocket proxy, and one driver per runtime (Python, Node, headless Chromium).

Node needs clients/js/node_modules (`npm ci`, run here once, under a lock) and Chromium the
Debian `chromium` package; both are installed by `make test` (scripts/lib.sh).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from aiohttp import web
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CLIENTS_JS = ROOT / "clients" / "js"
if str(ROOT / "clients" / "python") not in sys.path:
    sys.path.insert(0, str(ROOT / "clients" / "python"))

from tests.clients.drivers import (  # noqa: E402
    BrowserDriver,
    Chromium,
    Driver,
    NodeDriver,
    PyDriver,
)
from tests.gateway import conftest as gateway_fixtures  # noqa: E402
from tests.gateway.harness import token_for  # noqa: E402

# The gateway fixtures (a populated world, real gateway processes on this test's database).
world = gateway_fixtures.world
start_gateway = gateway_fixtures.start_gateway
gw = gateway_fixtures.gw
connect_as = gateway_fixtures.connect_as

JS_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".html": "text/html"}


class WebServer:
    """GET /token?user=&ttl= mints an access token (counted per user); / is the test page,
    /switchboard.js the client module, /driver_core.mjs the test driver."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.issued: dict[str, int] = {}
        self._issued = asyncio.Condition()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _token(self, request: web.Request) -> web.Response:
        user = request.query["user"]
        ttl = int(request.query.get("ttl", "600"))
        async with self._issued:
            self.issued[user] = self.issued.get(user, 0) + 1
            self._issued.notify_all()
        return web.Response(text=token_for(self.secret, user, ttl=ttl))

    async def wait_issued(self, user: object, count: int, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout), self._issued:
            await self._issued.wait_for(lambda: self.issued.get(str(user), 0) >= count)

    @staticmethod
    def _file(path: Path) -> Any:
        body = path.read_bytes()

        async def serve_file(_: web.Request) -> web.Response:
            return web.Response(
                body=body,
                content_type=JS_TYPES[path.suffix],
                headers={"Cache-Control": "no-store"},
            )

        return serve_file

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/token", self._token)
        app.router.add_get("/", self._file(HERE / "js" / "page.html"))
        app.router.add_get("/switchboard.js", self._file(CLIENTS_JS / "switchboard.js"))
        app.router.add_get("/driver_core.mjs", self._file(HERE / "js" / "driver_core.mjs"))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/"

    @property
    def token_url(self) -> str:
        return self.url + "token"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def web_server(secret: str) -> AsyncIterator[WebServer]:
    server = WebServer(secret)
    await server.start()
    yield server
    await server.stop()


def _decode(data: str | bytes) -> dict[str, Any]:
    frame = msgspec.json.decode(data) if isinstance(data, str) else msgspec.msgpack.decode(data)
    return frame if isinstance(frame, dict) else {}


class LossyProxy:
    """A WebSocket proxy in front of a gateway that misbehaves on request, like a network:

    - `drop_seqs`: drop the `msg` frame with each of these seqs once (a gap to fill);
    - `duplicate_msgs`: write every `msg` frame twice (duplicates to drop);
    - `cut_after_send_ack`: swallow the `ok` answering the first `send`, then abort the
      client's TCP connection (an unacknowledged send to retry).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.drop_seqs: set[int] = set()
        self.duplicate_msgs = False
        self.cut_after_send_ack = False
        self.dropped: list[int] = []
        self.duplicated = 0
        self.swallowed: list[dict[str, Any]] = []
        self.connections = 0
        self.url = ""
        self._server: Any = None

    async def start(self) -> None:
        def select(_conn: ServerConnection, offered: Any) -> Subprotocol | None:
            for name in ("switchboard.v1.msgpack", "switchboard.v1.json"):
                if name in offered:
                    return Subprotocol(name)
            return None

        self._server = await serve(
            self._handle, "127.0.0.1", 0, select_subprotocol=select, compression=None
        )
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/ws"

    async def _handle(self, client: ServerConnection) -> None:
        self.connections += 1
        assert client.request is not None
        query = urlsplit(client.request.path).query
        target = self.upstream + (f"?{query}" if query else "")
        protocols = [Subprotocol(client.subprotocol)] if client.subprotocol else None
        send_refs: set[Any] = set()
        async with connect(target, subprotocols=protocols, compression=None) as upstream:

            async def forward() -> None:
                async for data in client:
                    frame = _decode(data)
                    if frame.get("op") == "send":
                        send_refs.add(frame.get("ref"))
                    await upstream.send(data)

            async def backward() -> None:
                async for data in upstream:
                    frame = _decode(data)
                    op = frame.get("op")
                    if op == "msg" and frame.get("seq") in self.drop_seqs:
                        self.drop_seqs.discard(frame["seq"])
                        self.dropped.append(frame["seq"])
                        continue
                    if op == "ok" and self.cut_after_send_ack and frame.get("ref") in send_refs:
                        self.cut_after_send_ack = False
                        self.swallowed.append(frame)
                        assert client.transport is not None
                        client.transport.abort()
                        return
                    await client.send(data)
                    if op == "msg" and self.duplicate_msgs:
                        await client.send(data)
                        self.duplicated += 1

            tasks = [asyncio.ensure_future(forward()), asyncio.ensure_future(backward())]
            with contextlib.suppress(ConnectionClosed):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def make_proxy() -> AsyncIterator[Any]:
    proxies: list[LossyProxy] = []

    async def make(upstream: str) -> LossyProxy:
        proxy = LossyProxy(upstream)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.stop()


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """clients/js/node_modules, installed with `npm ci` once (under a lock: xdist workers)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are not installed (make test installs them)")
    modules = CLIENTS_JS / "node_modules"
    with open(Path(tempfile.gettempdir()) / "switchboard-npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = json.loads((CLIENTS_JS / "package.json").read_text())["devDependencies"]
        if not all((modules / name / "package.json").exists() for name in wanted):
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=CLIENTS_JS,
                check=True,
            )
    return modules


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    """One headless Chromium for the session (each test opens its own tab)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            break
    else:
        pytest.fail("chromium is not installed (make test installs Debian's `chromium`)")
    browser = Chromium(path)
    yield browser
    browser.stop()


@pytest.fixture(params=["python", "node", "browser"])
async def driver(request: pytest.FixtureRequest, web_server: WebServer) -> AsyncIterator[Driver]:
    """The client library under test, in each runtime: the same commands, the same checks."""
    kind = request.param
    d: Driver
    if kind == "python":
        d = PyDriver()
    elif kind in ("node", "node-global"):
        request.getfixturevalue("node_modules")
        d = await NodeDriver.start("global" if kind == "node-global" else "ws")
        if kind == "node-global":
            assert d.info["websocket"] == "global"
    else:
        d = await BrowserDriver.open(request.getfixturevalue("chromium"), web_server.url)
    yield d
    await d.stop()
