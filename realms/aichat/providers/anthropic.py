"""The Anthropic Messages streaming adapter: POST {base}/v1/messages with `stream: true`;
events `message_start` (model, input tokens), `content_block_delta` (`text_delta`),
`message_delta` (stop_reason, output tokens), `message_stop`; `error` events and `ping`s in
between. The system prompt is the top-level `system`; turns alternate user/assistant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec

from realms.aichat.providers.base import ChatRequest, Chunk, ProviderError, Turn, Usage
from realms.aichat.providers.http import streamed_post
from realms.aichat.providers.sse import sse_events
from realms.aichat.settings import AichatSettings, ProviderEndpoint

API_VERSION = "2023-06-01"
# Anthropic's stop reasons in the OpenAI vocabulary the realm stores.
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


class _Event(msgspec.Struct):
    type: str
    message: dict[str, Any] | None = None
    delta: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


_decode_event = msgspec.json.Decoder(_Event).decode


def alternating(turns: list[Turn]) -> tuple[str | None, list[dict[str, str]]]:
    """(system, messages): consecutive turns of one role are joined (a user message whose
    reply failed is followed by another user message), and the first turn is the user's."""
    system = "\n\n".join(t.content for t in turns if t.role == "system") or None
    messages: list[dict[str, str]] = []
    for turn in (t for t in turns if t.role != "system"):
        if messages and messages[-1]["role"] == turn.role:
            messages[-1]["content"] += "\n\n" + turn.content
        else:
            messages.append({"role": turn.role, "content": turn.content})
    while messages and messages[0]["role"] != "user":
        messages.pop(0)
    return system, messages


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self, http: aiohttp.ClientSession, endpoint: ProviderEndpoint, settings: AichatSettings
    ) -> None:
        self._http = http
        self._endpoint = endpoint
        self._settings = settings

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        system, messages = alternating(request.turns)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
            "stream": True,
        }
        if system:
            body["system"] = system
        headers = {"anthropic-version": API_VERSION, "Accept": "text/event-stream"}
        if self._endpoint.api_key:
            headers["x-api-key"] = self._endpoint.api_key
        s = self._settings
        model: str | None = None
        prompt_tokens = completion_tokens = 0
        finish: str | None = None
        async with streamed_post(
            self._http,
            self.name,
            f"{self._endpoint.base_url}/v1/messages",
            body=body,
            headers=headers,
            connect_timeout_s=s.connect_timeout_s,
            idle_timeout_s=s.idle_timeout_s,
            cooldown_s=s.cooldown_s,
        ) as response:
            async for _name, data in sse_events(response.content):
                try:
                    event = _decode_event(data)
                except msgspec.DecodeError as exc:
                    raise ProviderError(f"anthropic sent a malformed event: {exc}") from None
                if event.type == "message_start" and event.message is not None:
                    model = event.message.get("model")
                    usage = event.message.get("usage") or {}
                    prompt_tokens = int(usage.get("input_tokens", 0))
                    completion_tokens = int(usage.get("output_tokens", 0))
                elif event.type == "content_block_delta" and event.delta is not None:
                    if event.delta.get("type") == "text_delta":
                        yield Chunk(text=str(event.delta.get("text", "")), model=model)
                elif event.type == "message_delta":
                    if event.delta is not None and event.delta.get("stop_reason"):
                        reason = str(event.delta["stop_reason"])
                        finish = STOP_REASONS.get(reason, reason)
                    if event.usage is not None:  # cumulative output tokens
                        completion_tokens = int(event.usage.get("output_tokens", 0))
                elif event.type == "message_stop":
                    yield Chunk(
                        model=model,
                        finish_reason=finish or "stop",
                        usage=Usage(prompt_tokens, completion_tokens),
                    )
                    return
                elif event.type == "error":
                    detail = (event.error or {}).get("message", "error")
                    raise ProviderError(f"anthropic failed: {detail}", retry_after_s=s.cooldown_s)
            raise ProviderError(
                "anthropic's stream ended before message_stop", retry_after_s=s.cooldown_s
            )
