"""Which provider answers a conversation's model: the active `ai_providers` row whose
`supported_models` lists it (prices, request limits), the adapter configured for that provider by
env, or the built-in offline provider when none is; and which providers are cooling down after
a failure (this process only), so sends meanwhile get `unavailable` with a retry hint."""

from __future__ import annotations

import time
from decimal import Decimal

import aiohttp
import asyncpg
import msgspec

from kernel.errors import BadRequest, Unavailable
from realms.aichat.providers.anthropic import AnthropicProvider
from realms.aichat.providers.base import Provider
from realms.aichat.providers.limits import Limits
from realms.aichat.providers.local import LocalProvider
from realms.aichat.providers.openai import OpenAIProvider
from realms.aichat.settings import AichatSettings

# The models a conversation may name (the CHECK conversations_model_valid of sql/2001).
CONVERSATION_MODELS = ("gpt-4", "gpt-4o", "gpt-3.5-turbo", "claude-3-opus", "claude-3-sonnet")

_ROUTE = """
SELECT name, input_token_cost_per_1k, output_token_cost_per_1k, is_available,
       requests_per_minute, requests_per_day
  FROM aichat.ai_providers
 WHERE is_active AND supported_models::jsonb ? $1
 ORDER BY name LIMIT 1
"""
_ALLOWED = """
SELECT DISTINCT m FROM aichat.ai_providers, json_array_elements_text(supported_models) m
 WHERE is_active AND m = ANY ($1::text[]) ORDER BY m
"""


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """How one reply is made: `provider_name` is the ai_providers row (what token_usage
    records), `adapter` who streams it, `model_id` what the provider is asked for."""

    provider_name: str
    adapter: Provider
    model_id: str
    input_cost_per_1k: Decimal
    output_cost_per_1k: Decimal
    local: bool
    # The provider's request limits (ai_providers); the offline provider has none.
    limits: Limits = Limits(None, None)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        if self.local:  # the offline provider spends nothing
            return Decimal(0)
        cost = (
            prompt_tokens * self.input_cost_per_1k + completion_tokens * self.output_cost_per_1k
        ) / 1000
        return cost.quantize(Decimal("0.000001"))


async def allowed_models(conn: asyncpg.Connection | asyncpg.Pool) -> list[str]:
    """The models of active providers that a conversation may use."""
    return [r["m"] for r in await conn.fetch(_ALLOWED, list(CONVERSATION_MODELS))]


async def refuse_unknown_model(conn: asyncpg.Connection | asyncpg.Pool, model: str) -> None:
    allowed = await allowed_models(conn)
    if model not in allowed:
        raise BadRequest(
            f"model {model!r} is not offered here; allowed: {', '.join(allowed) or 'none'}",
            details={"allowed": allowed},
        )


class ProviderRouter:
    """Built once per process; `close()` closes its HTTP session."""

    def __init__(self, settings: AichatSettings) -> None:
        self._settings = settings
        self._http: aiohttp.ClientSession | None = None
        self._local = LocalProvider(settings.local_delay_s)
        self._cooling: dict[str, float] = {}  # provider -> monotonic time it may be asked again

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True)
            )
        return self._http

    def adapter(self, provider_name: str) -> Provider:
        endpoint = self._settings.endpoint(provider_name)
        if endpoint is None:
            return self._local
        if provider_name == "anthropic":
            return AnthropicProvider(self._session(), endpoint, self._settings)
        return OpenAIProvider(self._session(), endpoint, self._settings)

    async def route(self, conn: asyncpg.Connection | asyncpg.Pool, model: str) -> Route:
        """The route of `model`; BadRequest naming the allowed models when no active provider
        offers it; Unavailable (with a retry hint) when its provider is marked unavailable or
        is cooling down after a failure."""
        row = await conn.fetchrow(_ROUTE, model)
        if row is None:
            await refuse_unknown_model(conn, model)
            raise BadRequest(f"model {model!r} has no active provider")
        name = row["name"]
        if not row["is_available"]:
            raise Unavailable(
                f"{name} is marked unavailable; retry later",
                details={"retry_after_ms": int(self._settings.cooldown_s * 1000)},
            )
        wait = self._cooling.get(name, 0.0) - time.monotonic()
        if wait > 0:
            raise Unavailable(
                f"{name} failed moments ago; retry in {wait:.1f} s",
                details={"retry_after_ms": max(1, int(wait * 1000))},
            )
        adapter = self.adapter(name)
        return Route(
            provider_name=name,
            adapter=adapter,
            model_id=self._settings.model_map.get(model, model),
            input_cost_per_1k=row["input_token_cost_per_1k"],
            output_cost_per_1k=row["output_token_cost_per_1k"],
            local=isinstance(adapter, LocalProvider),
            limits=Limits(row["requests_per_minute"], row["requests_per_day"]),
        )

    def cool_down(self, provider_name: str, seconds: float | None) -> float:
        """Do not ask `provider_name` again for `seconds` (default: the configured cooldown);
        returns the seconds used."""
        wait = self._settings.cooldown_s if seconds is None else seconds
        self._cooling[provider_name] = time.monotonic() + wait
        return wait

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
