"""The dev mail catcher: in dev mode (SWITCHBOARD_ENV=dev) the api keeps a copy of each
message it sends a user (sign-in codes by e-mail or SMS), newest first, for the local page
/dev/mail and for the demo web app, which shows a just-requested code. Memory only, per api
process, at most `DevMailbox.KEEP` messages; never created in prod.

The api creates the mailbox (api/routes/dev.py) before the realms set up their senders; a
realm that sends mail keeps a copy when `DEV_MAILBOX` is in the application."""

from __future__ import annotations

import itertools
from collections import deque
from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from msgspec import Struct


class CaughtMail(Struct, frozen=True):
    id: int
    at: datetime
    channel: Literal["email", "sms"]
    to: str
    subject: str
    text: str
    realm: str
    purpose: str | None = None
    # The one-time code the message carries, when it carries one (what the demo app shows).
    code: str | None = None


class DevMailbox:
    KEEP = 200

    def __init__(self) -> None:
        self._mail: deque[CaughtMail] = deque(maxlen=self.KEEP)
        self._ids = itertools.count(1)

    def keep(
        self,
        *,
        channel: Literal["email", "sms"],
        to: str,
        subject: str,
        text: str,
        realm: str,
        purpose: str | None = None,
        code: str | None = None,
    ) -> CaughtMail:
        mail = CaughtMail(
            id=next(self._ids),
            at=datetime.now(UTC),
            channel=channel,
            to=to,
            subject=subject,
            text=text,
            realm=realm,
            purpose=purpose,
            code=code,
        )
        self._mail.appendleft(mail)
        return mail

    def messages(self, to: str | None = None, limit: int | None = None) -> list[CaughtMail]:
        """Newest first; `to` keeps those to this address (e-mail case-insensitively)."""
        wanted = to.strip().lower() if to is not None else None
        found = [m for m in self._mail if wanted is None or m.to.lower() == wanted]
        return found if limit is None else found[:limit]


DEV_MAILBOX = web.AppKey("dev_mailbox", DevMailbox)
