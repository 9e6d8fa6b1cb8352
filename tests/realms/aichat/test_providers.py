"""The provider adapters against the stand-in server over real HTTP: OpenAI Chat Completions
streaming (deltas, include_usage, [DONE]), Anthropic Messages streaming, refusals with their
retry hints, a cut stream, and the labelled offline provider."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from realms.aichat.providers.anthropic import AnthropicProvider
from realms.aichat.providers.base import ChatRequest, Chunk, ProviderError, Turn, Usage
from realms.aichat.providers.local import LocalProvider
from realms.aichat.providers.openai import OpenAIProvider
from realms.aichat.settings import load_aichat_settings
from tests.realms.aichat.provider_standin import MODEL, WORDS, ProviderStandIn

REQUEST = ChatRequest(
    model="gpt-4o", turns=[Turn("system", "Be brief."), Turn("user", "Hi there")], max_tokens=50
)


@pytest.fixture
async def standin() -> AsyncIterator[ProviderStandIn]:
    server = ProviderStandIn()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _openai(standin: ProviderStandIn, http: aiohttp.ClientSession) -> OpenAIProvider:
    settings = load_aichat_settings(
        {"AICHAT_OPENAI_BASE_URL": standin.base_url, "AICHAT_OPENAI_API_KEY": "sk-test"}
    )
    endpoint = settings.endpoint("openai")
    assert endpoint is not None
    return OpenAIProvider(http, endpoint, settings)


async def _all(provider: OpenAIProvider | AnthropicProvider | LocalProvider) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(REQUEST)]


async def test_openai_stream_yields_each_delta_then_the_usage(
    standin: ProviderStandIn, http: aiohttp.ClientSession
) -> None:
    chunks = await _all(_openai(standin, http))
    assert "".join(c.text for c in chunks) == "".join(WORDS)
    assert chunks[-1].usage == Usage(17, 6)
    assert {c.model for c in chunks} == {MODEL}
    assert any(c.finish_reason == "stop" for c in chunks)
    sent = standin.requests[0]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize(("mode", "retry"), [("429", 7.0), ("500", 5.0)])
async def test_openai_refusal_is_a_provider_error_with_a_retry_hint(
    standin: ProviderStandIn, http: aiohttp.ClientSession, mode: str, retry: float
) -> None:
    standin.script.append(mode)
    with pytest.raises(ProviderError) as info:
        await _all(_openai(standin, http))
    assert info.value.status == int(mode)
    assert info.value.retry_after_s == retry


async def test_openai_stream_cut_before_done_is_a_provider_error(
    standin: ProviderStandIn, http: aiohttp.ClientSession
) -> None:
    standin.script.append("cut")
    got: list[str] = []
    with pytest.raises(ProviderError):
        async for chunk in _openai(standin, http).stream(REQUEST):
            got.append(chunk.text)
    assert "".join(got) == "".join(WORDS[:2])


async def test_an_unreachable_provider_is_a_provider_error(http: aiohttp.ClientSession) -> None:
    closed = ProviderStandIn()  # never started: nothing listens on its port
    with pytest.raises(ProviderError, match="unreachable"):
        await _all(_openai(closed, http))


async def test_anthropic_stream_maps_events_to_deltas_and_usage(
    standin: ProviderStandIn, http: aiohttp.ClientSession
) -> None:
    settings = load_aichat_settings({"AICHAT_ANTHROPIC_BASE_URL": standin.root_url})
    endpoint = settings.endpoint("anthropic")
    assert endpoint is not None
    chunks = await _all(AnthropicProvider(http, endpoint, settings))
    assert "".join(c.text for c in chunks) == "".join(WORDS)
    assert chunks[-1].usage == Usage(17, 6)
    assert chunks[-1].finish_reason == "stop"
    sent = standin.requests[0]
    assert sent["system"] == "Be brief."
    assert sent["messages"] == [{"role": "user", "content": "Hi there"}]


async def test_the_offline_provider_is_deterministic_and_labelled() -> None:
    first, second = await _all(LocalProvider(0)), await _all(LocalProvider(0))
    assert [c.text for c in first] == [c.text for c in second]
    assert all(c.model == "local-offline (stands in for gpt-4o)" for c in first)
    assert "Hi there" in "".join(c.text for c in first)
    assert first[-1].usage is not None and first[-1].usage.completion_tokens > 0
