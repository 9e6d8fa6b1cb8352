"""A local OpenAI-compatible (and Anthropic-compatible) streaming server for the aichat tests:
POST /v1/chat/completions and /v1/messages answer with SSE as the real APIs do. Each request
takes the next scripted behaviour (`ok`, `cut`, `stall`, `429`, `500`), default `ok`; every
request is recorded, and a stalled one sets `disconnected` once its client hangs up."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from aiohttp import web

from tests.conftest import free_port

WORDS = ["Hello", " from", " the", " stand", "-in", "."]
USAGE = {"prompt_tokens": 17, "completion_tokens": 6, "total_tokens": 23}
MODEL = "gpt-4o-2024-08-06"


class ProviderStandIn:
    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[dict[str, Any]] = []
        self.script: deque[str] = deque()
        self.disconnected = asyncio.Event()
        self.stalled = asyncio.Event()  # a stalled reply has sent its first chunk
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:  # Anthropic's base URL: the adapter adds /v1/messages
        return f"http://127.0.0.1:{self.port}"

    @property
    def calls(self) -> int:
        return len(self.requests)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _begin(self, request: web.Request) -> tuple[str, web.StreamResponse | None]:
        self.requests.append(await request.json())
        mode = self.script.popleft() if self.script else "ok"
        if mode in ("429", "500"):
            return mode, None
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        return mode, response

    @staticmethod
    def _refusal(mode: str) -> web.Response:
        status = int(mode)
        body = {"error": {"message": "slow down" if status == 429 else "boom", "type": mode}}
        headers = {"Retry-After": "7"} if status == 429 else {}
        return web.json_response(body, status=status, headers=headers)

    async def _stall(self, request: web.Request, response: web.StreamResponse) -> None:
        self.stalled.set()
        try:
            while True:  # keep-alive comments until the client goes away
                await response.write(b": waiting\n\n")
                await asyncio.sleep(0.05)
        except (ConnectionResetError, ConnectionError, RuntimeError):
            self.disconnected.set()

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        mode, response = await self._begin(request)
        if response is None:
            return self._refusal(mode)

        async def send(obj: Any) -> None:
            await response.write(f"data: {json.dumps(obj)}\n\n".encode())

        words = WORDS[:2] if mode in ("cut", "stall") else WORDS
        for word in words:
            await send(
                {
                    "object": "chat.completion.chunk",
                    "model": MODEL,
                    "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                }
            )
        if mode == "cut":
            assert request.transport is not None
            request.transport.close()  # mid-stream, no [DONE]
            return response
        if mode == "stall":
            await self._stall(request, response)
            return response
        await send(
            {"model": MODEL, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        )
        await send({"model": MODEL, "choices": [], "usage": USAGE})
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        mode, response = await self._begin(request)
        if response is None:
            return self._refusal(mode)

        async def send(name: str, obj: Any) -> None:
            await response.write(f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode())

        await send(
            "message_start",
            {
                "type": "message_start",
                "message": {"model": "claude-3-sonnet-20240229", "usage": {"input_tokens": 17}},
            },
        )
        await send("ping", {"type": "ping"})
        for word in WORDS:
            await send(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": word},
                },
            )
        await send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 6},
            },
        )
        await send("message_stop", {"type": "message_stop"})
        return response
