"""`python -m api`: serve the REST sidecar on API_HOST:API_PORT."""

from __future__ import annotations

from aiohttp import web

from api.app import create_app
from kernel.config import load_settings
from kernel.logs import EventLog, setup_logging


def main() -> None:
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    EventLog("api").info("starting", host=settings.api_host, port=settings.api_port)
    web.run_app(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
