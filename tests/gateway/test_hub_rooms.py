"""The hub's record of each socket's rooms: a close leaves exactly the rooms the socket is in
(live or still catching up) without looking at any other room, and leaves none behind."""

from __future__ import annotations

import asyncio

from gateway.fanout import Client, Hub
from tests.gateway.hub_fakes import FakeSocket, Rows


class _HeldRows(Rows):
    """Rows whose catch-up read waits until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def after(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        self.reading.set()
        await self.release.wait()
        return await super().after(channel, after_seq, limit)


def _hub(source: Rows) -> Hub:
    return Hub(
        subscribe=lambda _c: asyncio.sleep(0),
        unsubscribe=lambda _c: asyncio.sleep(0),
        source_for=lambda _c: source,
    )


def _client(user: str) -> Client:
    socket = FakeSocket()
    return Client(socket, socket, False, user, on_slow=lambda: None)


async def test_a_drop_leaves_the_sockets_own_rooms_and_no_other() -> None:
    hub = _hub(Rows())
    a, b = _client("a"), _client("b")
    for client, rooms in ((a, ("room:1", "room:2")), (b, ("room:1", "room:3"))):
        for room in rooms:
            await hub.join(client, room, since=None)
    await hub.join(a, "room:1", since=0)  # a resume of a room it is in: still one entry

    assert sorted(await hub.drop(a)) == ["room:1", "room:2"]
    assert a.rooms == []
    assert [hub.members(r) for r in ("room:1", "room:2", "room:3")] == [1, 0, 1]
    assert hub.rooms_of(b) == ["room:1", "room:3"]


async def test_a_leave_forgets_the_room() -> None:
    hub = _hub(Rows())
    a = _client("a")
    await hub.join(a, "room:1", since=None)
    await hub.join(a, "room:2", since=None)
    assert await hub.leave(a, "room:1")
    assert hub.rooms_of(a) == ["room:2"]
    assert not await hub.leave(a, "room:1")


async def test_a_socket_dropped_while_catching_up_is_not_added_afterwards() -> None:
    source = _HeldRows()
    hub = _hub(source)
    a, b = _client("a"), _client("b")
    await hub.join(b, "room:1", since=None)  # keeps the room open
    joining = asyncio.create_task(hub.join(a, "room:1", since=0))
    await source.reading.wait()
    assert hub.rooms_of(a) == ["room:1"]  # catching up counts as being in the room

    assert await hub.drop(a) == ["room:1"]
    source.release.set()
    replayed, recovered, _ = await joining
    assert (replayed, recovered) == (0, False)
    assert a.rooms == [] and hub.members("room:1") == 1
