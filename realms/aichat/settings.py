"""The aichat realm's configuration, read once from the environment: which AI providers are
reachable (base URL, API key), how the conversation's model names map to the provider's model
ids, and the built-in local provider's pace. Nothing here is a secret default: without a
configured provider, replies come from the labelled offline provider (providers/local.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from kernel.config import ConfigError

PROVIDER_NAMES = ("openai", "anthropic")
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}


class ProviderEndpoint(msgspec.Struct, frozen=True):
    """Where one provider's API answers: `base_url` without a trailing slash."""

    name: str
    base_url: str
    api_key: str | None


class AichatSettings(msgspec.Struct, frozen=True, kw_only=True):
    # Providers configured by env; a model whose provider is not here gets the local one.
    endpoints: dict[str, ProviderEndpoint]
    # The conversation's model name -> the model id sent to the provider (default: the same).
    model_map: dict[str, str]
    # Seconds to wait for the provider's first byte, and between two chunks of a stream.
    connect_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    max_completion_tokens: int = 1024
    # Seconds a provider that failed (refused, 5xx, 429) is not asked again; sends get
    # `unavailable` with this as their retry hint meanwhile.
    cooldown_s: float = 5.0
    # The local provider's pause between two words (seconds; 0 in tests).
    local_delay_s: float = 0.02
    # Messages of the conversation's history sent with each prompt.
    history_messages: int = 20
    # Seconds a `cancel` for a reply streaming on another gateway process waits for that
    # process's answer (chat/cancels.py); past it the reply is taken as not streaming.
    cancel_wait_s: float = 2.0

    def endpoint(self, provider: str) -> ProviderEndpoint | None:
        return self.endpoints.get(provider)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
    return value


def _model_map(raw: str) -> dict[str, str]:
    """`gpt-4o=gpt-4o-2024-08-06,claude-3-sonnet=claude-3-5-sonnet-latest` -> a dict."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, target = part.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise ConfigError(f"AICHAT_MODEL_MAP entries are name=provider_model, not {part!r}")
        out[name.strip()] = target.strip()
    return out


def load_aichat_settings(environ: Mapping[str, str] | None = None) -> AichatSettings:
    """AICHAT_<PROVIDER>_BASE_URL / AICHAT_<PROVIDER>_API_KEY configure a provider (either
    one is enough: a local OpenAI-compatible server needs no key); AICHAT_MODEL_MAP renames
    models; AICHAT_LOCAL_DELAY_MS paces the offline provider; AICHAT_CANCEL_WAIT bounds a
    cancel's wait for another gateway process."""
    env = os.environ if environ is None else environ
    endpoints: dict[str, ProviderEndpoint] = {}
    for name in PROVIDER_NAMES:
        base = env.get(f"AICHAT_{name.upper()}_BASE_URL", "").strip()
        key = env.get(f"AICHAT_{name.upper()}_API_KEY", "").strip() or None
        if not base and key is None:
            continue
        base = (base or DEFAULT_BASE_URLS[name]).rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"AICHAT_{name.upper()}_BASE_URL must be an http(s) URL")
        endpoints[name] = ProviderEndpoint(name=name, base_url=base, api_key=key)
    return AichatSettings(
        endpoints=endpoints,
        model_map=_model_map(env.get("AICHAT_MODEL_MAP", "")),
        connect_timeout_s=_float(env, "AICHAT_PROVIDER_CONNECT_TIMEOUT", 10.0),
        idle_timeout_s=_float(env, "AICHAT_PROVIDER_IDLE_TIMEOUT", 60.0),
        cooldown_s=_float(env, "AICHAT_PROVIDER_COOLDOWN", 5.0),
        local_delay_s=_float(env, "AICHAT_LOCAL_DELAY_MS", 20.0) / 1000,
        cancel_wait_s=_float(env, "AICHAT_CANCEL_WAIT", 2.0),
    )
