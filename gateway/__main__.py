"""`python -m gateway`: serve WebSockets on GATEWAY_HOST:GATEWAY_PORT (uvloop)."""

from __future__ import annotations

import asyncio
import signal
from http import HTTPStatus

from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.datastructures import Headers

from kernel.config import load_settings
from kernel.logs import EventLog, setup_logging

log = EventLog("gateway")


def _http(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/healthz":
        return Response(HTTPStatus.OK, "OK", Headers({"Content-Type": "text/plain"}), b"ok\n")
    return None


async def _handler(ws: ServerConnection) -> None:
    await ws.close(1013, "not ready")


async def _serve() -> None:
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(_handler, settings.gateway_host, settings.gateway_port, process_request=_http):
        log.info("listening", host=settings.gateway_host, port=settings.gateway_port)
        await stop


def main() -> None:
    try:
        import uvloop

        uvloop.run(_serve())
    except ImportError:
        asyncio.run(_serve())


if __name__ == "__main__":
    main()
