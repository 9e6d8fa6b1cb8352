"""Fixtures of the aichat realm's behaviour tests: the api app with a real SMTP sink, the
provider stand-in, a gateway process serving the realm against it, and signed-in users."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from kernel.config import load_settings
from kernel.db import connect
from kernel.passwords import hash_password
from kernel.realms import enabled_realms
from kernel.tokens import sign_access_token
from tests.api.conftest import SmtpSink
from tests.conftest import free_port
from tests.gateway.harness import GatewayProcess, WsClient
from tests.realms.aichat.provider_standin import ProviderStandIn


def token_in_mail(sink: SmtpSink, address: str) -> str:
    for message in reversed(sink.inbox.messages):
        if message["To"] == address:
            body = message.get_payload(decode=True)
            match = re.search(rb"token: ([A-Za-z0-9_-]+)", body)
            assert match, body
            return match.group(1).decode()
    raise AssertionError(f"no e-mail to {address}")


@pytest.fixture
async def aichat_api(
    dsn: str, aiohttp_client: Any, secret: str, smtp_sink: SmtpSink
) -> AsyncIterator[TestClient]:
    settings = load_settings(
        {
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "BCRYPT_ROUNDS": "4",
            "SMTP_URL": smtp_sink.url,
            "SWITCHBOARD_REALMS": "aichat",
        }
    )
    app = create_app(settings, realms=enabled_realms({"SWITCHBOARD_REALMS": "aichat"}))
    client: TestClient = await aiohttp_client(app)
    yield client
    await client.close()


@pytest.fixture
async def standin() -> AsyncIterator[ProviderStandIn]:
    server = ProviderStandIn()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def aichat_gateway(
    dsn: str, secret: str, standin: ProviderStandIn
) -> AsyncIterator[GatewayProcess]:
    process = GatewayProcess(
        {
            **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "SWITCHBOARD_REALMS": "aichat",
            "GATEWAY_PORT": str(free_port()),
            "AICHAT_OPENAI_BASE_URL": standin.base_url,
            "AICHAT_PROVIDER_COOLDOWN": "30",
        }
    )
    await process.start()
    yield process
    await process.stop()
    print("".join(process.log))  # shown on failure


async def make_user(dsn: str, **fields: Any) -> uuid.UUID:
    conn = await connect(dsn)
    try:
        user_id = await conn.fetchval(
            "INSERT INTO aichat.users (email, password, name, plan_tier, email_verified,"
            " email_verified_at) VALUES ($1, $2, 'Ada', $3, true, LOCALTIMESTAMP) RETURNING id",
            f"ada-{uuid.uuid4().hex[:8]}@example.com",
            await hash_password("correct horse", 4),
            fields.get("plan_tier", "PLUS"),
        )
        assert isinstance(user_id, uuid.UUID)
        return user_id
    finally:
        await conn.close()


async def make_conversation(dsn: str, user_id: uuid.UUID, model: str = "gpt-4o") -> uuid.UUID:
    conn = await connect(dsn)
    try:
        conv = await conn.fetchval(
            "INSERT INTO aichat.conversations (user_id, title, model, system_prompt)"
            " VALUES ($1, 'Trip', $2, 'Be brief.') RETURNING id",
            user_id,
            model,
        )
        assert isinstance(conv, uuid.UUID)
        return conv
    finally:
        await conn.close()


async def socket(gw: GatewayProcess, secret: str, user_id: uuid.UUID) -> WsClient:
    client = await WsClient.open(gw.url, sign_access_token(secret, str(user_id), "aichat", 600))
    await client.expect("welcome")
    return client
