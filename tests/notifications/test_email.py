"""E-mail through a real aiosmtpd server: the message (text + HTML, template per type,
List-Unsubscribe, tracking links), signed-link handling, and SMTP's retry and failure paths."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from kernel.config import Settings
from kernel.errors import BadRequest, Unauthorized
from kernel.notify import notify
from kernel.tracking import (
    CLICK_PATH,
    OPEN_PATH,
    UNSUBSCRIBE_PATH,
    LinkClaim,
    record_click,
    record_open,
    sign_link,
    unsubscribe,
    verify_tracking_token,
)
from tests.conftest import free_port
from tests.notifications.conftest import PUBLIC_BASE, WorkerFactory, drain, job_rows, recipient
from tests.notifications.fakes import FakeClock, SmtpSink
from workers.delivery.email import SmtpTarget


async def _mail(
    db: asyncpg.Connection, users: list[uuid.UUID], key: str = "m", **kw: object
) -> None:
    fields: dict[str, object] = {
        "notification_type": "new_post",
        "title": "Breakout <now>",
        "message": "NIFTY above 22,000 & rising",
        "action_url": "https://app.example/p/1",
        "send_push": False,
        **kw,
    }
    await notify(db, event_key=key, recipients=users, **fields)  # type: ignore[arg-type]


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def _token(url: str, path: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_BASE and parts.path == path
    return parse_qs(parts.query)["t"][0]


def _links(text: str, path: str) -> list[str]:
    return [w.strip("<>\"'") for w in text.split() if path in w]


async def test_email_has_text_html_unsubscribe_and_tracking(
    db: asyncpg.Connection,
    smtp: SmtpSink,
    make_worker: WorkerFactory,
    settings: Settings,
) -> None:
    user = await recipient(db)
    address = await db.fetchval("SELECT email FROM analyst.users WHERE id = $1", user)
    await _mail(db, [user])
    assert await drain(make_worker()) == 1
    [message] = smtp.messages
    nid = await db.fetchval("SELECT id FROM analyst.notifications")
    assert message["To"] == address
    assert message["From"] == "Switchboard <notify@switchboard.example>"
    assert message["Subject"] == "New post: Breakout <now>"  # the new_post template
    assert message["Message-ID"] == f"<{nid}.email@switchboard.example>"
    assert message.get_content_type() == "multipart/alternative"
    text, html = _parts(message)
    assert "Breakout <now>" in text and "NIFTY above 22,000 & rising" in text
    assert "Breakout &lt;now&gt;" in html and "&amp; rising" in html  # escaped in HTML

    # RFC 8058 one-click unsubscribe
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_url = message["List-Unsubscribe"].strip("<>")
    claim = verify_tracking_token(settings.secret, _token(unsubscribe_url, UNSUBSCRIBE_PATH))
    assert (claim.k, claim.u, claim.c) == ("unsubscribe", str(user), "new_post")
    assert unsubscribe_url in text

    # the action link is a signed click redirect, in both parts
    [click_url] = _links(text, CLICK_PATH)
    assert click_url.replace("&", "&amp;") in html
    claim = verify_tracking_token(settings.secret, _token(click_url, CLICK_PATH), "click")
    assert (claim.n, claim.url) == (str(nid), "https://app.example/p/1")
    assert "https://app.example/p/1" not in text  # never the bare target

    # the open pixel, in HTML only
    [pixel] = [w.split('"')[1] for w in html.split() if w.startswith('src="')]
    assert verify_tracking_token(settings.secret, _token(pixel, OPEN_PATH), "open").n == str(nid)

    row = await db.fetchrow("SELECT * FROM analyst.notifications")
    [job] = await job_rows(db)
    assert row["email_sent"] is True and row["email_sent_at"] == job["sent_at"]
    assert job["status"] == "sent" and "queued" in job["provider_message_id"]

    # what the API's routes do with those links
    assert await record_open(db, settings.secret, _token(pixel, OPEN_PATH)) == 1
    assert await record_click(db, settings.secret, _token(click_url, CLICK_PATH)) == (
        "https://app.example/p/1"
    )
    row = await db.fetchrow("SELECT * FROM analyst.notifications")
    assert row["email_opened"] and row["email_opened_at"] is not None and row["email_clicked"]
    assert await unsubscribe(db, settings.secret, _token(unsubscribe_url, UNSUBSCRIBE_PATH)) == (
        user,
        "new_post",
    )
    await _mail(db, [user], key="after-unsubscribe")
    assert len(await job_rows(db, "email")) == 1  # no new e-mail job for new_post


async def test_each_notification_type_has_its_template(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory
) -> None:
    user = await recipient(db)
    await _mail(db, [user], key="u", notification_type="urgent_post", title="Exit now")
    await _mail(db, [user], key="p", notification_type="payment_success", title="Rs 999")
    await _mail(db, [user], key="o", notification_type="something_new", title="Plain")
    await drain(make_worker())
    subjects = sorted(m["Subject"] for m in smtp.messages)
    assert subjects == ["Payment received: Rs 999", "Plain", "Urgent: Exit now"]
    urgent = next(m for m in smtp.messages if m["Subject"].startswith("Urgent"))
    assert "urgent update" in _parts(urgent)[0]


async def test_smtp_4xx_at_rcpt_is_retried_then_delivered(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    user = await recipient(db)
    smtp.rcpt_replies.append("450 4.2.1 Mailbox busy, try later")
    await _mail(db, [user])
    worker = make_worker()
    await worker.run_once()
    [job] = await job_rows(db)
    assert (
        job["status"] == "pending" and job["last_error"] == "SMTP 450 4.2.1 Mailbox busy, try later"
    )
    clock.advance(3600)
    await worker.run_once()
    [job] = await job_rows(db)
    assert job["status"] == "sent" and job["attempts"] == 2 and len(smtp.messages) == 1


async def test_smtp_4xx_at_data_is_retried(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    user = await recipient(db)
    smtp.data_replies.append("451 4.3.0 Temporary local problem")
    await _mail(db, [user])
    worker = make_worker()
    await worker.run_once()
    assert (await job_rows(db))[0]["status"] == "pending"
    clock.advance(3600)
    await worker.run_once()
    assert (await job_rows(db))[0]["status"] == "sent"


async def test_smtp_5xx_is_a_permanent_failure_with_the_reason(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory
) -> None:
    user = await recipient(db)
    smtp.rcpt_replies.append("550 5.1.1 No such user here")
    await _mail(db, [user], send_in_app=False)
    await drain(make_worker())
    [job] = await job_rows(db)
    assert job["status"] == "failed" and job["attempts"] == 1
    assert job["last_error"] == "SMTP 550 5.1.1 No such user here"
    row = await db.fetchrow("SELECT status, email_sent FROM analyst.notifications")
    assert (row["status"], row["email_sent"]) == ("failed", False)


async def test_smtp_5xx_at_data_fails(
    db: asyncpg.Connection, smtp: SmtpSink, make_worker: WorkerFactory
) -> None:
    user = await recipient(db)
    smtp.data_replies.append("554 5.7.1 Message rejected as spam")
    await _mail(db, [user])
    await drain(make_worker())
    [job] = await job_rows(db)
    assert job["status"] == "failed" and "554" in job["last_error"]
    # in-app already delivered it: the notification itself is not failed
    assert await db.fetchval("SELECT status FROM analyst.notifications") == "sent"


async def test_an_unreachable_smtp_server_is_retried(
    db: asyncpg.Connection, make_worker: WorkerFactory, settings: Settings
) -> None:
    user = await recipient(db)
    await _mail(db, [user])
    worker = make_worker()
    worker.senders["email"].transport.target = SmtpTarget(  # type: ignore[attr-defined]
        "127.0.0.1", free_port()
    )
    await worker.run_once()
    [job] = await job_rows(db)
    assert job["status"] == "pending" and job["last_error"].startswith("SMTP connection")


def test_smtp_url_forms() -> None:
    assert SmtpTarget.from_url("smtp://mail:2525") == SmtpTarget("mail", 2525)
    assert SmtpTarget.from_url("smtps://u%40x:p%3Aw@mail") == SmtpTarget(
        "mail", 465, "u@x", "p:w", use_tls=True, start_tls=False
    )
    assert SmtpTarget.from_url("smtp+starttls://mail").start_tls is True
    with pytest.raises(ValueError):
        SmtpTarget.from_url("http://mail")


def test_link_tokens_cannot_be_forged_or_repurposed(secret: str) -> None:
    user = str(uuid.uuid4())
    token = sign_link(secret, LinkClaim(k="click", u=user, n=user, url="https://a.example/x"))
    assert verify_tracking_token(secret, token).url == "https://a.example/x"
    _, _, sig = token.partition(".")
    evil = sign_link("another-secret-" + "y" * 40, LinkClaim(k="click", u=user, url="https://evil"))
    with pytest.raises(Unauthorized):
        verify_tracking_token(secret, evil.partition(".")[0] + "." + sig)
    with pytest.raises(Unauthorized):
        verify_tracking_token(secret, evil)
    with pytest.raises(BadRequest):
        verify_tracking_token(secret, token, "unsubscribe")
    with pytest.raises(BadRequest):
        verify_tracking_token(secret, "not-a-token")
    with pytest.raises(ValueError):
        sign_link(secret, LinkClaim(k="click", u=user, url="javascript:alert(1)"))
