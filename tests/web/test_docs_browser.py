"""/docs and /dev/mail in headless Chromium: Swagger UI renders the api's own OpenAPI
document from the vendored files only (no other origin, no CSP refusal), and the dev mail
page lists a code the api just sent. Screenshots: test-output/web/."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import aiohttp
import asyncpg

from tests.factories import make_user
from tests.web.conftest import Page, StartApi

OpenPage = Callable[[str], Awaitable[Page]]


async def test_the_docs_page_renders_the_openapi_document_offline(
    start_api: StartApi, pages: OpenPage
) -> None:
    api = await start_api()
    page = await pages("docs")
    await page.goto(api.url + "docs")
    title = await page.wait(
        "document.querySelector('.swagger-ui .info .title')"
        " && document.querySelector('.swagger-ui .info .title').textContent",
        timeout=60,
    )
    assert "Switchboard API" in title
    tags = await page.wait(
        "document.querySelectorAll('.opblock-tag').length > 5"
        " && [...document.querySelectorAll('.opblock-tag')].map((e) => e.dataset.tag)"
    )
    assert {"auth", "channels", "inbox", "web", "dev"} <= set(tags)
    await page.click(".opblock-tag[data-tag=auth]")
    paths = await page.wait(
        "document.querySelectorAll('.opblock .opblock-summary-path').length > 3"
        " && [...document.querySelectorAll('.opblock .opblock-summary-path')]"
        ".map((e) => e.dataset.path)"
    )
    assert "/v1/analyst/auth/login" in paths
    await page.screenshot("docs.png")
    outside = [u for u in page.requested_urls() if not u.startswith((api.url, "data:"))]
    assert outside == []
    assert not [e for e in page.log_entries() if "Content Security Policy" in e]


async def test_the_dev_mail_page_lists_the_codes_sent(
    start_api: StartApi, pages: OpenPage, db: asyncpg.Connection
) -> None:
    api = await start_api()
    await make_user(db, email="dev@example.com")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            api.url + "v1/analyst/auth/otp", json={"purpose": "login", "email": "dev@example.com"}
        ) as res,
    ):
        assert res.status == 202
    page = await pages("devmail")
    await page.goto(api.url + "dev/mail")
    row = await page.wait(
        "document.querySelector('tbody tr[data-id]')"
        " && [...document.querySelectorAll('tbody tr[data-id] td')].map((td) => td.textContent)"
    )
    assert row[1:3] == ["email", "dev@example.com"]
    assert row[4].isdigit() and len(row[4]) == 6 and row[4] in row[3]
    await page.screenshot("dev-mail.png")
    assert not [e for e in page.log_entries() if "Content Security Policy" in e], json.dumps(
        page.log_entries()
    )
