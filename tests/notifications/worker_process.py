"""`python -m tests.notifications.worker_process`: run_delivery alone in a process (settings
from the environment) until SIGTERM, for the tests that run real worker processes (one killed
mid-send; several sharing the outbox)."""

from __future__ import annotations

import asyncio
import signal

from kernel.config import load_settings
from kernel.db import create_pool
from kernel.logs import setup_logging
from workers.delivery import run_delivery


async def main() -> None:
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    pool = await create_pool(settings.database_url, min_size=1, max_size=4)
    try:
        await run_delivery(pool, settings, stop)
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
