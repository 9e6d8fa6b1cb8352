"""The Origin allow-list of WebSocket upgrades (GATEWAY_ORIGINS), and the process_*/python_*
metrics on the gateway's /metrics (issue 20, item 6)."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.gateway.conftest import Starter, World
from tests.gateway.harness import GatewayProcess, WsClient, token_for

APP = "https://app.example.com"
OTHER = "https://evil.example.net"


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def _welcomed(gw: GatewayProcess, secret: str, world: World, origin: str | None) -> None:
    client = await WsClient.open(
        gw.url, token_for(secret, world.member), origin=Origin(origin) if origin else None
    )
    try:
        welcome = await client.expect("welcome")
        assert welcome["user_id"] == str(world.member)
    finally:
        await client.close()


async def test_an_unlisted_origin_is_refused_403_before_the_upgrade(
    world: World, start_gateway: Starter, secret: str
) -> None:
    gw = await start_gateway(GATEWAY_ORIGINS=f"{APP}, capacitor://localhost")
    with pytest.raises(InvalidStatus) as refused:
        await WsClient.open(gw.url, token_for(secret, world.member), origin=Origin(OTHER))
    assert refused.value.response.status_code == 403
    assert b"Origin" in refused.value.response.body
    await gw.logged("event=origin_refused")
    assert any(OTHER in line for line in gw.log if "event=origin_refused" in line)

    await _welcomed(gw, secret, world, APP)
    await _welcomed(gw, secret, world, "capacitor://localhost")
    await _welcomed(gw, secret, world, None)  # no Origin: not a browser, allowed

    samples = await asyncio.to_thread(_metrics, gw.port)
    assert samples["switchboard_origin_refused_total"] == 1


async def test_without_a_list_any_origin_may_upgrade(
    world: World, gw: GatewayProcess, secret: str
) -> None:
    await _welcomed(gw, secret, world, OTHER)
    await _welcomed(gw, secret, world, None)


async def test_health_and_metrics_answer_whatever_the_origin(
    start_gateway: Starter,
) -> None:
    gw = await start_gateway(GATEWAY_ORIGINS=APP)

    def get(path: str) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{gw.port}{path}", headers={"Origin": OTHER}
        )
        with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
            return int(reply.status)

    assert await asyncio.to_thread(get, "/healthz") == 200
    assert await asyncio.to_thread(get, "/metrics") == 200


async def test_metrics_include_process_and_python_collectors(gw: GatewayProcess) -> None:
    samples = await asyncio.to_thread(_metrics, gw.port)
    assert samples["process_cpu_seconds_total"] > 0
    assert samples["process_resident_memory_bytes"] > 0
    assert samples["process_open_fds"] > 0
    assert any(name.startswith("python_info{") for name in samples)
    assert any(name.startswith("python_gc_objects_collected_total{") for name in samples)
    assert samples["switchboard_origin_refused_total"] == 0
