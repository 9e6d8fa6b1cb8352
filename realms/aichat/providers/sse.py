"""Server-sent events (text/event-stream) read from an aiohttp response body: each event as
(event name, data), per the WHATWG rules the providers follow (`data:` lines joined by
newlines, a blank line ends an event, `:` lines are comments)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp


async def sse_events(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, str]]:
    event, data = "", list[str]()
    async for raw in content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    # An event without its closing blank line was cut off: it is dropped, as the spec says.
