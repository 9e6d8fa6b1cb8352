"""Notification delivery: the outbox worker and its channels (push over FCM, e-mail over SMTP,
SMS over a Twilio-shaped Messages API, the daily digest). `run_delivery` is the entry the worker
process calls. In-app delivery is the gateway's (gateway/notifications.py).
docs/notifications.md."""

from __future__ import annotations

import asyncio

import asyncpg

from kernel.config import Settings
from kernel.logs import EventLog
from workers.delivery.digest import DigestSender
from workers.delivery.email import EmailLinks, EmailSender, SmtpTarget, SmtpTransport
from workers.delivery.outbox import ChannelSender, Clock, Outbox, RetryPolicy, system_clock
from workers.delivery.push import PushSender
from workers.delivery.sms import SmsSender
from workers.delivery.worker import DeliveryWorker, worker_id

__all__ = ["build_senders", "close_senders", "run_delivery"]

log = EventLog("workers.delivery")


def build_senders(pool: asyncpg.Pool, settings: Settings) -> dict[str, ChannelSender]:
    """The channels `settings` configure: e-mail and digest with SMTP_URL, push with
    FCM_CREDENTIALS_FILE, SMS with SMS_ACCOUNT_SID, SMS_AUTH_TOKEN and SMS_FROM. Jobs of a
    channel not configured are skipped with that reason."""
    senders: dict[str, ChannelSender] = {}
    if settings.smtp_url:
        transport = SmtpTransport(
            SmtpTarget.from_url(settings.smtp_url), connections=settings.smtp_connections
        )
        links = EmailLinks(settings.public_base_url, settings.secret)
        senders["email"] = EmailSender(transport, links, settings.mail_from)
        senders["digest"] = DigestSender(pool, transport, links, settings.mail_from)
    if settings.fcm_credentials_file:
        senders["push"] = PushSender(
            pool,
            credentials_file=settings.fcm_credentials_file,
            project_id=settings.fcm_project_id,
            base_url=settings.fcm_base_url,
            concurrency=settings.fcm_concurrency,
        )
    if settings.sms_account_sid and settings.sms_auth_token and settings.sms_from:
        senders["sms"] = SmsSender(
            pool,
            base_url=settings.sms_base_url,
            account_sid=settings.sms_account_sid,
            auth_token=settings.sms_auth_token,
            sender=settings.sms_from,
            concurrency=settings.sms_concurrency,
            reveal_numbers=settings.env == "dev",
        )
    return senders


async def close_senders(senders: dict[str, ChannelSender]) -> None:
    """Stop push threads, close SMS connections and QUIT idle SMTP connections."""
    for sender in senders.values():
        if isinstance(sender, PushSender):
            sender.close()
        elif isinstance(sender, SmsSender):
            await sender.aclose()
    transports = {
        id(t): t
        for s in senders.values()
        if isinstance(t := getattr(s, "transport", None), SmtpTransport)
    }
    for transport in transports.values():
        await transport.aclose()


async def run_delivery(
    pool: asyncpg.Pool,
    settings: Settings,
    stop: asyncio.Event,
    *,
    clock: Clock = system_clock,
    policy: RetryPolicy | None = None,
) -> None:
    """Deliver push, e-mail, SMS and digest jobs until `stop` is set; returns once the jobs in
    hand are finished. Any number of workers may run at once, in any number of processes."""
    senders = build_senders(pool, settings)
    me = worker_id()
    worker = DeliveryWorker(Outbox(pool, me, policy=policy), senders, clock=clock)
    log.info("delivery_started", worker=me, channels=",".join(sorted(senders)) or "none")
    try:
        await worker.run(stop, settings.database_url)
    finally:
        await close_senders(senders)
        log.info("delivery_stopped", worker=me)
