"""The api's browser pages over HTTP: the demo app's files and config, the /docs assets, the
dev mail catcher (dev mode on loopback only), and production mode refusing the senders that
would write sign-in codes to the log."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from api.app import create_app
from api.routes import docs, webapp
from kernel.config import ConfigError, load_settings
from tests.api.conftest import SmtpSink, smtp_sink
from tests.conftest import ROOT, free_port
from tests.factories import make_user
from tests.web.conftest import StartApi, WebApi

__all__ = ["smtp_sink"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, api: WebApi, path: str, **kw: Any) -> Any:
    async with http.get(api.url.rstrip("/") + path, allow_redirects=False, **kw) as res:
        body = await res.read()
        return res.status, res.headers, body


async def test_the_app_and_its_files_are_served(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api(PUBLIC_GATEWAY_URL="ws://127.0.0.1:9999/ws")
    status, headers, body = await get(http, api, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<script type="module" src="/app/app.js">' in body
    csp = headers["Content-Security-Policy"]
    assert "connect-src 'self' ws://127.0.0.1:9999;" in csp
    assert "script-src 'self';" in csp
    for name, path in webapp.FILES.items():
        status, headers, body = await get(http, api, f"/app/{name}")
        assert status == 200, name
        assert headers["Content-Type"].split(";")[0] == webapp.content_type(path)
        assert body == path.read_bytes()
    # The JS client library straight from clients/js/, not a copy.
    assert webapp.FILES["switchboard.js"] == ROOT / "clients" / "js" / "switchboard.js"
    for name in ("nope.js", "..%2Fapp.py", "index.html", "app.js.map"):
        status, headers, body = await get(http, api, f"/app/{name}")
        assert status == 404, name
        assert headers["Content-Type"].startswith("application/json")
        assert b'"not_found"' in body


async def test_the_docs_page_and_its_assets_are_local(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api()
    status, headers, body = await get(http, api, "/docs")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    html = body.decode()
    # Every script and stylesheet of the page is one of ours (no CDN).
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/") for a in assets), assets
    for name, path in docs.FILES.items():
        status, headers, body = await get(http, api, f"/docs/{name}")
        assert (status, body) == (200, path.read_bytes()), name
    # The vendored files are what the README next to them says they are.
    readme = (docs.DOCS_DIR / "README.md").read_text()
    assert "`swagger-ui-dist` **5.36.0**" in readme and "Apache-2.0" in readme
    assert (docs.DOCS_DIR / "LICENSE").exists() and (docs.DOCS_DIR / "NOTICE").exists()
    assert "validatorUrl: null" in (docs.DOCS_DIR / "docs.js").read_text()


async def test_the_web_config_finds_the_gateway(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api(GATEWAY_PORT="8123")
    # Without PUBLIC_GATEWAY_URL: the host the page came from, on the gateway's port.
    status, _, body = await get(http, api, "/web/config", headers={"Host": "chat.local:8080"})
    assert status == 200
    assert json.loads(body) == {
        "gateway_url": "ws://chat.local:8123/ws",
        "env": "dev",
        "realm": "analyst",
        "api_prefix": "/v1/analyst",
        "dev_mail": True,
    }
    # A Host header that is not a plain host name or address is not echoed (nor put in the
    # page's Content-Security-Policy): the gateway's own host instead.
    for host in ("a;b", "x'y", "[::1]:8080"):
        _, _, body = await get(http, api, "/web/config", headers={"Host": host})
        expected = "ws://[::1]:8123/ws" if host.startswith("[") else "ws://127.0.0.1:8123/ws"
        assert json.loads(body)["gateway_url"] == expected, host
        _, headers, _ = await get(http, api, "/", headers={"Host": host})
        assert (
            f"connect-src 'self' {expected.removesuffix('/ws')};"
            in headers["Content-Security-Policy"]
        )
    configured = await start_api(PUBLIC_GATEWAY_URL="wss://gw.example/ws", GATEWAY_PORT="8123")
    _, _, body = await get(http, configured, "/web/config")
    assert json.loads(body)["gateway_url"] == "wss://gw.example/ws"


async def test_dev_mode_keeps_the_codes_the_api_sends(
    start_api: StartApi, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    api = await start_api()  # dev is the default; no SMTP_URL: codes are logged and kept
    await make_user(db, email="kim@example.com")
    await make_user(db, phone="+919800000001")
    base = api.url.rstrip("/")
    async with http.post(
        f"{base}/v1/analyst/auth/otp", json={"purpose": "login", "email": "kim@example.com"}
    ) as res:
        assert res.status == 202
    async with http.post(
        f"{base}/v1/analyst/auth/otp", json={"purpose": "login", "phone": "+919800000001"}
    ) as res:
        assert res.status == 202
    async with http.get(f"{base}/dev/mail/messages", params={"to": "KIM@example.com"}) as res:
        assert res.status == 200
        (mail,) = await res.json()
    assert mail["channel"] == "email" and mail["to"] == "kim@example.com"
    assert mail["purpose"] == "login" and mail["realm"] == "analyst"
    assert re.fullmatch(r"\d{6}", mail["code"]) and mail["code"] in mail["subject"]
    async with http.get(f"{base}/dev/mail/messages") as res:
        kept = await res.json()
    assert [m["channel"] for m in kept] == ["sms", "email"]  # newest first
    assert kept[0]["to"] == "+919800000001"
    # The kept code is the real one: it signs in.
    async with http.post(
        f"{base}/v1/analyst/auth/login", json={"email": "kim@example.com", "otp": mail["code"]}
    ) as res:
        assert res.status == 200, await res.text()
    status, headers, body = await get(http, api, "/dev/mail")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert f'<b class="code">{mail["code"]}</b>'.encode() in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "env",
    [
        {"SWITCHBOARD_ENV": "prod", "SMTP_URL": "smtp://127.0.0.1:1", "SMS_SENDER": "off"},
        {"API_HOST": "0.0.0.0"},  # noqa: S104 - dev mode, but reachable from other machines
    ],
    ids=["prod", "dev-not-loopback"],
)
async def test_the_dev_mail_catcher_is_not_served(
    start_api: StartApi, http: aiohttp.ClientSession, env: dict[str, str]
) -> None:
    api = await start_api(**env)
    for path in ("/dev/mail", "/dev/mail/messages"):
        status, _, _ = await get(http, api, path)
        assert status == 404, path
    _, _, body = await get(http, api, "/openapi.json")
    paths = json.loads(body)["paths"]
    assert not [p for p in paths if p.startswith("/dev/")]
    assert {"/", "/app/{name}", "/web/config", "/docs", "/docs/{name}"} <= set(paths)
    _, _, body = await get(http, api, "/web/config")
    assert json.loads(body)["dev_mail"] is False


def test_settings_of_the_mode_are_checked() -> None:
    base = {"DATABASE_URL": "postgresql://x/y", "SWITCHBOARD_SECRET": "s" * 40}
    assert load_settings(base).env == "dev"
    assert load_settings(base).sms_sender == "log"
    for name, value in (
        ("SWITCHBOARD_ENV", "staging"),
        ("SMS_SENDER", "twilio"),
        ("PUBLIC_GATEWAY_URL", "http://gw.example/ws"),
    ):
        with pytest.raises(ConfigError, match=name):
            load_settings({**base, name: value})


@pytest.mark.parametrize(
    ("env", "refusal"),
    [
        ({}, "SWITCHBOARD_ENV=prod needs SMTP_URL"),
        ({"SMTP_URL": "smtp://127.0.0.1:25"}, "refuses SMS_SENDER=log"),
        ({"SMS_SENDER": "off"}, "SWITCHBOARD_ENV=prod needs SMTP_URL"),
    ],
)
def test_prod_refuses_senders_that_log_codes(env: dict[str, str], refusal: str) -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://x/y",
            "SWITCHBOARD_SECRET": "s" * 40,
            "SWITCHBOARD_ENV": "prod",
            **env,
        }
    )
    with pytest.raises(ConfigError, match=refusal):
        create_app(settings)


async def test_prod_sends_codes_by_email_only_and_logs_none(
    start_api: StartApi,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    smtp_sink: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = await start_api(SWITCHBOARD_ENV="prod", SMTP_URL=smtp_sink.url, SMS_SENDER="off")
    await make_user(db, email="lee@example.com")
    await make_user(db, phone="+919800000002")
    base = api.url.rstrip("/")
    with caplog.at_level(logging.DEBUG):
        async with http.post(
            f"{base}/v1/analyst/auth/otp", json={"purpose": "login", "email": "lee@example.com"}
        ) as res:
            assert res.status == 202
        async with http.post(
            f"{base}/v1/analyst/auth/otp", json={"purpose": "login", "phone": "+919800000002"}
        ) as res:
            assert res.status == 400
            assert "codes by SMS are not available" in (await res.json())["error"]["message"]
    code = smtp_sink.code_for("lee@example.com")
    ours = [r for r in caplog.records if r.name != "mail.log"]  # mail.log: the test's SMTP sink
    assert not [r for r in ours if code in r.getMessage() + str(r.__dict__)]
    assert not [r for r in caplog.records if r.getMessage() in ("sms_otp", "email_otp_logged")]


async def test_the_api_process_does_not_start_in_prod_without_smtp(dsn: str, secret: str) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SMTP_URL", "SMS_SENDER", "SWITCHBOARD_ENV")
    }
    env.update(
        DATABASE_URL=dsn,
        SWITCHBOARD_SECRET=secret,
        SWITCHBOARD_ENV="prod",
        API_PORT=str(free_port()),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0
    assert "SWITCHBOARD_ENV=prod needs SMTP_URL" in stderr.decode()
