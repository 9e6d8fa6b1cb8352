"""A minimal python-socketio room-broadcast server on aiohttp, a peer for `loadtests.race`
(not part of Switchboard; python-socketio is installed by `make race`, not a dependency).

    python -m loadtests.peers.pysio_server PORT

Clients emit `join` (room name, acknowledged) and `send` ({room, text}); every `send` is
broadcast as `msg` ({room, id, from, text}) to everyone in the room, the sender included.
Nothing is persisted. WebSocket transport only, uvloop as the event loop (as the gateway
uses), and the keepalive pushed out so the counting benchmark client is never dropped.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import socketio  # type: ignore[import-not-found,unused-ignore]
from aiohttp import web


def build() -> web.Application:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        transports=["websocket"],
        ping_interval=300,
        ping_timeout=300,
        http_compression=False,
        logger=False,
        engineio_logger=False,
    )
    next_id = 0

    async def join(sid: str, room: Any) -> dict[str, str] | None:
        if not isinstance(room, str):
            return None
        await sio.enter_room(sid, room)
        return {"room": room}

    async def send(sid: str, data: Any) -> None:
        nonlocal next_id
        if not isinstance(data, dict) or data.get("room") not in sio.rooms(sid):
            return
        next_id += 1
        message = {"room": data["room"], "id": next_id, "from": sid, "text": data.get("text")}
        await sio.emit("msg", message, to=data["room"])

    sio.on("join", join)
    sio.on("send", send)

    app = web.Application()
    sio.attach(app)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(build(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    try:
        await asyncio.Event().wait()  # until SIGTERM/SIGINT ends the process
    finally:
        await runner.cleanup()


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        raise SystemExit("usage: python -m loadtests.peers.pysio_server PORT")
    try:
        import uvloop

        uvloop.run(serve(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
