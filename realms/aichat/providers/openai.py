"""The OpenAI Chat Completions streaming adapter: POST {base}/chat/completions with
`stream: true` and `stream_options: {"include_usage": true}`; the reply arrives as SSE `data:`
chunks (`choices[0].delta.content`, `finish_reason`), then one chunk with empty `choices` and
the `usage`, then `data: [DONE]`. Any OpenAI-compatible server works (base URL by env)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec

from realms.aichat.providers.base import ChatRequest, Chunk, ProviderError, Usage
from realms.aichat.providers.http import streamed_post
from realms.aichat.providers.sse import sse_events
from realms.aichat.settings import AichatSettings, ProviderEndpoint


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta = msgspec.field(default_factory=_Delta)
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int


class _Chunk(msgspec.Struct):
    model: str | None = None
    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: dict[str, Any] | None = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


class OpenAIProvider:
    name = "openai"

    def __init__(
        self, http: aiohttp.ClientSession, endpoint: ProviderEndpoint, settings: AichatSettings
    ) -> None:
        self._http = http
        self._endpoint = endpoint
        self._settings = settings

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        return {
            "model": request.model,
            "messages": [{"role": t.role, "content": t.content} for t in request.turns],
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        headers = {"Accept": "text/event-stream"}
        if self._endpoint.api_key:
            headers["Authorization"] = f"Bearer {self._endpoint.api_key}"
        s = self._settings
        async with streamed_post(
            self._http,
            self.name,
            f"{self._endpoint.base_url}/chat/completions",
            body=self._body(request),
            headers=headers,
            connect_timeout_s=s.connect_timeout_s,
            idle_timeout_s=s.idle_timeout_s,
            cooldown_s=s.cooldown_s,
        ) as response:
            async for _event, data in sse_events(response.content):
                if data.strip() == "[DONE]":
                    return
                try:
                    chunk = _decode_chunk(data)
                except msgspec.DecodeError as exc:
                    raise ProviderError(f"openai sent a malformed chunk: {exc}") from None
                if chunk.error is not None:
                    raise ProviderError(f"openai failed: {chunk.error.get('message', 'error')}")
                for choice in chunk.choices[:1]:
                    yield Chunk(
                        text=choice.delta.content or "",
                        model=chunk.model,
                        finish_reason=choice.finish_reason,
                    )
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    yield Chunk(model=chunk.model, usage=usage)
            raise ProviderError("openai's stream ended before [DONE]", retry_after_s=s.cooldown_s)
