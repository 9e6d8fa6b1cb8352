"""Wire protocol v1: every client and server frame as a msgspec Struct, and their codecs.

Client frames are one tagged union on `op`, decoded in one call; lengths, patterns and
ranges live in the types, so a bad frame fails in decode with a precise message before any
handler runs. docs/protocol.md is the prose form of this module.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from kernel.conversation import MAX_BIGINT_ID, MessageRef
from kernel.errors import BadRequest, ErrorCode
from kernel.messages import Attachment as Attachment
from kernel.messages import ConversationSummary as ConversationSummary
from kernel.messages import Event as Event
from kernel.messages import LiveMessage as LiveMessage
from kernel.messages import MemberState as MemberState
from kernel.messages import Message as Message
from kernel.messages import ServerFrame as ServerFrame
from kernel.messages import json_encoder as json_encoder

JSON_SUBPROTOCOL = "switchboard.v1.json"
MSGPACK_SUBPROTOCOL = "switchboard.v1.msgpack"

MAX_TEXT = 2000
# A ref is echoed back as given: an integer any client language holds exactly (|n| ≤ 2**53),
# or a short string. A larger integer is a bad request, not an encoder overflow later.
Ref = Annotated[int, Meta(ge=-(2**53), le=2**53)] | Annotated[str, Meta(max_length=64)] | None
ChannelName = Annotated[
    str, Meta(pattern=r"^[a-z][a-z.]{0,31}:[A-Za-z0-9-]{1,64}$", max_length=100)
]
# Postgres text cannot hold NUL: a text with one is refused in decode, as a bad request, so it
# never reaches (and never fails) a group-commit batch shared with other users' messages.
NO_NUL = r"^[^\x00]*$"
MessageText = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT, pattern=NO_NUL)]
MessageType = Literal["text", "image", "video", "audio", "file", "location", "product", "system"]
ClientId = Annotated[str, Meta(min_length=1, max_length=64)]
Seq = Annotated[int, Meta(ge=0, le=2**53)]
Token = Annotated[str, Meta(min_length=1, max_length=4096)]
Reason = Annotated[str, Meta(max_length=500, pattern=NO_NUL)]
AttachmentUrl = Annotated[str, Meta(max_length=500, pattern=r"^https?://")]
UserId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9-]{1,64}$")]

# The spellings of a UUID msgspec itself accepts: 32 hex digits, hyphenated or not.
_UUID_TEXT = re.compile(r"[0-9a-f]{8}(-?)[0-9a-f]{4}\1[0-9a-f]{4}\1[0-9a-f]{4}\1[0-9a-f]{12}", re.I)
_DECIMAL = re.compile(r"[1-9][0-9]{0,18}")
_NOT_A_REF = f"Expected a message id: a UUID, or an integer from 1 to {MAX_BIGINT_ID}"


class MessageId:
    """A message named by a client frame (`id`, `reply_to`), decoded with the frame: a UUID,
    or a positive 64-bit integer given as a JSON number or as its decimal string (servers send
    ids as strings, and a client echoes back what it received); in MessagePack a UUID may also
    be a 16-byte `bin`. Which kind a channel takes is its namespace's
    (kernel.conversation.message_id_kind); the session checks it.

    A plain class on purpose: msgspec decodes it through `_decode_custom` (a dataclass or
    Struct would be read as an object)."""

    __slots__ = ("value",)

    def __init__(self, value: MessageRef) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MessageId)
            and type(other.value) is type(self.value)
            and (other.value == self.value)
        )

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"MessageId({self.value!r})"

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def decode(cls, raw: object) -> MessageId:
        """The reference `raw` (a decoded JSON or MessagePack value) spells; ValueError, which
        the decoder reports with the field's path, when it spells none."""
        if isinstance(raw, int) and not isinstance(raw, bool):
            if 0 < raw <= MAX_BIGINT_ID:
                return cls(raw)
        elif isinstance(raw, str):
            if _DECIMAL.fullmatch(raw) and int(raw) <= MAX_BIGINT_ID:
                return cls(int(raw))
            if _UUID_TEXT.fullmatch(raw):
                return cls(uuid.UUID(raw))
        elif isinstance(raw, bytes) and len(raw) == 16:
            return cls(uuid.UUID(bytes=raw))
        raise ValueError(_NOT_A_REF)


def _decode_custom(type_: type, raw: object) -> object:
    """msgspec's hook for the frame field types it does not know itself."""
    if type_ is MessageId:
        return MessageId.decode(raw)
    raise NotImplementedError(type_)


class ClientFrame(Struct, tag_field="op", forbid_unknown_fields=True, kw_only=True):
    ref: Ref = None


