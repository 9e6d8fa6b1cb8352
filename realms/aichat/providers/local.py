"""The built-in offline provider, used for every model whose provider is not configured: it
streams a deterministic reply word by word and reports usage like a real one. Its `model`
says what it is (`local-offline (stands in for gpt-4o)`), so no reply passes for an AI's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from realms.aichat.providers.base import ChatRequest, Chunk, Usage, estimate_tokens

LABEL = "local-offline"
MAX_ECHO = 200


def local_label(model: str) -> str:
    return f"{LABEL} (stands in for {model})"[:100]


def local_reply(request: ChatRequest) -> str:
    prompt = next((t.content for t in reversed(request.turns) if t.role == "user"), "")
    echoed = " ".join(prompt.split())[:MAX_ECHO]
    return (
        f"This is Switchboard's built-in offline assistant; no AI provider is configured for "
        f"{request.model}. You wrote: “{echoed}”. Set AICHAT_OPENAI_BASE_URL or "
        f"AICHAT_ANTHROPIC_API_KEY for real replies."
    )


class LocalProvider:
    name = "local"

    def __init__(self, delay_s: float) -> None:
        self._delay_s = delay_s

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        label = local_label(request.model)
        words = local_reply(request).split(" ")
        for i, word in enumerate(words):
            if self._delay_s:
                await asyncio.sleep(self._delay_s)
            yield Chunk(text=word if i == 0 else " " + word, model=label)
        prompt = sum(estimate_tokens(t.content) for t in request.turns)
        yield Chunk(model=label, finish_reason="stop", usage=Usage(prompt, len(words)))
