"""Test harness: real gateway processes on loopback and a small WebSocket client for them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from kernel.tokens import sign_access_token
from tests.conftest import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
Frame = dict[str, Any]


# A port found free (tests.conftest.free_port) can be taken by another process before the
# gateway binds it; the harness then starts the gateway again on another, this many times.
PORT_ATTEMPTS = 5


class GatewayProcess:
    """`python -m gateway` started on a free port; `start()` waits for its listening line.
    Unless `fixed_port` (a test that restarts a gateway on the same URL, or shares one port
    between processes), a port taken meanwhile by another process is replaced by a free one."""

    def __init__(self, env: dict[str, str], *, fixed_port: bool = False) -> None:
        self.env = env
        self.fixed_port = fixed_port
        self.port = int(env["GATEWAY_PORT"])
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self._logged = asyncio.Condition()
        self._drain: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                await self._start()
                return
            except PortTaken:
                if self.fixed_port or attempt == PORT_ATTEMPTS:
                    raise
                self.port = free_port()
                self.env = {**self.env, "GATEWAY_PORT": str(self.port)}
                self.log.clear()

    async def _start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        while True:
            line = await asyncio.wait_for(self.proc.stderr.readline(), 30)
            if not line:
                await self.proc.wait()
                text = "".join(self.log)
                if "address already in use" in text:
                    raise PortTaken(f"port {self.port} was taken before the gateway bound it")
                raise RuntimeError("gateway exited before listening:\n" + text)
            self.log.append(line.decode())
            if "event=listening" in self.log[-1]:
                break
        self._drain = asyncio.create_task(self._keep_reading())

    async def _keep_reading(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            async with self._logged:
                self.log.append(line.decode())
                self._logged.notify_all()

    async def logged(self, fragment: str, times: int = 1, timeout: float = 30) -> None:
        """Wait until `fragment` appeared in `times` log lines (children log here too)."""
        async with asyncio.timeout(timeout), self._logged:
            await self._logged.wait_for(lambda: sum(fragment in line for line in self.log) >= times)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        if self._drain is not None:
            await asyncio.wait_for(self._drain, 5)
        return code


class PortTaken(RuntimeError):
    """The gateway could not bind its port: another process took it first."""


class WsClient:
    """A real websockets client speaking the JSON protocol, with awaited expectations.

    A background task reads every frame into an inbox; `expect` takes the first matching
    frame from it (waiting for one), so several coroutines may expect at once.
    """

    def __init__(self, ws: ClientConnection, binary: bool = False) -> None:
        self.ws = ws
        self.binary = binary
        self.inbox: list[Frame] = []  # received, not yet taken by expect()
        self._ref = 0
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str | None = None, **kwargs: Any) -> WsClient:
        target = f"{url}?token={token}" if token else url
        ws = await connect(target, compression=None, **kwargs)
        return cls(ws, binary=ws.subprotocol == "switchboard.v1.msgpack")

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                frame: Frame = (
                    msgspec.msgpack.decode(data)
                    if isinstance(data, bytes)
                    else msgspec.json.decode(data)
                )
                async with self._arrived:
                    self.inbox.append(frame)
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass  # the close code is on self.ws; expect() reports it
        finally:
            async with self._arrived:
                self._arrived.notify_all()

    async def send(self, op: str, **fields: Any) -> int:
        self._ref += 1
        frame = {"op": op, "ref": self._ref, **fields}
        if self.binary:
            await self.ws.send(msgspec.msgpack.encode(frame))
        else:
            await self.ws.send(msgspec.json.encode(frame).decode())
        return self._ref

    async def raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def expect(self, match: Callable[[Frame], bool] | str, timeout: float = 10) -> Frame:
        """The first unconsumed frame that matches (an op name or a predicate), waiting for it.

        Frames that do not match stay in the inbox for later expectations. Raises
        ConnectionError if the socket closes first, TimeoutError after `timeout` seconds.
        """
        test = (lambda f: f.get("op") == match) if isinstance(match, str) else match
        async with asyncio.timeout(timeout), self._arrived:
            while True:
                for i, frame in enumerate(self.inbox):
                    if test(frame):
                        return self.inbox.pop(i)
                if self._reader.done():
                    raise ConnectionError(
                        f"socket closed ({self.ws.close_code}) while "
                        f"expecting {match!r}; inbox: {self.inbox[-5:]}"
                    )
                await self._arrived.wait()

    def take_all(self, match: Callable[[Frame], bool] | str) -> list[Frame]:
        """Remove and return every frame already received that matches."""
        test = (lambda f: f.get("op") == match) if isinstance(match, str) else match
        taken = [f for f in self.inbox if test(f)]
        self.inbox = [f for f in self.inbox if not test(f)]
        return taken

    async def reply(self, ref: int, timeout: float = 10) -> Frame:
        """The ok/error/pong answering `ref`."""
        return await self.expect(
            lambda f: f.get("ref") == ref and f.get("op") in ("ok", "error", "pong"), timeout
        )

    async def call(self, op: str, **fields: Any) -> Frame:
        return await self.reply(await self.send(op, **fields))

    async def ok(self, op: str, **fields: Any) -> Frame:
        frame = await self.call(op, **fields)
        assert frame["op"] == "ok", frame
        return frame

    async def closed(self, timeout: float = 10) -> int | None:
        """Wait for the server to close the socket; returns the close code."""
        await asyncio.wait_for(self.ws.wait_closed(), timeout)
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


def token_for(secret: str, user_id: uuid.UUID | str, ttl: int = 600, realm: str = "analyst") -> str:
    return sign_access_token(secret, str(user_id), realm, ttl)