class Auth(ClientFrame, tag="auth"):
    token: Token


class Refresh(ClientFrame, tag="refresh"):
    token: Token


class Join(ClientFrame, tag="join"):
    channel: ChannelName
    since: Seq | None = None


class Leave(ClientFrame, tag="leave"):
    channel: ChannelName


class Send(ClientFrame, tag="send"):
    channel: ChannelName
    text: MessageText
    type: MessageType = "text"
    reply_to: MessageId | None = None
    client_id: ClientId | None = None
    attachment_url: AttachmentUrl | None = None
    attachment: Attachment | None = None
    mentions: Annotated[list[UserId], Meta(max_length=50)] | None = None
    # Structured data of the type (e.g. location {"lat", "lon"}); its realm validates it.
    metadata: Annotated[dict[str, Any], Meta(max_length=32)] | None = None


class Cancel(ClientFrame, tag="cancel"):
    """Stop what the server is streaming as `id` in `channel` (an assistant's reply)."""

    channel: ChannelName
    id: MessageId


class Edit(ClientFrame, tag="edit"):
    channel: ChannelName
    id: MessageId
    text: MessageText


class Delete(ClientFrame, tag="delete"):
    channel: ChannelName
    id: MessageId
    reason: Reason | None = None


class Pin(ClientFrame, tag="pin"):
    channel: ChannelName
    id: MessageId


class Unpin(ClientFrame, tag="unpin"):
    channel: ChannelName
    id: MessageId


class Flag(ClientFrame, tag="flag"):
    channel: ChannelName
    id: MessageId
    reason: Annotated[str, Meta(min_length=1, max_length=100, pattern=NO_NUL)]
    description: Reason | None = None


class Typing(ClientFrame, tag="typing"):
    channel: ChannelName


class Read(ClientFrame, tag="read"):
    channel: ChannelName
    seq: Seq


class History(ClientFrame, tag="history"):
    channel: ChannelName
    before: Seq | None = None
    after: Seq | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 50


class Presence(ClientFrame, tag="presence"):
    channel: ChannelName


class Ping(ClientFrame, tag="ping"):
    pass


ConversationKind = Literal["direct", "group", "support"]
UserIds = Annotated[list[UserId], Meta(min_length=1, max_length=100)]


class Create(ClientFrame, tag="create"):
    """Open a conversation: `direct` with one user (`with`; the existing one if any), `group`
    with `members` (the creator is its admin), `support` (the creator and the staff queue)."""

    kind: ConversationKind
    with_: UserId | None = msgspec.field(default=None, name="with")
    members: UserIds | None = None
    title: Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)] | None = None


class AddMembers(ClientFrame, tag="add_members"):
    channel: ChannelName
    users: UserIds


class RemoveMember(ClientFrame, tag="remove_member"):
    channel: ChannelName
    user_id: UserId


class React(ClientFrame, tag="react"):
    channel: ChannelName
    id: MessageId
    emoji: Annotated[str, Meta(min_length=1, max_length=32, pattern=NO_NUL)]
    remove: bool = False


class Mute(ClientFrame, tag="mute"):
    """Mute (or unmute) a conversation for oneself: no push or e-mail for it."""

    channel: ChannelName
    muted: bool = True


class Conversations(ClientFrame, tag="conversations"):
    """The caller's conversations with unread counts; staff asking for `support` get the
    realm's whole support queue."""

    kind: ConversationKind | None = None


class ReadNotifications(ClientFrame, tag="read_notifications"):
    ids: Annotated[list[uuid.UUID], Meta(min_length=1, max_length=100)] | None = None
    all: bool = False


AnyClientFrame = (
    Auth
    | Refresh
    | Join
    | Leave
    | Send
    | Cancel
    | Edit
    | Delete
    | Pin
    | Unpin
    | Flag
    | Typing
    | Read
    | History
    | Presence
    | Ping
    | ReadNotifications
    | Create
    | AddMembers
    | RemoveMember
    | React
    | Mute
    | Conversations
)
CLIENT_OPS: tuple[str, ...] = (
    "auth",
    "refresh",
    "join",
    "leave",
    "send",
    "cancel",
    "edit",
    "delete",
    "pin",
    "unpin",
    "flag",
    "typing",
    "read",
    "history",
    "presence",
    "ping",
    "read_notifications",
    "create",
    "add_members",
    "remove_member",
    "react",
    "mute",
    "conversations",
)


# --- server -> client ---------------------------------------------------------------------


class Welcome(ServerFrame, tag="welcome"):
    session_id: str
    user_id: str
    realm: str
    expires_at: int
    server_time: int
    max_frame_bytes: int
    frames_per_second: int


