"""What the HTTP adapters share: opening a streamed POST with the realm's timeouts, turning
refusals (connection errors, 429, 5xx, other statuses) into ProviderErrors with a retry hint,
and closing the connection when a reply is abandoned, so the provider stops generating."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from realms.aichat.providers.base import ProviderError, retry_after

MAX_ERROR_TEXT = 300


@asynccontextmanager
async def streamed_post(
    http: aiohttp.ClientSession,
    provider: str,
    url: str,
    *,
    body: dict[str, Any],
    headers: dict[str, str],
    connect_timeout_s: float,
    idle_timeout_s: float,
    cooldown_s: float,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The response of a 200 to a streamed POST; anything else is a ProviderError. On exit
    the connection is closed unless the body was read to its end."""
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=connect_timeout_s, sock_read=idle_timeout_s
    )
    try:
        response = await http.post(url, json=body, headers=headers, timeout=timeout)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ProviderError(
            f"{provider} is unreachable ({type(exc).__name__})", retry_after_s=cooldown_s
        ) from exc
    try:
        if response.status != 200:
            text = (await response.text(errors="replace"))[:MAX_ERROR_TEXT]
            hint = retry_after(response.headers.get("Retry-After"))
            raise ProviderError(
                f"{provider} answered {response.status}: {text}",
                status=response.status,
                retry_after_s=hint if hint is not None else cooldown_s,
            )
        yield response
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ProviderError(
            f"{provider} stream broke ({type(exc).__name__})", retry_after_s=cooldown_s
        ) from exc
    finally:
        if response.content.at_eof():
            response.release()
        else:
            response.close()
