"""The test harness itself: free ports come from below the kernel's ephemeral range, and a
free port that another process takes before the gateway binds it does not fail the test (the
gateway starts again on another port), unless the test asked for that port."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from tests.conftest import _ephemeral_floor, free_port
from tests.gateway.conftest import World
from tests.gateway.harness import GatewayProcess, PortTaken, WsClient, token_for


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port some other process listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    # Below that range the kernel never hands a found port to an outgoing connection.
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert max(ports) < _ephemeral_floor()
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def _env(dsn: str, secret: str, port: int) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        "DATABASE_URL": dsn,
        "SWITCHBOARD_SECRET": secret,
        "GATEWAY_PORT": str(port),
    }


async def test_a_port_taken_meanwhile_is_replaced(
    dsn: str, secret: str, taken_port: int, world: World
) -> None:
    gateway = GatewayProcess(_env(dsn, secret, taken_port))
    await gateway.start()
    try:
        assert gateway.port != taken_port
        assert gateway.env["GATEWAY_PORT"] == str(gateway.port)
        client = await WsClient.open(gateway.url, token_for(secret, world.member))
        assert (await client.expect("welcome"))["op"] == "welcome"
        await client.close()
    finally:
        await gateway.stop()


async def test_a_fixed_port_that_is_taken_is_an_error(
    dsn: str, secret: str, taken_port: int
) -> None:
    gateway = GatewayProcess(_env(dsn, secret, taken_port), fixed_port=True)
    with pytest.raises(PortTaken):
        await gateway.start()