class Ok(ServerFrame, tag="ok"):
    """An operation succeeded. Each op's `ok` is its own Struct below (all on the wire as
    `"op": "ok"`), carrying only the fields that op answers with."""

    ref: Ref = None
    channel: str | None = None


class Joined(Ok, tag="ok", kw_only=True):
    """`join` (and the user stream's automatic join, with `unread` and `missed`)."""

    role: str
    last_seq: int | None = None
    recovered: bool | None = None
    replayed: int | None = None
    members: list[MemberState] | None = None
    unread: int | None = None
    missed: int | None = None


class Sent(Ok, tag="ok", kw_only=True):
    """`send`: committed (or, in live channels, published); `seq` is absent when unstored."""

    id: str
    created_at: str
    seq: int | None = None
    duplicate: bool = False


class Changed(Ok, tag="ok", kw_only=True):
    """`edit`, `delete`, `pin`, `unpin`, `flag`, `react`: the message concerned."""

    id: str
    seq: int | None = None


class ReadUpTo(Ok, tag="ok", kw_only=True):
    """`read`: the stored read position."""

    seq: int


class HistoryPage(Ok, tag="ok", kw_only=True):
    messages: list[Message]


class UserList(Ok, tag="ok", kw_only=True):
    """`presence` (who is here) and `add_members` (who was added)."""

    users: list[str]


class Refreshed(Ok, tag="ok", kw_only=True):
    expires_at: int


class NotificationsMarked(Ok, tag="ok", kw_only=True):
    marked: int
    unread: int


class ConversationOpened(Ok, tag="ok", kw_only=True):
    created: bool


class ConversationList(Ok, tag="ok", kw_only=True):
    conversations: list[ConversationSummary]


class Error(ServerFrame, tag="error"):
    code: ErrorCode
    message: str
    ref: Ref = None
    retry_after_ms: int | None = None


class Notification(ServerFrame, tag="notification"):
    channel: str
    id: str
    notification_type: str
    title: str | None = None
    message: str | None = None
    action_url: str | None = None
    priority: str | None = None
    created_at: str | None = None
    missed: bool = False


class Pong(ServerFrame, tag="pong"):
    ref: Ref = None
    server_time: int | None = None


# Every frame the server sends (`ok` has one Struct per op, see Ok).
AnyServerFrame = Welcome | Message | LiveMessage | Ok | Error | Event | Notification | Pong


class _RefProbe(Struct):
    ref: Any = None


_json_decoder = msgspec.json.Decoder(AnyClientFrame, dec_hook=_decode_custom)
_msgpack_decoder = msgspec.msgpack.Decoder(AnyClientFrame, dec_hook=_decode_custom)
_json_probe = msgspec.json.Decoder(_RefProbe)
_msgpack_probe = msgspec.msgpack.Decoder(_RefProbe)
msgpack_encoder = msgspec.msgpack.Encoder()
_any_json = msgspec.json.Decoder()


def _explain(exc: msgspec.DecodeError) -> str:
    text = str(exc)
    if "Invalid value" in text and "$.op" in text:
        return "unknown op " + text.split("Invalid value ", 1)[1].split(" - ")[0]
    if text.startswith("Object missing required field `op`"):
        return "frame has no `op`"
    return text


def probe_ref(data: bytes | str, *, binary: bool) -> Ref:
    """The `ref` of a frame that will not be decoded in full (too large, malformed), if any."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        probe = (_msgpack_probe if binary else _json_probe).decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    ref = probe.ref
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int):
        return ref if -(2**53) <= ref <= 2**53 else None
    return ref if isinstance(ref, str) and len(ref) <= 64 else None


def decode_client_frame(data: bytes | str, *, binary: bool) -> AnyClientFrame:
    """Decode one client frame; raise BadRequest with a precise message (and the ref if any)."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if binary:
            return _msgpack_decoder.decode(raw)
        return _json_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        error = BadRequest(_explain(exc))
        error.details["ref"] = probe_ref(data, binary=binary)
        raise error from None
    except RecursionError:  # nesting deeper than the decoder goes: refused, never a crash
        raise BadRequest("frame is nested too deeply") from None


def encode(frame: ServerFrame, *, binary: bool) -> bytes:
    """A server frame as the bytes of one WebSocket message in the connection's format."""
    return msgpack_encoder.encode(frame) if binary else json_encoder.encode(frame)


def json_to_msgpack(payload: bytes) -> bytes:
    """Re-encode an already-encoded JSON server frame for msgpack clients (once per message)."""
    return msgpack_encoder.encode(_any_json.decode(payload))
