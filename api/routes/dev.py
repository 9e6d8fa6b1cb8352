"""The dev mail catcher: in dev mode (SWITCHBOARD_ENV=dev, the default) an api listening on a
loopback address keeps a copy of every message it sends a user (sign-in codes by e-mail and
SMS; kernel/devmail.py) and shows them at GET /dev/mail, newest first; GET
/dev/mail/messages answers the same as JSON (the demo app shows a code it just requested).

Never in prod, and not when API_HOST is reachable from other machines: then these routes are
not mounted at all (and are not in /openapi.json)."""

from __future__ import annotations

import html
import ipaddress
from typing import Annotated

from aiohttp import web
from msgspec import Meta, Struct

from api.routes.pages import file_responses
from kernel.config import Settings
from kernel.devmail import DEV_MAILBOX, CaughtMail, DevMailbox
from kernel.web.endpoints import endpoint

routes = web.RouteTableDef()

_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def enabled(settings: Settings) -> bool:
    """Dev mode, and an api only this machine can reach."""
    return settings.env == "dev" and _loopback(settings.api_host)


def install(app: web.Application) -> None:
    """Create the mailbox; call before the realms make their senders (they look for it)."""
    app[DEV_MAILBOX] = DevMailbox()


class MailQuery(Struct, kw_only=True):
    to: Annotated[str, Meta(min_length=1, max_length=255)] | None = None
    limit: Annotated[int, Meta(ge=1, le=DevMailbox.KEEP)] = 50


@endpoint(
    routes,
    "GET",
    "/dev/mail/messages",
    summary="Dev mode: the messages the api sent (sign-in codes), newest first",
    tag="dev",
    query=MailQuery,
    response=list[CaughtMail],
    auth=False,
)
async def messages(request: web.Request, query: MailQuery) -> list[CaughtMail]:
    return request.app[DEV_MAILBOX].messages(query.to, query.limit)


def _row(mail: CaughtMail) -> str:
    e = html.escape
    code = f'<b class="code">{e(mail.code)}</b>' if mail.code else ""
    return (
        f'<tr data-id="{mail.id}"><td>{e(mail.at.strftime("%H:%M:%S"))}</td>'
        f"<td>{e(mail.channel)}</td><td>{e(mail.to)}</td><td>{e(mail.subject)}</td>"
        f"<td>{code}</td><td><pre>{e(mail.text)}</pre></td></tr>"
    )


@endpoint(
    routes,
    "GET",
    "/dev/mail",
    summary="Dev mode: the messages the api sent, as a page",
    tag="dev",
    query=MailQuery,
    auth=False,
    extra={"responses": file_responses(["text/html"])},
)
async def mail_page(request: web.Request, query: MailQuery) -> web.Response:
    mail = request.app[DEV_MAILBOX].messages(query.to, query.limit)
    rows = "".join(_row(m) for m in mail) or '<tr><td colspan="6">Nothing sent yet.</td></tr>'
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dev mail · Switchboard</title>
<link rel="stylesheet" href="/app/app.css"></head>
<body class="devmail"><h1>Dev mail</h1>
<p>What the api sent in dev mode: newest first, at most {DevMailbox.KEEP}, kept in memory until
the api restarts. <a href="/dev/mail">Reload</a> · <a href="/">Demo app</a> ·
<a href="/docs">API docs</a></p>
<table><thead><tr><th>time</th><th>by</th><th>to</th><th>subject</th><th>code</th><th>text</th>
</tr></thead><tbody>{rows}</tbody></table></body></html>
"""
    return web.Response(
        text=body,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Content-Security-Policy": _CSP},
    )
