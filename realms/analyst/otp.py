"""One-time passwords: six digits, valid 10 minutes, at most 3 attempts (seed 000, table 2),
sent by e-mail (SMTP) or through an SMS sender whose default writes to the log.

In dev mode (SWITCHBOARD_ENV=dev) a copy of each code's message is also kept in the dev
mailbox (kernel/devmail.py, shown at /dev/mail). In prod the api refuses to start with a
sender that would write codes to the log: SMTP_URL is required and SMS_SENDER must be `off`."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlsplit

import aiosmtplib
import asyncpg
from aiohttp import web

from kernel.config import ConfigError
from kernel.devmail import DEV_MAILBOX, DevMailbox
from kernel.errors import BadRequest, RateLimited
from kernel.logs import EventLog
from kernel.web.keys import SETTINGS
from realms.analyst.credentials import new_otp

log = EventLog("realms.analyst.otp")
OTP_TTL_S = 600
PURPOSES = ("signup", "login", "reset_password", "verify_phone", "verify_email")


class OtpSender(Protocol):
    async def send(
        self, *, email: str | None, phone: str | None, code: str, purpose: str
    ) -> None: ...


class LogSmsSender:
    """The default SMS 'provider': writes the code to the log (swap in a real gateway)."""

    async def send(self, *, email: str | None, phone: str | None, code: str, purpose: str) -> None:
        log.info("sms_otp", phone=phone, purpose=purpose, code=code)


class NoSmsSender:
    """SMS_SENDER=off: no SMS provider, so codes by SMS are refused (nothing is logged)."""

    async def send(self, *, email: str | None, phone: str | None, code: str, purpose: str) -> None:
        raise BadRequest("codes by SMS are not available here; use `email`")


def otp_email(mail_from: str, to: str, code: str, purpose: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = f"Your Switchboard code: {code}"
    message.set_content(
        f"Your code is {code}. It expires in 10 minutes.\n"
        f"If you did not ask for it ({purpose.replace('_', ' ')}), "
        "ignore this e-mail."
    )
    return message


class SmtpOtpSender:
    """E-mails the code through SMTP_URL (smtp://host:port); without one, logs it."""

    def __init__(self, smtp_url: str | None, mail_from: str) -> None:
        self.smtp_url = smtp_url
        self.mail_from = mail_from

    async def send(self, *, email: str | None, phone: str | None, code: str, purpose: str) -> None:
        if not self.smtp_url or email is None:
            log.info("email_otp_logged", email=email, purpose=purpose, code=code)
            return
        url = urlsplit(self.smtp_url)
        message = otp_email(self.mail_from, email, code, purpose)
        await aiosmtplib.send(
            message, hostname=url.hostname or "127.0.0.1", port=url.port or 25, timeout=10
        )


class OtpSenders:
    def __init__(self, email: OtpSender, sms: OtpSender) -> None:
        self.email = email
        self.sms = sms

    async def send(self, *, email: str | None, phone: str | None, code: str, purpose: str) -> None:
        sender = self.sms if phone and not email else self.email
        await sender.send(email=email, phone=phone, code=code, purpose=purpose)


class KeptInDevMailbox:
    """Dev mode: sends the code, then keeps a copy of its message in the dev mailbox."""

    def __init__(self, sender: OtpSender, mailbox: DevMailbox, mail_from: str) -> None:
        self.sender = sender
        self.mailbox = mailbox
        self.mail_from = mail_from

    async def send(self, *, email: str | None, phone: str | None, code: str, purpose: str) -> None:
        await self.sender.send(email=email, phone=phone, code=code, purpose=purpose)
        to = email or phone or ""
        message = otp_email(self.mail_from, to, code, purpose)
        self.mailbox.keep(
            channel="email" if email else "sms",
            to=to,
            subject=str(message["Subject"]),
            text=message.get_content(),
            realm="analyst",
            purpose=purpose,
            code=code,
        )


OTP_SENDERS = web.AppKey("otp_senders", OtpSenders)


def install_default_senders(app: web.Application) -> None:
    """OTP codes go by SMTP (SMTP_URL) and to the SMS sender, which by default writes them to
    the log; a caller that set OTP_SENDERS (a test, an embedding) keeps its own. In prod,
    a default sender that would log codes is a ConfigError (the api does not start)."""
    if OTP_SENDERS in app:
        return
    settings = app[SETTINGS]
    if settings.env == "prod" and not settings.smtp_url:
        raise ConfigError(
            "SWITCHBOARD_ENV=prod needs SMTP_URL: without it sign-in codes would be written"
            " to the log instead of e-mailed"
        )
    if settings.env == "prod" and settings.sms_sender == "log":
        raise ConfigError(
            "SWITCHBOARD_ENV=prod refuses SMS_SENDER=log, which writes sign-in codes to the"
            " log: set SMS_SENDER=off (codes by e-mail only) or install a real SMS sender"
            " (OTP_SENDERS)"
        )
    email: OtpSender = SmtpOtpSender(settings.smtp_url, settings.mail_from)
    sms: OtpSender = LogSmsSender() if settings.sms_sender == "log" else NoSmsSender()
    mailbox = app.get(DEV_MAILBOX)
    if mailbox is not None:
        email = KeptInDevMailbox(email, mailbox, settings.mail_from)
        sms = KeptInDevMailbox(sms, mailbox, settings.mail_from)
    app[OTP_SENDERS] = OtpSenders(email=email, sms=sms)


async def issue(
    conn: asyncpg.Connection,
    *,
    purpose: str,
    email: str | None,
    phone: str | None,
    user_id: uuid.UUID | None,
) -> str:
    """Store a fresh code (earlier open codes for the same target and purpose stop working)."""
    if purpose not in PURPOSES:
        raise BadRequest(f"purpose must be one of {', '.join(PURPOSES)}")
    code = new_otp()
    await conn.execute(
        "UPDATE analyst.otp_verifications SET expires_at = least(expires_at, now())"
        " WHERE purpose = $1 AND NOT verified AND expires_at > now()"
        " AND (email = $2 OR phone = $3)",
        purpose,
        email,
        phone,
    )
    await conn.execute(
        "INSERT INTO analyst.otp_verifications (user_id, email, phone, otp_code, purpose,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
        user_id,
        email,
        phone,
        code,
        purpose,
        OTP_TTL_S,
    )
    return code


async def verify(
    conn: asyncpg.Connection, *, purpose: str, email: str | None, phone: str | None, code: str
) -> bool:
    """Spend the newest open code for this target and purpose. Each wrong guess uses one of
    its attempts; after max_attempts it is dead. Call inside a transaction."""
    row = await conn.fetchrow(
        "SELECT id, otp_code, attempts, max_attempts FROM analyst.otp_verifications"
        " WHERE purpose = $1 AND NOT verified AND expires_at > now()"
        " AND (($2::text IS NOT NULL AND email = $2) OR ($3::text IS NOT NULL AND phone = $3))"
        " ORDER BY created_at DESC LIMIT 1 FOR UPDATE",
        purpose,
        email,
        phone,
    )
    if row is None:
        return False
    if row["attempts"] >= row["max_attempts"]:
        raise RateLimited("this code has no attempts left; request a new one", retry_after_ms=1000)
    if row["otp_code"] != code:
        await conn.execute(
            "UPDATE analyst.otp_verifications SET attempts = attempts + 1 WHERE id = $1", row["id"]
        )
        return False
    await conn.execute(
        "UPDATE analyst.otp_verifications SET verified = true,"
        " verified_at = now(), attempts = attempts + 1 WHERE id = $1",
        row["id"],
    )
    return True
