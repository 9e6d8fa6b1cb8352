"""A running stack for load-test runs in the suite: one gateway process (in-process bus) and
one api process over the test's database, both real processes, stopped afterwards with their
logs printed. Shared by the locust smoke tests of every realm."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.conftest import ROOT, free_port
from tests.gateway.harness import GatewayProcess


@dataclass
class Stack:
    api_url: str
    gateway: GatewayProcess
    api_log: Path

    @property
    def gateway_url(self) -> str:
        return self.gateway.url


def file_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


async def _wait_healthy(url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if proc.returncode is not None:
                raise RuntimeError(f"api exited ({proc.returncode}):\n{file_text(log)}")
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)  # polling an HTTP answer: nothing announces readiness
    raise RuntimeError(f"api not healthy after 30 s:\n{file_text(log)}")


@asynccontextmanager
async def running_stack(
    dsn: str, secret: str, tmp_path: Path, **settings: str
) -> AsyncIterator[Stack]:
    """Gateway and api on free ports over `dsn`; `settings` are extra environment variables
    (SWITCHBOARD_REALMS, BCRYPT_ROUNDS, ...)."""
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "SWITCHBOARD_SECRET": secret,
        "LOG_LEVEL": "INFO",
        **settings,
    }
    env.pop("REDIS_URL", None)  # one gateway process: the in-process bus
    gateway = GatewayProcess({**env, "GATEWAY_PORT": str(free_port())})
    api_port = free_port()
    api_log = tmp_path / "api.log"
    api: asyncio.subprocess.Process | None = None
    try:
        await gateway.start()
        with api_log.open("wb") as log:
            api = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "api",
                cwd=ROOT,
                env={**env, "API_PORT": str(api_port), "LOG_LEVEL": "WARNING"},
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        await _wait_healthy(f"http://127.0.0.1:{api_port}/healthz", api, api_log)
        yield Stack(f"http://127.0.0.1:{api_port}", gateway, api_log)
    finally:
        if api is not None and api.returncode is None:
            api.terminate()
            await asyncio.wait_for(api.wait(), 30)
        await gateway.stop()
        print("--- api log ---\n" + file_text(api_log))
        print("--- gateway log (tail) ---\n" + "".join(gateway.log[-50:]))
