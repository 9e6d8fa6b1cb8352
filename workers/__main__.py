"""`python -m workers`: the worker process (delivery and scheduled jobs)."""

from __future__ import annotations

import asyncio
import signal

from kernel.config import load_settings
from kernel.db import create_pool
from kernel.logs import EventLog, setup_logging

log = EventLog("worker")


async def _run() -> None:
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    pool = await create_pool(
        settings.database_url, min_size=1, max_size=4, application_name="switchboard-worker"
    )
    log.info("started")
    try:
        await stop.wait()
    finally:
        await pool.close()
        log.info("stopped")


def main() -> None:
    asyncio.run(_run())


if __name__ == "__main__":
    main()
