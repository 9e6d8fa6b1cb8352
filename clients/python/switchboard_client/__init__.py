"""Python client of the Switchboard realtime gateway (asyncio, `websockets`).

    from switchboard_client import SwitchboardClient

    async with SwitchboardClient("ws://127.0.0.1:8765/ws", token) as client:
        client.on("message", print)
        await client.join("community:0b7e9c3a-5d2f-4a1e-9c8b-7d6e5f4a3b2c")
        ack = await client.send("community:0b7e9c3a-5d2f-4a1e-9c8b-7d6e5f4a3b2c", "hello")

See clients/README.md.
"""

from switchboard_client.client import (
    EVENTS,
    JSON_SUBPROTOCOL,
    MSGPACK_SUBPROTOCOL,
    Backoff,
    ChannelName,
    Frame,
    SwitchboardClient,
    SwitchboardError,
    parse_channel,
)

__all__ = [
    "EVENTS",
    "JSON_SUBPROTOCOL",
    "MSGPACK_SUBPROTOCOL",
    "Backoff",
    "ChannelName",
    "Frame",
    "SwitchboardClient",
    "SwitchboardError",
    "parse_channel",
]
__version__ = "0.1.0"
