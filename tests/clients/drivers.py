"""Drive the client libraries from tests: the same commands for the Python client (in this
process), the JS client in Node (a child process speaking JSON lines) and the JS client in
headless Chromium (a page evaluated over the DevTools protocol).

Each driver answers `rpc({"cmd": ...})` with `{"ok": value}` or `{"error": {code, message}}`;
`Driver` wraps that into the calls the tests use. What a client reports through its
callbacks is recorded (messages, states, events, notifications, errors, rejoins), and
`wait` waits for it with a deadline, woken by each new record.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from switchboard_client import SwitchboardClient, SwitchboardError
from switchboard_client.client import Backoff
from websockets.asyncio.client import ClientConnection, connect

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
NODE_DRIVER = HERE / "js" / "node_driver.mjs"


class ClientError(Exception):
    """A client call that failed: the client's error code and message."""

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Driver:
    kind = "?"

    async def rpc(self, cmd: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    @staticmethod
    def _value(answer: dict[str, Any]) -> Any:
        if "error" in answer:
            error = answer["error"]
            raise ClientError(error.get("code"), error.get("message", ""))
        return answer.get("ok")

    async def connect(
        self,
        name: str,
        url: str,
        user: object,
        *,
        token_url: str | None = None,
        token: str | None = None,
        ttl: int = 600,
        format: str = "json",
        backoff_max_ms: int = 1000,
    ) -> dict[str, Any]:
        """A client `name` for `user`: a static `token`, or a provider fetching `token_url`."""
        cmd = {
            "cmd": "connect",
            "name": name,
            "url": url,
            "user": str(user),
            "tokenUrl": token_url,
            "token": token,
            "ttl": ttl,
            "format": format,
            "backoffMaxMs": backoff_max_ms,
        }
        return dict(self._value(await self.rpc(cmd)))

    async def attempt(self, name: str, method: str, **args: Any) -> dict[str, Any]:
        """The raw outcome of a call: {"ok": ...} or {"error": ...}."""
        return await self.rpc({"cmd": "call", "name": name, "method": method, "args": args})

    async def call(self, name: str, method: str, **args: Any) -> Any:
        return self._value(await self.attempt(name, method, **args))

    async def begin(self, name: str, key: str, method: str, **args: Any) -> None:
        """Start a call without waiting for it; `result(key)` awaits it."""
        cmd = {"cmd": "start", "name": name, "key": key, "method": method, "args": args}
        self._value(await self.rpc(cmd))

    async def result(self, key: str, timeout: float = 30) -> Any:
        return self._value(await self.rpc({"cmd": "result", "key": key}, timeout))

    async def wait(
        self, name: str, what: str, count: int, timeout: float = 20, **filters: Any
    ) -> list[Any]:
        """At least `count` recorded `what` (messages, states, events, ...) matching filters."""
        cmd = {
            "cmd": "wait",
            "name": name,
            "what": what,
            "count": count,
            "timeoutMs": int(timeout * 1000),
            **filters,
        }
        return list(self._value(await self.rpc(cmd, timeout + 10)))

    async def snapshot(self, name: str) -> dict[str, Any]:
        return dict(self._value(await self.rpc({"cmd": "snapshot", "name": name})))

    async def close(self, name: str) -> dict[str, Any]:
        return dict(self._value(await self.rpc({"cmd": "close", "name": name})))


# --- Python ---------------------------------------------------------------------------------


class _Record:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.rejoins: list[dict[str, Any]] = []
        self.resets: list[dict[str, Any]] = []
        self.unread_changes = 0


class PyDriver(Driver):
    """The Python client, in this test's event loop."""

    kind = "python"

    def __init__(self) -> None:
        self.clients: dict[str, tuple[SwitchboardClient, _Record]] = {}
        self.started: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def _notify(self) -> None:
        """Something was recorded: wake the waits whose condition now holds."""
        for check, future in list(self._waiters):
            if not future.done() and check():
                future.set_result(None)

    def _record(self, client: SwitchboardClient) -> _Record:
        rec = _Record()

        def message(m: dict[str, Any]) -> None:
            rec.messages.append(
                {
                    "channel": m["channel"],
                    "seq": m.get("seq"),
                    "id": m["id"],
                    "user_id": m.get("user_id"),
                    "client_id": m.get("client_id"),
                    "text": m.get("text"),
                }
            )
            self._notify()

        def state(s: dict[str, Any]) -> None:
            rec.states.append(
                {"state": s["state"], "code": s.get("code"), "reason": s.get("reason")}
            )
            self._notify()

        def error(e: BaseException) -> None:
            rec.errors.append({"code": getattr(e, "code", None), "message": str(e)})
            self._notify()

        def adder(items: list[dict[str, Any]]) -> Any:
            def add(item: dict[str, Any]) -> None:
                items.append(item)
                self._notify()

            return add

        def unread(_: object) -> None:
            rec.unread_changes += 1
            self._notify()

        client.on("message", message)
        client.on("state", state)
        client.on("error", error)
        client.on("event", adder(rec.events))
        client.on("notification", adder(rec.notifications))
        client.on("rejoin", adder(rec.rejoins))
        client.on("reset", adder(rec.resets))
        client.on("unread", unread)
        return rec

    @staticmethod
    async def _invoke(client: SwitchboardClient, method: str, a: dict[str, Any]) -> Any:
        match method:
            case "join":
                return await client.join(a["channel"], since=a.get("since"))
            case "leave":
                return await client.leave(a["channel"])
            case "send":
                return await client.send(a["channel"], a["text"], client_id=a.get("clientId"))
            case "history":
                return await client.history(
                    a["channel"], before=a.get("before"), after=a.get("after"), limit=a.get("limit")
                )
            case "typing":
                return await client.typing(a["channel"])
            case "read":
                return await client.read(a["channel"], a["seq"])
            case "presence":
                return await client.presence(a["channel"])
            case "readNotifications":
                ids = a.get("ids")
                return await client.read_notifications(ids, all=ids is None)
            case "ping":
                return await client.ping()
            case "refresh":
                return await client.refresh()
        raise ValueError(f"unknown method {method}")

    @staticmethod
    async def _outcome(coro: Any) -> dict[str, Any]:
        try:
            return {"ok": await coro}
        except SwitchboardError as exc:
            return {"error": {"code": exc.code, "message": exc.message}}

    def _select(self, rec: _Record, cmd: dict[str, Any]) -> list[Any]:
        what = cmd["what"]
        if what == "messages":
            channel = cmd.get("channel")
            return [m for m in rec.messages if not channel or m["channel"] == channel]
        if what == "states":
            return [s for s in rec.states if not cmd.get("state") or s["state"] == cmd["state"]]
        if what == "events":
            return [
                e
                for e in rec.events
                if (not cmd.get("kind") or e.get("kind") == cmd["kind"])
                and (not cmd.get("channel") or e.get("channel") == cmd["channel"])
            ]
        items: list[Any] = getattr(rec, what)
        return items

    def _snapshot(self, name: str) -> dict[str, Any]:
        client, rec = self.clients[name]
        return {
            "messages": rec.messages,
            "states": rec.states,
            "events": rec.events,
            "notifications": rec.notifications,
            "errors": rec.errors,
            "rejoins": rec.rejoins,
            "resets": rec.resets,
            "unreadChanges": rec.unread_changes,
            "state": client.state,
            "sessionId": client.session_id,
            "userId": client.user_id,
            "userStream": client.user_stream,
            "unread": {ch: client.unread(ch) for ch in client.channels},
            "lastSeq": {ch: client.last_seq(ch) for ch in client.channels},
            "notificationsUnread": client.notifications_unread,
        }

    async def rpc(self, cmd: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        match cmd["cmd"]:
            case "connect":
                token: Any = cmd.get("token")
                if token is None:
                    url, user, ttl = cmd["tokenUrl"], cmd["user"], cmd["ttl"]

                    async def provider() -> str:
                        async with (
                            aiohttp.ClientSession() as http,
                            http.get(url, params={"user": user, "ttl": str(ttl)}) as res,
                        ):
                            res.raise_for_status()
                            return await res.text()

                    token = provider
                client = SwitchboardClient(
                    cmd["url"],
                    token,
                    format=cmd.get("format", "json"),
                    backoff=Backoff(initial=0.1, maximum=cmd.get("backoffMaxMs", 1000) / 1000),
                )
                rec = self._record(client)
                self.clients[cmd["name"]] = (client, rec)
                result = await self._outcome(client.connect())
                if "ok" in result:
                    result["ok"] = {
                        "userId": client.user_id,
                        "sessionId": client.session_id,
                        "userStream": client.user_stream,
                    }
                return result
            case "call":
                client = self.clients[cmd["name"]][0]
                return await self._outcome(self._invoke(client, cmd["method"], cmd["args"]))
            case "start":
                client = self.clients[cmd["name"]][0]
                self.started[cmd["key"]] = asyncio.ensure_future(
                    self._outcome(self._invoke(client, cmd["method"], cmd["args"]))
                )
                return {"ok": None}
            case "result":
                return await asyncio.wait_for(self.started[cmd["key"]], timeout)
            case "wait":
                rec = self.clients[cmd["name"]][1]

                def enough() -> bool:
                    return len(self._select(rec, cmd)) >= cmd["count"]

                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                waiter = (enough, future)
                self._waiters.append(waiter)
                try:
                    if enough():
                        future.set_result(None)
                    await asyncio.wait_for(future, cmd["timeoutMs"] / 1000)
                except TimeoutError:
                    have = self._select(rec, cmd)
                    return {
                        "error": {
                            "code": None,
                            "message": f"timed out waiting for {cmd['count']} {cmd['what']}"
                            f" (have {len(have)}): {json.dumps(have)[:800]}",
                        }
                    }
                finally:
                    self._waiters.remove(waiter)
                return {"ok": self._select(rec, cmd)}
            case "snapshot":
                return {"ok": self._snapshot(cmd["name"])}
            case "close":
                await self.clients[cmd["name"]][0].close()
                return {"ok": self._snapshot(cmd["name"])}
        return {"error": {"code": "driver", "message": f"unknown command {cmd['cmd']}"}}

    async def stop(self) -> None:
        for client, _ in self.clients.values():
            await client.close()
        for task in self.started.values():
            task.cancel()


# --- Node -----------------------------------------------------------------------------------


class NodeDriver(Driver):
    """`node tests/clients/js/node_driver.mjs`: JSON command lines in, JSON answer lines out."""

    kind = "node"

    def __init__(self, proc: asyncio.subprocess.Process, info: dict[str, Any]) -> None:
        self.proc = proc
        self.info = info
        self.stderr: list[str] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.ensure_future(self._read())
        self._errors = asyncio.ensure_future(self._read_stderr())

    @classmethod
    async def start(cls, websocket: str = "ws") -> NodeDriver:
        """`websocket`: "ws" passes the `ws` package in; "global" leaves the client to
        Node's own WebSocket (Node 22+, or Node 20-21 with --experimental-websocket)."""
        node = shutil.which("node")
        assert node, "node is not installed"
        flags: list[str] = []
        if websocket == "global":
            probe = await asyncio.create_subprocess_exec(
                node, "--version", stdout=asyncio.subprocess.PIPE
            )
            version = (await probe.communicate())[0].decode()
            if int(version.strip().lstrip("v").split(".")[0]) < 22:
                flags.append("--experimental-websocket")
        proc = await asyncio.create_subprocess_exec(
            node,
            *flags,
            str(NODE_DRIVER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "SB_WEBSOCKET": websocket},
            limit=1 << 24,
        )
        assert proc.stdout is not None and proc.stderr is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            err = await proc.stderr.read()
            raise RuntimeError(f"node driver did not start: {err.decode()}")
        ready = json.loads(line)
        return cls(proc, ready["ok"])

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            answer = json.loads(line)
            future = self._pending.pop(answer.pop("id"), None)
            if future is not None and not future.done():
                future.set_result(answer)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RuntimeError("node exited:\n" + "".join(self.stderr)))

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr.append(line.decode())

    async def rpc(self, cmd: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdin is not None
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        self.proc.stdin.write((json.dumps({"id": ident, **cmd}) + "\n").encode())
        await self.proc.stdin.drain()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            stderr = "".join(self.stderr)
            raise TimeoutError(f"node: no answer to {cmd}; stderr:\n{stderr}") from None

    async def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the driver closes its clients and exits
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()
        self._errors.cancel()
        if self.stderr:
            print("--- node stderr ---\n" + "".join(self.stderr))  # shown on failure


# --- Chromium -------------------------------------------------------------------------------


class Cdp:
    """A minimal DevTools protocol client over one browser WebSocket (flat sessions)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self.console: list[str] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for data in self.ws:
            message = json.loads(data)
            if "id" in message:
                future = self._pending.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
                continue
            method = message.get("method", "")
            params = message.get("params", {})
            if method == "Runtime.consoleAPICalled":
                args = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
                self.console.append(f"console.{params['type']}: {' '.join(args)}")
            elif method == "Runtime.exceptionThrown":
                self.console.append(f"exception: {json.dumps(params['exceptionDetails'])[:2000]}")
            async with self._arrived:
                self._events.append(message)
                self._arrived.notify_all()

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self.ws.send(json.dumps(message))
        answer = await future
        if "error" in answer:
            raise RuntimeError(f"CDP {method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    async def event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout), self._arrived:
            while True:
                for i, message in enumerate(self._events):
                    if message.get("method") == method:
                        return self._events.pop(i)
                await self._arrived.wait()

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


class Chromium:
    """A headless Chromium process (started once per test session) and its DevTools URL."""

    def __init__(self, binary: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="sb-chromium-")
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        seen: list[str] = []
        for raw in self.proc.stderr:  # until it prints its DevTools address (or exits)
            line = raw.decode(errors="replace")
            seen.append(line)
            if line.startswith("DevTools listening on "):
                self.devtools_url = line.split("DevTools listening on ", 1)[1].strip()
                break
        else:
            raise RuntimeError("chromium exited before listening:\n" + "".join(seen))
        stderr = self.proc.stderr
        threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class BrowserDriver(Driver):
    """A tab of headless Chromium showing tests/clients/js/page.html (served by the test web
    server), which imports /switchboard.js; commands are `window.rpc(cmd)` over CDP."""

    kind = "browser"

    def __init__(self, cdp: Cdp, target: str, session: str) -> None:
        self.cdp = cdp
        self.target = target
        self.session = session

    @classmethod
    async def open(cls, browser: Chromium, page_url: str) -> BrowserDriver:
        cdp = Cdp(await connect(browser.devtools_url, max_size=None, compression=None))
        target = await cdp.send("Target.createTarget", {"url": "about:blank"})
        attached = await cdp.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        session = attached["sessionId"]
        await cdp.send("Runtime.enable", session=session)
        await cdp.send("Page.enable", session=session)
        await cdp.send("Page.navigate", {"url": page_url}, session=session)
        await cdp.event("Page.loadEventFired")
        driver = cls(cdp, target["targetId"], session)
        ready = await driver._evaluate("window.driverReady", 30)
        assert ready == "function", f"no WebSocket in the page: {ready}"
        return driver

    async def _evaluate(self, expression: str, timeout: float) -> Any:
        result = await asyncio.wait_for(
            self.cdp.send(
                "Runtime.evaluate",
                {"expression": expression, "awaitPromise": True, "returnByValue": True},
                session=self.session,
            ),
            timeout,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(
                f"page: {json.dumps(result['exceptionDetails'])[:2000]}\n"
                + "\n".join(self.cdp.console)
            )
        return result["result"].get("value")

    async def rpc(self, cmd: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        answer: dict[str, Any] = await self._evaluate(f"window.rpc({json.dumps(cmd)})", timeout)
        return answer

    async def dom_log(self) -> list[dict[str, Any]]:
        """The results the page wrote into its DOM (one element per command)."""
        text = await self._evaluate(
            "JSON.stringify([...document.querySelectorAll('#log .rpc')].map(e => e.textContent))",
            10,
        )
        return [json.loads(line) for line in json.loads(text)]

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._evaluate("window.rpc({cmd: 'closeAll'})", 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.cdp.send("Target.closeTarget", {"targetId": self.target}), 10
            )
        with contextlib.suppress(Exception):
            await self.cdp.close()
        if self.cdp.console:
            print("--- browser console ---\n" + "\n".join(self.cdp.console))  # shown on failure
