"""Fixtures for API tests: the aiohttp app on this test's database, a real SMTP sink."""

from __future__ import annotations

import email
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller

from api.app import create_app
from kernel.config import load_settings
from realms.analyst.otp import OTP_SENDERS, OtpSenders, SmtpOtpSender
from tests.conftest import free_port


class _Inbox:
    """aiosmtpd handler (runs in the controller's thread). The API answers only after the
    server accepted the message, so a test reads the inbox right after the request."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class SmtpSink:
    url: str
    inbox: _Inbox

    def code_for(self, address: str) -> str:
        """The six-digit code of the newest e-mail to `address`."""
        for message in reversed(self.inbox.messages):
            if message["To"] == address:
                match = re.search(r"\b(\d{6})\b", message["Subject"])
                assert match, message["Subject"]
                return match.group(1)
        raise AssertionError(f"no e-mail to {address}")

    def sent_to(self, address: str) -> int:
        return sum(1 for m in self.inbox.messages if m["To"] == address)


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    """A real aiosmtpd server on loopback that keeps every message it receives."""
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpSink(f"smtp://127.0.0.1:{port}", inbox)
    controller.stop()


@dataclass
class SmsCapture:
    """The SMS side has no real server anywhere: codes are captured as the log sender would."""

    codes: dict[str, list[str]] = field(default_factory=dict)

    async def send(self, *, email: str | None, phone: str | None, code: str, purpose: str) -> None:
        self.codes.setdefault(phone or "", []).append(code)


@pytest.fixture
def sms() -> SmsCapture:
    return SmsCapture()


@pytest.fixture
async def api(
    dsn: str, aiohttp_client: Any, secret: str, smtp_sink: SmtpSink, sms: SmsCapture
) -> AsyncIterator[TestClient]:
    settings = load_settings(
        {
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "BCRYPT_ROUNDS": "4",
            "SMTP_URL": smtp_sink.url,
        }
    )
    senders = OtpSenders(email=SmtpOtpSender(settings.smtp_url, settings.mail_from), sms=sms)
    client: TestClient = await aiohttp_client(
        create_app(settings, resources={OTP_SENDERS: senders})
    )
    yield client
    await client.close()  # before this test's database is dropped
