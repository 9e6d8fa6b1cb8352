"""The conversation model's ports: what a namespace is to the gateway core (who may join,
where messages live, how history is read, who else is told), and what a realm's namespace
factory is given to build its namespaces.

The core (connections, fan-out, rate limits, presence, resume) knows nothing of any realm;
a realm's namespace answers for it. A namespace that stores chat messages also implements
ChatStore; one without it is receive-only (e.g. a user's own stream).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeAlias, runtime_checkable

import asyncpg
import msgspec

from kernel.errors import BadRequest, Forbidden, NotFound
from kernel.messages import Attachment, ConversationSummary, MemberState, Message

# A stored message as a client names it (`reply_to`, and `id` in edit, delete, pin, flag,
# react): a UUID, or a positive 64-bit integer where a realm's messages have BIGINT ids. The
# session hands a store only the kind its namespace declares (`message_id_kind`).
MessageRef: TypeAlias = uuid.UUID | int
MessageIdKind = Literal["uuid", "bigint"]
MAX_BIGINT_ID = 2**63 - 1


def message_id_kind(namespace: object) -> MessageIdKind:
    """The kind of id `namespace` keeps its messages by: its `message_ids` class attribute
    ("uuid" or "bigint"), "uuid" when it declares none."""
    declared = getattr(namespace, "message_ids", "uuid")
    if declared == "bigint":
        return "bigint"
    if declared == "uuid":
        return "uuid"
    raise TypeError(f"{namespace!r}: message_ids is 'uuid' or 'bigint', not {declared!r}")


def checked_ref(name: str, kind: MessageIdKind, ref: MessageRef) -> MessageRef:
    """`ref` when it is of `kind`, for the namespace `name`; otherwise BadRequest saying
    which ids the namespace's channels take (never a database error later)."""
    if kind == "bigint":
        if isinstance(ref, int):
            return ref
        raise BadRequest(f"message ids in {name} are integers, not UUIDs")
    if isinstance(ref, uuid.UUID):
        return ref
    raise BadRequest(f"message ids in {name} are UUIDs, not integers")


class SequenceSource(Protocol):
    """Where a sequenced channel's committed messages are read back from."""

    async def last_seq(self, channel: str) -> int: ...
    async def after(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]: ...


