"""Keepalive pings for every socket of the process from one task, instead of a task per
socket (websockets' own keepalive): each round sends a ping to every open socket that has
none outstanding, and closes (1011 "keepalive ping timeout") a socket whose ping is still
unanswered after a whole interval. A dead peer is found within two intervals.

The ping is registered in websockets' own `pending_pings`, so its pong is matched by the
library as if `ping()` had sent it; a round is spread over slices of the interval so that
15,000 sockets do not get 15,000 pings in one event-loop iteration."""

from __future__ import annotations

import asyncio
import contextlib
import os

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode
from websockets.protocol import State

from kernel.logs import EventLog

log = EventLog("gateway.keepalive")

SLICES = 10  # a round is sent in this many steps spread over the interval


class Keepalive:
    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._sockets: dict[ServerConnection, None] = {}  # insertion-ordered set
        self._task: asyncio.Task[None] | None = None

    def add(self, ws: ServerConnection) -> None:
        self._sockets[ws] = None

    def discard(self, ws: ServerConnection) -> None:
        self._sockets.pop(ws, None)

    def start(self) -> None:
        if self._task is None and self._interval_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="keepalive")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        step = self._interval_s / SLICES
        while True:
            sockets = list(self._sockets)
            per_slice = -(-len(sockets) // SLICES) or 1
            for start in range(0, max(len(sockets), 1), per_slice):
                await asyncio.sleep(step)
                for ws in sockets[start : start + per_slice]:
                    self._ping(ws)

    def _ping(self, ws: ServerConnection) -> None:
        if ws.protocol.state is not State.OPEN:
            return
        if ws.pending_pings:
            sent_at = min(sent for _, sent in ws.pending_pings.values())
            if ws.loop.time() - sent_at < self._interval_s:
                return  # the socket moved to an earlier slice: its ping is still young
            log.info("keepalive_timeout", remote=str(ws.remote_address))
            self.discard(ws)
            asyncio.get_running_loop().create_task(
                ws.close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            )
            return
        data = os.urandom(4)
        ws.pending_pings[data] = (ws.loop.create_future(), ws.loop.time())
        ws.protocol.send_ping(data)
        ws.send_data()
