"""One reconnecting LISTEN connection per process, shared by every feature that hears
Postgres notifications. When the connection drops (a Postgres restart, a killed backend), it
reconnects with backoff, LISTENs again on every channel, and then calls the resync hooks, so
each feature re-checks what it may have missed while deaf (a NOTIFY is never replayed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg

from kernel.db import connect
from kernel.logs import EventLog

log = EventLog("kernel.listen")

Callback = Callable[[asyncpg.Connection, int, str, str], None]
Resync = Callable[[], Awaitable[None]]

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 30.0


class Listener:
    """Register with `on()` and `on_resync()`, then `await start()` (returns once listening:
    nothing committed after that is missed); `await close()` at the end."""

    def __init__(self, dsn: str, application_name: str) -> None:
        self._dsn = dsn
        self._name = application_name
        self._callbacks: dict[str, list[Callback]] = {}
        self._resyncs: list[Resync] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.connected = False
        self.reconnects = 0

    def on(self, channel: str, callback: Callback) -> None:
        self._callbacks.setdefault(channel, []).append(callback)

    def on_resync(self, hook: Resync) -> None:
        """`hook` runs after every reconnection (not after the first connection)."""
        self._resyncs.append(hook)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"listen-{self._name}")
        ready = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait([ready, self._task], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._task.done():
            self._task.result()  # the first connection failed: the caller's start fails

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _dispatch(self, conn: asyncpg.Connection, pid: int, channel: str, payload: str) -> None:
        for callback in self._callbacks.get(channel, ()):
            try:
                callback(conn, pid, channel, payload)
            except Exception:  # one feature's bug must not deafen the others
                log.exception("listen_callback_failed", channel=channel)

    async def _run(self) -> None:
        delay = FIRST_RETRY_S
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self._dsn, application_name=self._name)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in self._callbacks:
                    await conn.add_listener(channel, self._dispatch)
                self.connected = True
                delay = FIRST_RETRY_S
                if self._ready.is_set():
                    self.reconnects += 1
                    log.warning("listen_reconnected", channels=len(self._callbacks))
                    for hook in self._resyncs:
                        try:
                            await hook()
                        except Exception:
                            log.exception("listen_resync_failed")
                    log.info("listen_resynced", hooks=len(self._resyncs))
                self._ready.set()
                await lost.wait()
                log.warning("listen_connection_lost")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not self._ready.is_set():
                    raise
                log.error("listen_failed", error=repr(exc), retry_in_s=delay)
            finally:
                self.connected = False
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_S)