# Publish committed frames: (channel, seq or 0, encoded JSON frame) each, once, to every gateway.
Publish = Callable[[list[tuple[str, int, bytes]]], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class NamespaceContext:
    """What a realm's namespace factory gets from the gateway process that hosts it."""

    pool: asyncpg.Pool
    publish: Publish
    # Called with the size of each group-commit batch (a metric).
    on_batch: Callable[[int], None] | None = None


class Principal(msgspec.Struct, frozen=True):
    """The authenticated user of a socket."""

    user_id: str
    realm: str
    user_type: str

    @property
    def is_admin(self) -> bool:
        return self.user_type == "admin"


class Membership(msgspec.Struct, frozen=True):
    """The outcome of an authorised join. `role` is member, owner, admin or self."""

    channel: str
    role: str
    owner_id: str | None = None
    rate_limit: int | None = None
    max_members: int | None = None
    # Unix seconds after which the entitlement behind this membership lapses by time alone
    # (a subscription's expires_at): the session re-checks it then. None: no such end.
    entitled_until: float | None = None
    # Unix seconds until which the member may read but not send (inf: until lifted).
    muted_until: float | None = None

    @property
    def privileged(self) -> bool:
        return self.role in ("owner", "admin")


class Draft(msgspec.Struct, frozen=True, kw_only=True):
    """A message as a client sent it, before it is stored."""

    text: str
    type: str = "text"
    reply_to: MessageRef | None = None
    client_id: str | None = None
    attachment_url: str | None = None
    attachment: Attachment | None = None
    mentions: list[str] | None = None
    # Structured data of the message's type (a location's lat/lon, a product's id); a store
    # that keeps none ignores it.
    metadata: dict[str, Any] | None = None


class Committed(msgspec.Struct, frozen=True):
    id: str
    seq: int
    created_at: str
    duplicate: bool
    payload: bytes


class ChatStore(Protocol):
    """Message storage of a chat namespace. Every method authorises against `membership`.
    A message id it is given (`message_id`, `Draft.reply_to`) is of the kind its namespace
    declares (`message_id_kind`): the session refuses the other kind before calling."""

    async def append(self, principal: Principal, membership: Membership, draft: Draft) -> Committed:
        """Store a message, answering once it is committed. Contract: the message's place in
        its channel is fixed before the first suspension (e.g. it is queued for a group
        commit synchronously), so a session's pipelined sends keep their order."""
        ...

    async def edit(
        self, principal: Principal, membership: Membership, message_id: MessageRef, text: str
    ) -> Message: ...
    async def delete(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str | None,
    ) -> Message: ...
    async def pin(
        self, principal: Principal, membership: Membership, message_id: MessageRef, pinned: bool
    ) -> Message: ...
    async def flag(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str,
        description: str | None,
    ) -> None: ...
    async def history(
        self, membership: Membership, before: int | None, after: int | None, limit: int
    ) -> list[Message]: ...
    async def mark_read(self, principal: Principal, membership: Membership, seq: int) -> int: ...
    async def drain(self) -> None:
        """Return once every accepted append is committed and answered."""
        ...

    async def close(self) -> None: ...


class RefusesMessageChanges:
    """The ChatStore operations on stored messages, each refused with `refusal`: for stores
    that keep no messages (live channels) or keep them plain (no edit, pin, flag, read)."""

    refusal: ClassVar[str] = "messages here cannot be changed"

    async def edit(
        self, principal: Principal, membership: Membership, message_id: MessageRef, text: str
    ) -> Message:
        raise Forbidden(self.refusal)

    async def delete(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str | None,
    ) -> Message:
        raise Forbidden(self.refusal)

    async def pin(
        self, principal: Principal, membership: Membership, message_id: MessageRef, pinned: bool
    ) -> Message:
        raise Forbidden(self.refusal)

    async def flag(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        reason: str,
        description: str | None,
    ) -> None:
        raise Forbidden(self.refusal)

    async def history(
        self, membership: Membership, before: int | None, after: int | None, limit: int
    ) -> list[Message]:
        raise Forbidden(self.refusal)

    async def mark_read(self, principal: Principal, membership: Membership, seq: int) -> int:
        raise Forbidden(self.refusal)


@runtime_checkable
class StreamControl(Protocol):
    """A namespace whose channels carry replies the server streams (assistant conversations):
    the client op `cancel` stops the one named `id`, through this."""

    async def cancel(self, principal: Principal, membership: Membership, id: uuid.UUID) -> None: ...


class ConversationAdmin(Protocol):
    """Conversations a user opens and manages (kinds direct, group, support)."""

    async def create(
        self,
        principal: Principal,
        kind: str,
        peer: str | None,
        members: list[str] | None,
        title: str | None,
    ) -> tuple[str, bool]:
        """(channel, created): a direct conversation that exists already is returned."""
        ...

    async def add_members(
        self, principal: Principal, membership: Membership, users: list[str]
    ) -> list[str]: ...

    async def remove_member(
        self, principal: Principal, membership: Membership, user_id: str
    ) -> None: ...

    async def react(
        self,
        principal: Principal,
        membership: Membership,
        message_id: MessageRef,
        emoji: str,
        remove: bool,
    ) -> None: ...

    async def list_for(
        self, principal: Principal, kind: str | None
    ) -> list[ConversationSummary]: ...

    async def members(self, membership: Membership) -> list[MemberState]: ...

    async def mute(self, principal: Principal, membership: Membership, muted: bool) -> None:
        """A muted conversation still counts unread, but never pushes or e-mails."""
        ...


class Namespace(Protocol):
    name: str
    realm: str
    auto_join: bool
    tracks_presence: bool

    def canonical_key(self, key: str) -> str:
        """The one spelling of a channel key (raise BadRequest when it is not a key)."""
        ...

    async def authorize(self, principal: Principal, channel: str, key: str) -> Membership:
        """The membership for a join, or raise Forbidden / NotFound / BadRequest."""
        ...

    def sequence_source(self) -> SequenceSource | None: ...

    def chat(self) -> ChatStore | None: ...

    def conversations(self) -> ConversationAdmin | None:
        """Opening and managing conversations, for namespaces of conversation kinds."""
        ...

    async def members_changed(self, conn: asyncpg.Connection, channel: str, count: int) -> None:
        """Record (in the ledger's transaction) how many distinct users are live in `channel`."""
        ...

    def lock_sql(self) -> str | None:
        """SQL locking the channel's domain row by key ($1), to serialise admissions."""
        ...

    def affected_by(self, notice: dict[str, str], membership: Membership) -> bool:
        """Whether a membership-change notice (LISTEN sb_membership) concerns this membership."""
        ...


def parse_uuid(key: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(key)
    except ValueError:
        raise BadRequest(f"{what} {key!r} is not a UUID") from None


class NamespaceRegistry:
    """Namespaces by name; `resolve("community:<id>")` gives (namespace, key)."""

    def __init__(self, namespaces: Sequence[Namespace]) -> None:
        self._by_name: dict[str, Namespace] = {}
        for ns in namespaces:
            if ns.name in self._by_name:
                raise ValueError(f"namespace {ns.name!r} is declared twice")
            self._by_name[ns.name] = ns

    def __iter__(self) -> Iterator[Namespace]:
        return iter(self._by_name.values())

    def resolve(self, channel: str) -> tuple[Namespace, str, str]:
        """(namespace, canonical key, canonical channel name) of a channel as a client spelt
        it, so that one room has one name for delivery, presence, caps and rate limits."""
        name, _, key = channel.partition(":")
        namespace = self._by_name.get(name)
        if namespace is None:
            raise NotFound(f"no namespace {name!r} (known: {', '.join(sorted(self._by_name))})")
        key = namespace.canonical_key(key)
        return namespace, key, f"{name}:{key}"

    def named(self, name: str) -> Namespace | None:
        return self._by_name.get(name)

    def sequence_source(self, channel: str) -> SequenceSource | None:
        name = channel.partition(":")[0]
        namespace = self._by_name.get(name)
        return namespace.sequence_source() if namespace else None
