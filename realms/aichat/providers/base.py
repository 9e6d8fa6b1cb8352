"""The provider interface: a chat request in, a stream of chunks out (text deltas, then the
usage), or a ProviderError saying whether anything was streamed before it failed."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Literal, Protocol

import msgspec

Role = Literal["system", "user", "assistant"]


class Turn(msgspec.Struct, frozen=True):
    role: Role
    content: str


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    model: str  # the provider's model id
    turns: list[Turn]
    max_tokens: int = 1024


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Chunk(msgspec.Struct, frozen=True, kw_only=True):
    """One piece of a reply: text (may be empty), the model the provider reports, the usage
    (the last chunk, when the provider sends it), why it finished (`stop`, `length`)."""

    text: str = ""
    model: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None


class ProviderError(Exception):
    """The provider refused or failed. `retry_after_s` is its hint (Retry-After) or ours;
    `status` the HTTP status when there was one."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s


class Provider(Protocol):
    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """The reply as it is generated. Closing the iterator (or cancelling its consumer)
        stops the provider's request. Raises ProviderError."""
        ...


def estimate_tokens(text: str) -> int:
    """About four bytes of UTF-8 per token: the estimate used where no provider counted
    (a size limit before any call, a reply cut before its usage arrived)."""
    return math.ceil(len(text.encode()) / 4)


def retry_after(header: str | None) -> float | None:
    """Seconds of a Retry-After header given in seconds (the form AI providers use)."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None
