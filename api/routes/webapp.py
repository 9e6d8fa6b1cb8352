"""The demo web app: GET / (the page), /app/<file> (its ES modules, stylesheet and icon, and the
JS client library straight from clients/js/), and GET /web/config (where the page finds the
gateway). Plain HTML, CSS and ES modules, no build step; it talks to the analyst realm's REST
routes and to the gateway with clients/js/switchboard.js."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from aiohttp import web
from msgspec import Struct
from yarl import URL

from api.routes.pages import (
    ROOT,
    STATIC_DIR,
    content_type,
    file_response,
    file_responses,
    name_parameter,
    named_file,
)
from kernel.devmail import DEV_MAILBOX
from kernel.web.endpoints import endpoint
from kernel.web.keys import REALMS, SETTINGS

routes = web.RouteTableDef()

APP_DIR = STATIC_DIR / "app"
# The realm whose REST routes the page calls (sign-in, channels, inbox).
REALM = "analyst"
FILES = {
    "app.js": APP_DIR / "app.js",
    "api.js": APP_DIR / "api.js",
    "chat.js": APP_DIR / "chat.js",
    "app.css": APP_DIR / "app.css",
    "icon.svg": APP_DIR / "icon.svg",
    "switchboard.js": ROOT / "clients" / "js" / "switchboard.js",
}


class WebConfig(Struct):
    """What the page needs to know about this deployment."""

    gateway_url: str
    env: Literal["dev", "prod"]
    # The realm the page signs in to and its REST prefix; null when that realm is not served.
    realm: str | None
    api_prefix: str | None
    # Dev mode with the mail catcher: the page shows the code it just requested (/dev/mail).
    dev_mail: bool


_NAME = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\Z")


def _plain_host(host: str) -> bool:
    """A DNS name, an IPv4 or an IPv6 address: nothing else of a Host header is echoed."""
    if _NAME.match(host):
        return True
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def gateway_url(request: web.Request) -> str:
    """PUBLIC_GATEWAY_URL, else the host the page was loaded from on GATEWAY_PORT, at /ws."""
    settings = request.app[SETTINGS]
    if settings.public_gateway_url:
        return settings.public_gateway_url
    scheme = "wss" if request.secure else "ws"
    asked = request.url.host
    host = asked if asked is not None and _plain_host(asked) else settings.gateway_host
    return str(URL.build(scheme=scheme, host=host, port=settings.gateway_port, path="/ws"))


def _csp(request: web.Request) -> str:
    gateway = URL(gateway_url(request))
    origin = f"{gateway.scheme}://{gateway.raw_authority}"
    return (
        f"default-src 'self'; connect-src 'self' {origin}; img-src 'self' data:;"
        " style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none';"
        " frame-ancestors 'none'; form-action 'self'"
    )


@endpoint(
    routes,
    "GET",
    "/",
    summary="The demo web app (sign in, channels, chat, notifications)",
    tag="web",
    auth=False,
    extra={"responses": file_responses(["text/html"])},
)
async def index(request: web.Request) -> web.Response:
    return await file_response(
        APP_DIR / "index.html", headers={"Content-Security-Policy": _csp(request)}
    )


@endpoint(
    routes,
    "GET",
    "/app/{name}",
    summary="A file of the demo web app (its modules, stylesheet, icon, the JS client)",
    tag="web",
    auth=False,
    extra={
        "parameters": name_parameter(FILES, "the file"),
        "responses": file_responses([content_type(p) for p in FILES.values()], (404,)),
    },
)
async def app_file(request: web.Request) -> web.Response:
    return await named_file(request, FILES)


@endpoint(
    routes,
    "GET",
    "/web/config",
    summary="The demo web app's settings: the gateway URL, dev or prod, the realm it serves",
    tag="web",
    response=WebConfig,
    auth=False,
)
async def config(request: web.Request) -> WebConfig:
    served = REALM in request.app[REALMS]
    return WebConfig(
        gateway_url=gateway_url(request),
        env=request.app[SETTINGS].env,
        realm=REALM if served else None,
        api_prefix=f"/v1/{REALM}" if served else None,
        dev_mail=DEV_MAILBOX in request.app,
    )
