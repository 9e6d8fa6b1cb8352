"""The session core without I/O: `Session.handle` takes decoded frames and returns replies,
talking to the world only through its host's ports, here in-memory fakes (store, bus,
limiter, presence, hub). The same rules the socket tests prove end to end, at unit speed:
order of checks, acks after the store answered, rate-limit accounting, realm isolation."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway import protocol as p
from gateway.metrics import GatewayMetrics
from gateway.namespaces.user import UserNamespace
from gateway.ratelimit import MemoryChatRateLimiter
from gateway.session import Session
from kernel.config import load_settings
from kernel.conversation import (
    Committed,
    Draft,
    Membership,
    NamespaceRegistry,
    Principal,
)
from kernel.errors import BadRequest, Forbidden, NotFound, RateLimited, Unavailable
from kernel.groupcommit import GroupCommit
from kernel.messages import Message, json_encoder
from kernel.realms import Realm, Realms

ANALYST = Realm(name="analyst", schema="analyst", summary="", unprefixed_paths=True)
OTHER = Realm(name="other", schema="other", summary="")


class FakeStore:
    """An in-memory ChatStore and SequenceSource: per-channel seq, client_id dedup."""

    def __init__(self) -> None:
        self.messages: dict[str, list[Message]] = {}
        self.fail_next: Exception | None = None

    async def append(self, principal: Principal, membership: Membership, draft: Draft) -> Committed:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        log = self.messages.setdefault(membership.channel, [])
        for m in log:
            if draft.client_id and (m.user_id, m.client_id) == (principal.user_id, draft.client_id):
                return Committed(m.id, m.seq, m.created_at, True, json_encoder.encode(m))
        message = Message(
            channel=membership.channel,
            seq=len(log) + 1,
            id=str(uuid.uuid4()),
            user_id=principal.user_id,
            text=draft.text,
            type=draft.type,
            created_at="2031-01-01T00:00:00+00:00",
            client_id=draft.client_id,
        )
        log.append(message)
        return Committed(message.id, message.seq, message.created_at, False, b"")

    async def last_seq(self, channel: str) -> int:
        return len(self.messages.get(channel, []))

    async def after(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        return []

    async def history(
        self, membership: Membership, before: int | None, after: int | None, limit: int
    ) -> list[Message]:
        return self.messages.get(membership.channel, [])[-limit:]

    async def mark_read(self, principal: Principal, membership: Membership, seq: int) -> int:
        return seq

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass
class FakeRooms:
    """`room:<name>`: rooms whose names are in `open` admit anyone, with a chat limit."""

    store: FakeStore
    open: set[str] = field(default_factory=lambda: {"lobby"})
    rate_limit: int | None = 3
    name: str = "room"
    realm: str = "analyst"
    auto_join: bool = False
    tracks_presence: bool = True

    def canonical_key(self, key: str) -> str:
        return key.lower()

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        if key not in self.open:
            raise NotFound(f"room {key} does not exist")
        return Membership(channel=channel, role="member", rate_limit=self.rate_limit)

    def sequence_source(self) -> FakeStore:
        return self.store

    def chat(self) -> FakeStore:
        return self.store

    def conversations(self) -> None:
        return None

    async def members_changed(self, conn: Any, channel: str, count: int) -> None:
        return None

    def lock_sql(self) -> None:
        return None

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        return notice.get("room") == membership.channel


class FakeHub:
    def __init__(self) -> None:
        self.joined: list[str] = []

    async def join(self, client: Any, channel: str, since: int | None) -> tuple[int, bool, int]:
        self.joined.append(channel)
        return 0, True, 0

    async def leave(self, client: Any, channel: str) -> bool:
        self.joined.remove(channel)
        return True

    async def drop(self, client: Any) -> list[str]:
        return list(self.joined)


class FakePresence:
    def __init__(self) -> None:
        self.here: dict[str, set[str]] = {}

    async def enter(self, channel: str, user_id: str, **_: Any) -> bool:
        self.here.setdefault(channel, set()).add(user_id)
        return True

    async def leave(self, channel: str, user_id: str, **_: Any) -> bool:
        self.here.get(channel, set()).discard(user_id)
        return True

    async def who(self, channel: str) -> list[str]:
        return sorted(self.here.get(channel, ()))


class FakeClient:
    binary = False

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write_frame(self, frame: bytes) -> None:
        self.frames.append(frame)


class FakeHost:
    """A SessionHost made of fakes."""

    def __init__(self) -> None:
        self.settings = load_settings(
            {"DATABASE_URL": "postgresql://unused", "SWITCHBOARD_SECRET": "s" * 40}
        )
        self.realms = Realms([ANALYST, OTHER])
        self.pool: Any = None
        self.store = FakeStore()
        self.rooms = FakeRooms(self.store)
        self.namespaces = NamespaceRegistry(
            [UserNamespace(ANALYST), UserNamespace(OTHER), self.rooms]
        )
        self.hub = FakeHub()
        self.presence = FakePresence()
        self.chat_limiter = MemoryChatRateLimiter()
        self.metrics = GatewayMetrics()
        self.draining = False
        self.announced: list[p.Event] = []

    def announce(self, event: p.Event) -> None:
        self.announced.append(event)


def session_for(host: FakeHost, realm: str = "analyst", user: str | None = None) -> Session:
    principal = Principal(user_id=user or str(uuid.uuid4()), realm=realm, user_type="trader")
    return Session(host, principal, FakeClient(), uuid.uuid4().hex, 2**40)  # type: ignore[arg-type]


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


async def test_a_send_before_join_is_forbidden_and_nothing_is_stored(host: FakeHost) -> None:
    session = session_for(host)
    with pytest.raises(Forbidden, match="join room:lobby first"):
        await session.handle(p.Send(channel="room:lobby", text="hi", ref=1))
    assert host.store.messages == {}


async def test_join_then_send_is_acknowledged_with_the_stored_seq(host: FakeHost) -> None:
    session = session_for(host)
    joined = await session.handle(p.Join(channel="room:LOBBY", ref=1))
    assert isinstance(joined, p.Ok) and joined.channel == "room:lobby"  # canonical spelling
    assert host.announced[0].kind == "joined"
    acks = [await session.handle(p.Send(channel="room:lobby", text=t, ref=2)) for t in "ab"]
    assert [a.seq for a in acks if isinstance(a, p.Ok)] == [1, 2]
    assert host.presence.here["room:lobby"] == {session.principal.user_id}


async def test_a_retried_client_id_is_a_duplicate_and_does_not_count_against_the_limit(
    host: FakeHost,
) -> None:
    session = session_for(host)
    await session.handle(p.Join(channel="room:lobby"))
    for _ in range(5):  # limit is 3 per minute; retries of one message are free
        ack = await session.handle(p.Send(channel="room:lobby", text="x", client_id="c1"))
        assert isinstance(ack, p.Ok) and ack.seq == 1
    assert len(host.store.messages["room:lobby"]) == 1


async def test_the_chat_limit_refuses_the_fourth_send_with_a_retry_hint(host: FakeHost) -> None:
    session = session_for(host)
    await session.handle(p.Join(channel="room:lobby"))
    for i in range(3):
        await session.handle(p.Send(channel="room:lobby", text=f"m{i}"))
    with pytest.raises(RateLimited) as refused:
        await session.handle(p.Send(channel="room:lobby", text="m4"))
    assert refused.value.details["retry_after_ms"] > 0


async def test_a_send_refused_for_its_content_counts_against_the_limit(host: FakeHost) -> None:
    session = session_for(host)
    await session.handle(p.Join(channel="room:lobby"))
    for _ in range(3):
        host.store.fail_next = BadRequest("reply_to is not a message of this channel")
        with pytest.raises(BadRequest):
            await session.handle(p.Send(channel="room:lobby", text="x"))
    with pytest.raises(RateLimited):  # errors are no way around the limit
        await session.handle(p.Send(channel="room:lobby", text="x"))


async def test_a_send_lost_to_an_outage_is_not_counted_against_the_limit(host: FakeHost) -> None:
    session = session_for(host)
    await session.handle(p.Join(channel="room:lobby"))
    for _ in range(5):
        host.store.fail_next = ConnectionResetError("database went away")
        with pytest.raises(ConnectionResetError):
            await session.handle(p.Send(channel="room:lobby", text="x", client_id="c1"))
    for i in range(3):
        await session.handle(p.Send(channel="room:lobby", text=f"ok{i}"))


async def test_a_draining_gateway_refuses_sends_and_joins(host: FakeHost) -> None:
    session = session_for(host)
    await session.handle(p.Join(channel="room:lobby"))
    host.draining = True
    with pytest.raises(Unavailable):
        await session.handle(p.Send(channel="room:lobby", text="late"))
    with pytest.raises(Unavailable):
        await session.handle(p.Join(channel="user:" + session.principal.user_id))


async def test_a_channel_of_another_realm_is_forbidden_before_its_namespace_is_asked(
    host: FakeHost,
) -> None:
    session = session_for(host, realm="other")
    with pytest.raises(Forbidden, match="belongs to realm 'analyst', not 'other'"):
        await session.handle(p.Join(channel="room:lobby"))
    assert host.hub.joined == []
    own = await session.handle(p.Join(channel=f"other.user:{session.principal.user_id}"))
    assert isinstance(own, p.Ok) and own.role == "self"


async def test_an_unknown_namespace_is_not_found_and_a_missing_room_too(host: FakeHost) -> None:
    session = session_for(host)
    with pytest.raises(NotFound, match="no namespace 'nowhere'"):
        await session.handle(p.Join(channel="nowhere:x"))
    with pytest.raises(NotFound, match="room attic does not exist"):
        await session.handle(p.Join(channel="room:attic"))


async def test_a_membership_notice_removes_the_socket_and_tells_it_why(host: FakeHost) -> None:
    session = session_for(host)
    await session.handle(p.Join(channel="room:lobby"))
    host.rooms.open.clear()
    await session.recheck({"room": "room:lobby"})
    assert "room:lobby" not in session.joined and host.hub.joined == []
    told = [f for f in session.client.frames if b'"removed"' in f]  # type: ignore[attr-defined]
    assert told and b"room lobby does not exist" in told[0]


async def test_conversation_ops_in_a_realm_without_conversations_are_bad_requests(
    host: FakeHost,
) -> None:
    session = session_for(host)
    with pytest.raises(BadRequest, match="keeps no direct conversations"):
        await session.handle(p.Create(kind="direct", with_="x"))


# --- group commit -------------------------------------------------------------------------------


async def test_group_commit_batches_concurrent_submits_and_answers_each_in_order() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0)
        return [i * 10 for i in items]

    commit: GroupCommit[int, int] = GroupCommit(flush, concurrency=1)
    results = await asyncio.gather(*(commit.submit(i) for i in range(20)))
    await commit.close()
    assert results == [i * 10 for i in range(20)]
    assert len(batches) < 20 and sorted(i for b in batches for i in b) == list(range(20))


async def test_a_failing_batch_is_retried_one_by_one_so_only_the_bad_item_fails() -> None:
    calls: list[list[str]] = []

    async def flush(items: list[str]) -> list[str]:
        calls.append(items)
        if "bad" in items:
            raise ValueError("the database refused a value")
        return [item.upper() for item in items]

    commit: GroupCommit[str, str] = GroupCommit(flush, concurrency=1)
    outcomes = await asyncio.gather(
        *(commit.submit(item) for item in ("a", "bad", "c")), return_exceptions=True
    )
    await commit.close()
    assert outcomes[0] == "A" and outcomes[2] == "C"
    assert isinstance(outcomes[1], ValueError)
    assert calls[0] == ["a", "bad", "c"] and ["bad"] in calls
