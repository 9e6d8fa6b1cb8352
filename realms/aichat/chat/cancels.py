"""`cancel` of a reply streaming on any gateway process. The process that gets the client's
`cancel` stops the reply itself when it streams there; otherwise it sends NOTIFY aichat_cancel
and waits (AICHAT_CANCEL_WAIT) for the answer of the process that streams it, which every
process hears on its own reconnecting LISTEN connection (kernel/listen.py)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Literal

import asyncpg
import msgspec

from kernel.errors import Conflict, NotFound
from kernel.listen import Listener
from kernel.logs import EventLog
from realms.aichat.chat.streams import ReplyStreams

log = EventLog("realms.aichat.cancels")

CHANNEL = "aichat_cancel"

# cancel: a process asks the one streaming `id` to stop it; the others ignore it.
# stopped / ended / refused: that process's answer to the asker's `ask` (ended: the reply
# was already finishing, so it commits whole; refused: another user's or channel's reply).
Op = Literal["cancel", "stopped", "ended", "refused"]


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    op: Op
    id: uuid.UUID
    ask: uuid.UUID
    user_id: str | None = None
    channel: str | None = None


_decode = msgspec.json.Decoder(Notice).decode


class CancelRelay:
    """One per gateway process. `await cancel(...)` from the namespace; `await ready()`
    before a reply starts streaming here (so this process hears cancels sent from others);
    `await close()` at the end. Its LISTEN connection opens on first use."""

    def __init__(
        self, pool: asyncpg.Pool, streams: ReplyStreams, dsn: Callable[[], str], *, wait_s: float
    ) -> None:
        self._pool = pool
        self._streams = streams
        self._wait_s = wait_s
        self._dsn = dsn  # read when the LISTEN connection first opens
        self._listener: Listener | None = None
        self._started: asyncio.Task[None] | None = None
        self._asked: dict[uuid.UUID, asyncio.Future[Op]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def ready(self) -> None:
        """Return once this process listens on aichat_cancel (raises if Postgres refuses
        the connection; the next call tries again)."""
        if self._listener is None:
            self._listener = Listener(self._dsn(), "switchboard-aichat-cancel")
            self._listener.on(CHANNEL, self._heard)
        started = self._started
        if started is None or (started.done() and (started.cancelled() or started.exception())):
            started = self._started = asyncio.get_running_loop().create_task(self._listener.start())
        await asyncio.shield(started)

    async def cancel(self, user_id: str, channel: str, reply_id: uuid.UUID) -> None:
        """Stop the reply `reply_id` of `channel` (owned by `user_id`) wherever it streams.
        Returns once the streaming process has stopped it (what it generated is committed as
        a partial reply and published to the channel); Conflict when it has already ended,
        NotFound when no process streams it in this conversation."""
        owner = self._streams.owner_of(reply_id)
        if owner is not None:
            if (str(owner[0]), owner[1]) != (user_id, channel):
                raise NotFound(f"no reply {reply_id} is streaming in this conversation")
            if not self._streams.cancel(reply_id):
                raise Conflict(f"reply {reply_id} has already ended")
            return
        answer = await self._ask(user_id, channel, reply_id)
        if answer == "stopped":
            return
        if answer == "refused":
            raise NotFound(f"no reply {reply_id} is streaming in this conversation")
        if answer == "ended" or await self._committed(channel, reply_id):
            raise Conflict(f"reply {reply_id} has already ended")
        raise NotFound(f"no reply {reply_id} is streaming in this conversation")

    async def close(self) -> None:
        if self._started is not None and not self._started.done():
            self._started.cancel()
        if self._listener is not None:
            await self._listener.close()
        for task in list(self._tasks):
            task.cancel()

    async def _ask(self, user_id: str, channel: str, reply_id: uuid.UUID) -> Op | None:
        """The answer of the process streaming `reply_id`, or None when none came in time."""
        await self.ready()
        ask = uuid.uuid4()
        answer: asyncio.Future[Op] = asyncio.get_running_loop().create_future()
        self._asked[ask] = answer
        try:
            await self._notify(
                Notice(op="cancel", id=reply_id, ask=ask, user_id=user_id, channel=channel)
            )
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(answer, self._wait_s)
            return None
        finally:
            self._asked.pop(ask, None)

    async def _committed(self, channel: str, reply_id: uuid.UUID) -> bool:
        conversation = uuid.UUID(channel.partition(":")[2])
        return bool(
            await self._pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM aichat.messages"
                " WHERE id = $1 AND conversation_id = $2)",
                reply_id,
                conversation,
            )
        )

    async def _notify(self, notice: Notice) -> None:
        await self._pool.execute(
            "SELECT pg_notify($1, $2)", CHANNEL, msgspec.json.encode(notice).decode()
        )

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = _decode(payload)
        except msgspec.DecodeError:
            log.error("bad_notice", payload=payload[:200])
            return
        if notice.op != "cancel":
            waiting = self._asked.get(notice.ask)
            if waiting is not None and not waiting.done():
                waiting.set_result(notice.op)
            return
        owner = self._streams.owner_of(notice.id)
        if owner is None:
            return  # not streaming here: the process that streams it answers
        if (str(owner[0]), owner[1]) != (notice.user_id, notice.channel):
            op: Op = "refused"
        else:
            op = "stopped" if self._streams.cancel(notice.id) else "ended"
        log.info("cancel_heard", reply=str(notice.id), answer=op)
        task = asyncio.get_running_loop().create_task(self._answer(notice, op))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, notice: Notice, op: Op) -> None:
        try:
            await self._notify(Notice(op=op, id=notice.id, ask=notice.ask))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The reply is stopped regardless; the asker only misses the confirmation.
            log.error("cancel_answer_failed", reply=str(notice.id), error=repr(exc))
