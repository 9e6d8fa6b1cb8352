"""One authenticated socket's session: what each client frame means and what to answer.

`handle(frame)` authorises and performs one decoded frame and returns the reply to write
(or None); it raises a SwitchboardError for a refusal, which the socket layer turns into an
`error` frame echoing the ref. The socket layer only reads, calls and writes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import asyncpg

from gateway import protocol as p
from gateway.fanout import Client, ws_frame
from gateway.ports import SessionHost
from kernel import inbox
from kernel.conversation import (
    ChatStore,
    ConversationAdmin,
    Draft,
    Membership,
    MessageRef,
    Namespace,
    Principal,
    StreamControl,
    checked_ref,
    message_id_kind,
)
from kernel.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    RateLimited,
    SwitchboardError,
    Unauthorized,
    Unavailable,
)
from kernel.logs import EventLog
from kernel.revocation import check_not_revoked
from kernel.tokens import verify_access_token

log = EventLog("gateway.session")

MAX_CHANNELS_PER_SOCKET = 100
TYPING_EVERY_S = 1.0
TYPING_TTL_MS = 5000
EXPIRY_SLACK_S = 0.25  # after entitled_until, so the database's now() has passed it too
EXPIRY_RECHECK_MIN_S = 1.0  # a membership still good at its end is looked at again after this


class Session:
    """State of one socket: who it is, what it joined, until when its token is good."""

    def __init__(
        self,
        gateway: SessionHost,
        principal: Principal,
        client: Client,
        session_id: str,
        expires_at: int,
    ) -> None:
        self.gateway = gateway
        self.principal = principal
        self.client = client
        self.session_id = session_id
        self.expires_at = expires_at
        # the sign-in session (`sid`) of the token in use: revoking it closes this socket
        self.token_session: str | None = None
        self.realm = gateway.realms.get(principal.realm)
        self.user_stream = self.realm.user_stream(principal.user_id)
        self.joined: dict[str, Membership] = {}
        self._typing_at: dict[str, float] = {}
        self._send_order = asyncio.Lock()
        self.on_refresh: list[Callable[[], None]] = []
        # closes the socket with (code, reason); the socket layer sets it
        self.kick: Callable[[int, str], None] = lambda _code, _reason: None
        # channel -> the timer that re-checks the membership when its entitlement lapses
        self._lapse_timers: dict[str, asyncio.TimerHandle] = {}
        self._lapse_checks: set[asyncio.Task[None]] = set()

    # --- dispatch -----------------------------------------------------------------------------

    async def handle(self, frame: p.AnyClientFrame) -> p.ServerFrame | None:
        """Perform `frame`; return the reply to write at once (None: no reply is due)."""
        ref = frame.ref
        match frame:
            case p.Ping():
                return p.Pong(ref=ref, server_time=int(time.time() * 1000))
            case p.Refresh():
                await self.refresh(frame.token)
                return p.Refreshed(ref=ref, expires_at=self.expires_at)
            case p.Auth():
                raise BadRequest("already authenticated; use `refresh` to present a new token")
            case p.ReadNotifications():
                return await self._read_notifications(frame)
            case p.Create():
                admin = self._admin_of_kind(frame.kind)
                channel, created = await admin.create(
                    self.principal, frame.kind, frame.with_, frame.members, frame.title
                )
                return p.ConversationOpened(ref=ref, channel=channel, created=created)
            case p.Conversations():
                listed = await self._admin_of_kind(frame.kind).list_for(self.principal, frame.kind)
                return p.ConversationList(ref=ref, conversations=listed)
        # Every other op names a channel: from here on it goes by its one canonical spelling.
        _, _, ch = self.gateway.namespaces.resolve(frame.channel)
        match frame:
            case p.Join():
                return await self.join(ch, frame.since, ref)
            case p.Leave():
                await self.leave(ch, reason=None)
                return p.Ok(ref=ref, channel=ch)
            case p.Send():
                return await self._send(ch, frame)
            case p.Cancel():
                namespace, _ = self._namespace(ch)
                if not isinstance(namespace, StreamControl):
                    raise BadRequest(f"{namespace.name}: nothing streams in these channels")
                member = self._member(ch)
                reply_id = self._ref(ch, frame.id)
                if not isinstance(reply_id, uuid.UUID):  # streamed replies are named by UUIDs
                    raise BadRequest(f"replies streamed in {namespace.name} are named by UUIDs")
                await namespace.cancel(self.principal, member, reply_id)
                return p.Changed(ref=ref, channel=ch, id=str(reply_id))
            case p.Edit():
                chat, member = self._chat(ch), self._member(ch)
                m = await chat.edit(self.principal, member, self._ref(ch, frame.id), frame.text)
                return p.Changed(ref=ref, channel=ch, id=m.id, seq=m.seq)
            case p.Delete():
                chat, member = self._chat(ch), self._member(ch)
                message_id = self._ref(ch, frame.id)
                m = await chat.delete(self.principal, member, message_id, frame.reason)
                return p.Changed(ref=ref, channel=ch, id=m.id, seq=m.seq)
            case p.Pin() | p.Unpin():
                chat, member = self._chat(ch), self._member(ch)
                pinned = isinstance(frame, p.Pin)
                m = await chat.pin(self.principal, member, self._ref(ch, frame.id), pinned)
                return p.Changed(ref=ref, channel=ch, id=m.id, seq=m.seq)
            case p.Flag():
                chat, member = self._chat(ch), self._member(ch)
                message_id = self._ref(ch, frame.id)
                await chat.flag(self.principal, member, message_id, frame.reason, frame.description)
                return p.Changed(ref=ref, channel=ch, id=str(message_id))
            case p.Typing():
                self._typing(ch)
                return p.Ok(ref=ref, channel=ch) if ref is not None else None
            case p.Read():
                stored = await self._chat(ch).mark_read(self.principal, self._member(ch), frame.seq)
                return p.ReadUpTo(ref=ref, channel=ch, seq=stored)
            case p.History():
                messages = await self._chat(ch).history(
                    self._member(ch), frame.before, frame.after, frame.limit
                )
                return p.HistoryPage(ref=ref, channel=ch, messages=messages)
            case p.Presence():
                self._member(ch)
                return p.UserList(ref=ref, channel=ch, users=await self.gateway.presence.who(ch))
            case p.AddMembers():
                added = await self._admin(ch).add_members(
                    self.principal, self._member(ch), frame.users
                )
                return p.UserList(ref=ref, channel=ch, users=added)
            case p.RemoveMember():
                await self._admin(ch).remove_member(self.principal, self._member(ch), frame.user_id)
                return p.Ok(ref=ref, channel=ch)
            case p.Mute():
                await self._admin(ch).mute(self.principal, self._member(ch), frame.muted)
                return p.Ok(ref=ref, channel=ch)
            case p.React():
                admin, member = self._admin(ch), self._member(ch)
                message_id = self._ref(ch, frame.id)
                await admin.react(self.principal, member, message_id, frame.emoji, frame.remove)
                return p.Changed(ref=ref, channel=ch, id=str(message_id))
        raise BadRequest(f"unsupported op {type(frame).__name__}")  # pragma: no cover

    async def _read_notifications(self, frame: p.ReadNotifications) -> p.NotificationsMarked:
        if not self.realm.in_app_inbox:
            raise BadRequest(f"realm {self.realm.name!r} keeps no in-app inbox")
        if frame.all == (frame.ids is not None):
            raise BadRequest("give either `ids` (1 to 100 notification ids) or `all: true`")
        user_id, realm = self.principal.user_id, self.realm
        pool = self.gateway.pool
        marked = await inbox.mark_read(pool, user_id, None if frame.all else frame.ids, realm)
        return p.NotificationsMarked(
            ref=frame.ref,
            channel=self.user_stream,
            marked=marked,
            unread=await inbox.unread_count(pool, user_id, realm),
        )

    # --- membership ---------------------------------------------------------------------------

    def _member(self, channel: str) -> Membership:
        membership = self.joined.get(channel)
        if membership is None:
            raise Forbidden(f"join {channel} first")
        return membership

    def _namespace(self, channel: str) -> tuple[Namespace, str]:
        namespace, key, _ = self.gateway.namespaces.resolve(channel)
        return namespace, key

    def _ref(self, channel: str, given: p.MessageId) -> MessageRef:
        """The message a frame names, if it is of the kind `channel`'s namespace keeps its
        messages by (BadRequest otherwise, before any store sees it)."""
        namespace, _ = self._namespace(channel)
        return checked_ref(namespace.name, message_id_kind(namespace), given.value)

    def _admin(self, channel: str) -> ConversationAdmin:
        namespace, _ = self._namespace(channel)
        admin = namespace.conversations()
        if admin is None:
            raise BadRequest(f"{namespace.name}: channels are not conversations")
        return admin

    def _admin_of_kind(self, kind: str | None) -> ConversationAdmin:
        """The conversation store of the caller's realm (of `kind`, or of any kind)."""
        for kind_ in (kind,) if kind else ("direct", "group", "support"):
            namespace = self.gateway.namespaces.named(f"{self.realm.name}.{kind_}")
            admin = namespace.conversations() if namespace is not None else None
            if admin is not None:
                return admin
        what = f"{kind} conversations" if kind else "conversations"
        raise BadRequest(f"realm {self.realm.name!r} keeps no {what}")

    def _chat(self, channel: str) -> ChatStore:
        namespace, _ = self._namespace(channel)
        chat = namespace.chat()
        if chat is None:
            raise Forbidden(f"{namespace.name}: channels are receive-only")
        return chat

    async def join(self, channel: str, since: int | None, ref: p.Ref = None) -> p.Joined:
        """Authorise, count in, subscribe and catch up; the returned ack must be written next."""
        if channel in self.joined:
            membership = self.joined[channel]
            admin = self._namespace(channel)[0].conversations()
            return p.Joined(
                ref=ref,
                channel=channel,
                role=membership.role,
                members=await admin.members(membership) if admin is not None else None,
            )
        if len(self.joined) >= MAX_CHANNELS_PER_SOCKET:
            raise BadRequest(f"a socket may join at most {MAX_CHANNELS_PER_SOCKET} channels")
        if self.gateway.draining:
            raise Unavailable("server is shutting down; reconnect")
        namespace, key = self._namespace(channel)
        if namespace.realm != self.principal.realm:
            raise Forbidden(
                f"{channel} belongs to realm {namespace.realm!r}, not {self.principal.realm!r}"
            )
        if since is not None and namespace.sequence_source() is None:
            raise BadRequest(f"{namespace.name}: channels have no seq to resume from")
        membership = await namespace.authorize(self.principal, channel, key)
        first_here = False
        if namespace.tracks_presence:
            first_here = await self.gateway.presence.enter(
                channel,
                self.principal.user_id,
                cap=membership.max_members,
                counted=not membership.privileged,
                lock_sql=namespace.lock_sql(),
                lock_arg=key,
                on_count=namespace.members_changed,
            )
        try:
            replayed, recovered, last_seq = await self.gateway.hub.join(self.client, channel, since)
        except BaseException:
            if namespace.tracks_presence:
                await self.gateway.presence.leave(
                    channel,
                    self.principal.user_id,
                    lock_sql=namespace.lock_sql(),
                    lock_arg=key,
                    on_count=namespace.members_changed,
                )
            raise
        self.joined[channel] = membership
        self._watch_lapse(channel, membership, minimum_s=0.0)
        self.gateway.metrics.joins.labels(namespace.name).inc()
        if first_here:
            self.gateway.announce(
                p.Event(channel=channel, kind="joined", user_id=self.principal.user_id)
            )
        admin = namespace.conversations()
        return p.Joined(
            ref=ref,
            channel=channel,
            role=membership.role,
            last_seq=last_seq,
            replayed=replayed if since is not None else None,
            recovered=recovered if since is not None else None,
            members=await admin.members(membership) if admin is not None else None,
        )

    async def leave(self, channel: str, *, reason: str | None) -> None:
        """Leave `channel`; with a `reason` the user is told it was removed."""
        membership = self.joined.pop(channel, None)
        if membership is None:
            raise NotFound(f"not joined to {channel}")
        namespace, key = self._namespace(channel)
        if membership.role == "self" and reason is None:
            self.joined[channel] = membership
            raise BadRequest("the user stream cannot be left")
        self._unwatch_lapse(channel)
        await self.gateway.hub.leave(self.client, channel)
        if reason is not None:
            self.write(p.Event(channel=channel, kind="removed", reason=reason))
        if namespace.tracks_presence and await self.gateway.presence.leave(
            channel,
            self.principal.user_id,
            lock_sql=namespace.lock_sql(),
            lock_arg=key,
            on_count=namespace.members_changed,
        ):
            self.gateway.announce(
                p.Event(channel=channel, kind="left", user_id=self.principal.user_id)
            )

    async def revalidate(self) -> None:
        """Re-authorise every joined channel (changes may have been missed): drop the lost."""
        await self.recheck(None)

    async def recheck(self, notice: dict[str, str] | None) -> None:
        """A membership-relevant change happened (None: any may have): drop every channel no
        longer allowed."""
        for channel, membership in list(self.joined.items()):
            namespace, key = self._namespace(channel)
            if membership.role == "self":
                continue
            if notice is not None and not namespace.affected_by(notice, membership):
                continue
            try:
                fresh = await namespace.authorize(self.principal, channel, key)
            except SwitchboardError as refusal:
                log.info(
                    "membership_revoked",
                    user=self.principal.user_id,
                    channel=channel,
                    reason=refusal.message,
                )
                if channel in self.joined:
                    await self.leave(channel, reason=refusal.message)
                continue
            if channel in self.joined:
                self.joined[channel] = fresh
                if fresh.muted_until != membership.muted_until:  # tell this socket
                    self.write(self._mute_event(channel, fresh.muted_until))

    @staticmethod
    def _mute_event(channel: str, until: float | None) -> p.Event:
        if until is None:
            return p.Event(channel=channel, kind="unmuted")
        at = (
            None
            if until == float("inf")
            else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
        )
        return p.Event(channel=channel, kind="muted", at=at)

    def _watch_lapse(self, channel: str, membership: Membership, *, minimum_s: float) -> None:
        """Re-check the membership when its entitlement lapses by time alone (a subscription
        reaching expires_at announces nothing; a renewal may have moved it meanwhile)."""
        self._unwatch_lapse(channel)
        if membership.entitled_until is None:
            return
        delay = max(membership.entitled_until - time.time() + EXPIRY_SLACK_S, minimum_s)
        self._lapse_timers[channel] = asyncio.get_running_loop().call_later(
            delay, self._lapse_due, channel
        )

    def _unwatch_lapse(self, channel: str) -> None:
        timer = self._lapse_timers.pop(channel, None)
        if timer is not None:
            timer.cancel()

    def _lapse_due(self, channel: str) -> None:
        self._lapse_timers.pop(channel, None)
        task = asyncio.get_running_loop().create_task(self._recheck_lapse(channel))
        self._lapse_checks.add(task)
        task.add_done_callback(self._lapse_checks.discard)

    async def _recheck_lapse(self, channel: str) -> None:
        if channel not in self.joined:
            return
        namespace, key = self._namespace(channel)
        try:
            membership = await namespace.authorize(self.principal, channel, key)
        except SwitchboardError as refusal:
            log.info("membership_lapsed", user=self.principal.user_id, channel=channel)
            if channel in self.joined:
                await self.leave(channel, reason=refusal.message)
            return
        except Exception as exc:  # the database is away: look again shortly
            log.error("lapse_check_failed", channel=channel, error=repr(exc))
            if channel in self.joined:
                self._lapse_timers[channel] = asyncio.get_running_loop().call_later(
                    5.0, self._lapse_due, channel
                )
            return
        log.info(
            "membership_kept",
            user=self.principal.user_id,
            channel=channel,
            until=membership.entitled_until,
        )
        if channel in self.joined:
            self.joined[channel] = membership
            self._watch_lapse(channel, membership, minimum_s=EXPIRY_RECHECK_MIN_S)

    async def close(self) -> None:
        """The socket is gone: leave everything (counts and presence follow).

        Every step runs whatever became of the others: one that fails (Redis or Postgres
        away) is logged and the rest still happen. What a failed step leaves in shared state
        is repaired when that service answers again (docs/protocol.md §14)."""
        for channel in list(self._lapse_timers):
            self._unwatch_lapse(channel)
        for task in list(self._lapse_checks):
            task.cancel()
        try:
            await self.gateway.hub.drop(self.client)
        except Exception:
            log.exception("hub_drop_failed", session=self.session_id)
        for channel in list(self.joined):
            self.joined.pop(channel, None)
            try:
                namespace, key = self._namespace(channel)
                if not namespace.tracks_presence:
                    continue
                last_here = await self.gateway.presence.leave(
                    channel,
                    self.principal.user_id,
                    lock_sql=namespace.lock_sql(),
                    lock_arg=key,
                    on_count=namespace.members_changed,
                )
                if last_here:
                    self.gateway.announce(
                        p.Event(channel=channel, kind="left", user_id=self.principal.user_id)
                    )
            except Exception:
                log.exception("presence_leave_failed", channel=channel)

    # --- messages -----------------------------------------------------------------------------

    async def _send(self, channel: str, frame: p.Send) -> p.Sent:
        membership = self._member(channel)
        chat = self._chat(channel)
        if self.gateway.draining:
            raise Unavailable("server is shutting down; reconnect and resend with client_id")
        if membership.muted_until is not None and time.time() < membership.muted_until:
            at = self._mute_event(channel, membership.muted_until).at
            raise Forbidden(
                f"you are muted in this channel {f'until {at}' if at else 'until lifted'}"
            )
        if frame.type == "system" and not membership.privileged:
            raise Forbidden("only the channel's analyst and admins may send system messages")
        reply_to = self._ref(channel, frame.reply_to) if frame.reply_to is not None else None
        limiter, verdict = self.gateway.chat_limiter, None
        key = channel  # canonical: a live room's budget is apart from its stored room's
        draft = Draft(
            text=frame.text,
            type=frame.type,
            reply_to=reply_to,
            client_id=frame.client_id,
            attachment_url=frame.attachment_url,
            attachment=frame.attachment,
            mentions=frame.mentions,
            metadata=frame.metadata,
        )
        # Pipelined sends of this socket pass the limit and enter their store in the order
        # they arrived: the store fixes a message's place before its first suspension (the
        # ChatStore contract), so channel order is the client's send order.
        async with self._send_order:
            if membership.rate_limit is not None:
                verdict = await limiter.hit(self.principal.user_id, key, membership.rate_limit)
                if not verdict.allowed:
                    self.gateway.metrics.rate_limited.labels("chat").inc()
                    raise RateLimited(
                        f"at most {membership.rate_limit} messages per minute in this channel",
                        retry_after_ms=verdict.retry_after_ms,
                    )
            appended = asyncio.ensure_future(chat.append(self.principal, membership, draft))
            await asyncio.sleep(0)  # the append runs up to its place in the queue
        try:
            committed = await appended
        except (SwitchboardError, asyncpg.DataError):
            # Refused for what the client sent (a bad reply_to, a closed channel, data the
            # database refuses): it counts, so errors are no way around the limit.
            raise
        except BaseException:
            # Not stored through no fault of the client (an outage, a cancellation): the
            # retry it will send with its client_id must not be charged twice.
            if verdict is not None:
                await limiter.release(self.principal.user_id, key, verdict.token)
            raise
        if committed.duplicate and verdict is not None:  # a retry stores nothing new
            await limiter.release(self.principal.user_id, key, verdict.token)
        self.gateway.metrics.messages_in.inc()
        return p.Sent(
            ref=frame.ref,
            channel=channel,
            id=committed.id,
            seq=committed.seq or None,  # 0: an unstored (live) message
            created_at=committed.created_at,
            duplicate=committed.duplicate,
        )

    def _typing(self, channel: str) -> None:
        self._member(channel)
        self._chat(channel)
        now = time.monotonic()
        if now - self._typing_at.get(channel, 0.0) < TYPING_EVERY_S:
            return
        self._typing_at[channel] = now
        self.gateway.announce(
            p.Event(
                channel=channel,
                kind="typing",
                user_id=self.principal.user_id,
                expires_in_ms=TYPING_TTL_MS,
            )
        )

    # --- token --------------------------------------------------------------------------------

    async def refresh(self, token: str) -> None:
        """Accept a fresh token for the same user and realm, unless it was revoked (its
        sign-in session ended, or the user's tokens were revoked after it was issued); the
        socket layer re-arms expiry."""
        settings = self.gateway.settings
        claims = verify_access_token(
            settings.secret, token, max_ttl_s=settings.access_token_max_ttl_s
        )
        if claims.sub != self.principal.user_id or claims.realm != self.principal.realm:
            raise Unauthorized("refresh token belongs to another user or realm")
        await check_not_revoked(
            self.gateway.pool, claims.realm, self.principal.user_id, claims.iat, claims.sid
        )
        self.expires_at = claims.exp
        self.token_session = claims.sid
        for callback in self.on_refresh:
            callback()

    def write(self, frame: p.ServerFrame) -> None:
        payload = p.encode(frame, binary=self.client.binary)
        self.client.write_frame(ws_frame(payload, self.client.binary))
        self.gateway.metrics.frames_out.inc()
