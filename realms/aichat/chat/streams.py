"""Reply streams: for each committed user message, ask the provider, publish every piece of
the reply as a `delta` event to the conversation's channel (all the user's sockets there, on
every gateway), then commit the assistant message with its token counts and charge it, in
one transaction. A stopped stream (the user's `cancel`, a shutdown) or a provider failure
after some text commits what was generated, marked partial; a failure before any text
commits nothing, gives the message back to the quota and reports `reply_failed`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import asyncpg
import msgspec

from kernel.conversation import Publish
from kernel.logs import EventLog
from realms.aichat.chat.frames import StreamEvent, chat_message, encode
from realms.aichat.providers.base import ChatRequest, ProviderError, Usage, estimate_tokens
from realms.aichat.providers.router import ProviderRouter, Route
from realms.aichat.usage import charge_reply, release_message

log = EventLog("realms.aichat.streams")

_INSERT_REPLY = """
-- RETURNING is frames.COLUMNS' shape
INSERT INTO aichat.messages AS m (id, conversation_id, role, content, token_count, prompt_tokens,
                                  completion_tokens, model, reply_to, is_partial, finish_reason)
VALUES ($1, $2, 'assistant', $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING m.id, m.seq, m.role, m.content, m.token_count, m.prompt_tokens, m.completion_tokens,
          m.model, m.client_id, m.reply_to, m.is_partial, m.finish_reason, m.is_deleted,
          m.created_at, m.updated_at, $11::uuid AS user_id
"""


class Job(msgspec.Struct, kw_only=True):
    """One reply to make."""

    channel: str
    user_id: uuid.UUID
    conversation_id: uuid.UUID
    prompt_id: uuid.UUID  # the user message answered
    reply_id: uuid.UUID  # the assistant message's id, known to the deltas before it is stored
    route: Route
    request: ChatRequest


class _Running:
    def __init__(self, job: Job) -> None:
        self.job = job
        self.pump: asyncio.Task[None] | None = None
        self.stop_reason: str | None = None


class ReplyStreams:
    """The replies this process is streaming. `start` one per committed user message;
    `cancel` stops one; `close` stops all (committing what each generated)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publish: Publish,
        router: ProviderRouter,
        *,
        on_provider_call: Callable[[str], None] | None = None,
    ) -> None:
        self._pool = pool
        self._publish = publish
        self._router = router
        self._on_provider_call = on_provider_call
        self._running: dict[uuid.UUID, _Running] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, job: Job) -> None:
        running = _Running(job)
        self._running[job.reply_id] = running
        task = asyncio.get_running_loop().create_task(self._run(running))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def owner_of(self, reply_id: uuid.UUID) -> tuple[uuid.UUID, str] | None:
        """(user, channel) of a reply streaming here, or None."""
        running = self._running.get(reply_id)
        return (running.job.user_id, running.job.channel) if running else None

    def cancel(self, reply_id: uuid.UUID, reason: str = "cancelled") -> bool:
        """Stop the reply `reply_id` if it streams here. True when it ends stopped (by this
        call or an earlier one); False when it is not here or its provider has already
        finished (it commits as it came)."""
        running = self._running.get(reply_id)
        if running is None:
            return False
        if running.stop_reason is not None:
            return True
        if running.pump is not None and running.pump.done():
            return False
        running.stop_reason = reason
        if running.pump is not None:
            running.pump.cancel()
        return True

    async def close(self) -> None:
        for reply_id in list(self._running):
            self.cancel(reply_id, "shutdown")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, running: _Running) -> None:
        job = running.job
        parts: list[str] = []
        state: dict[str, object] = {}

        async def pump() -> None:
            if self._on_provider_call is not None:
                self._on_provider_call(job.route.provider_name)
            async for chunk in job.route.adapter.stream(job.request):
                if chunk.model:
                    state["model"] = chunk.model
                if chunk.usage is not None:
                    state["usage"] = chunk.usage
                if chunk.finish_reason:
                    state["finish"] = chunk.finish_reason
                if chunk.text:
                    index = len(parts)
                    parts.append(chunk.text)
                    await self._publish_event(
                        StreamEvent(
                            channel=job.channel,
                            kind="delta",
                            id=str(job.reply_id),
                            reply_to=str(job.prompt_id),
                            index=index,
                            text=chunk.text,
                            model=chunk.model,
                        )
                    )

        failure: ProviderError | None = None
        try:
            running.pump = asyncio.get_running_loop().create_task(pump())
            if running.stop_reason is not None:  # cancelled before it began
                running.pump.cancel()
            try:
                await running.pump
            except asyncio.CancelledError:
                if running.stop_reason is None:  # not ours: the whole task is cancelled
                    raise
            except ProviderError as exc:
                failure = exc
            await self._finish(running, "".join(parts), state, failure)
        except Exception:
            log.exception("reply_failed", reply=str(job.reply_id), channel=job.channel)
        finally:
            self._running.pop(job.reply_id, None)

    async def _finish(
        self,
        running: _Running,
        text: str,
        state: dict[str, object],
        failure: ProviderError | None,
    ) -> None:
        job = running.job
        if failure is not None:
            retry_s = failure.retry_after_s
            if not text:  # nothing came: the provider is down or refusing
                retry_s = self._router.cool_down(job.route.provider_name, retry_s)
            log.warning(
                "provider_failed",
                provider=job.route.provider_name,
                reply=str(job.reply_id),
                streamed=len(text),
                error=failure.message,
            )
            await self._publish_event(
                StreamEvent(
                    channel=job.channel,
                    kind="reply_failed",
                    id=str(job.reply_id),
                    reply_to=str(job.prompt_id),
                    code="unavailable",
                    message=f"the assistant's reply failed: {failure.message}"[:300],
                    retry_after_ms=int((retry_s or 0) * 1000) or None,
                )
            )
        if not text:
            await release_message(self._pool, job.user_id)
            return
        usage = state.get("usage")
        complete = failure is None and running.stop_reason is None
        if not isinstance(usage, Usage):  # cut before the usage arrived: estimated
            usage = Usage(
                sum(estimate_tokens(t.content) for t in job.request.turns), estimate_tokens(text)
            )
        if complete:
            finish = str(state.get("finish") or "stop")
        else:
            finish = "error" if failure is not None else str(running.stop_reason)
        model = str(state.get("model") or job.route.model_id)[:100]
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _INSERT_REPLY,
                job.reply_id,
                job.conversation_id,
                text,
                usage.total_tokens,
                usage.prompt_tokens,
                usage.completion_tokens,
                model,
                job.prompt_id,
                not complete,
                finish,
                job.user_id,
            )
            assert row is not None
            await charge_reply(
                conn,
                user_id=job.user_id,
                conversation_id=job.conversation_id,
                message_id=job.reply_id,
                provider=job.route.provider_name,
                model=model,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost=job.route.cost(usage.prompt_tokens, usage.completion_tokens),
            )
        message = chat_message(job.channel, row)
        await self._publish([(job.channel, message.seq, encode(message))])

    async def _publish_event(self, event: StreamEvent) -> None:
        await self._publish([(event.channel, 0, encode(event))])
