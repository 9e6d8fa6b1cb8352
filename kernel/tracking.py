"""Signed links in notification e-mails: open pixel, click redirect, one-click unsubscribe.

A link carries a token: base64url(JSON claim) "." base64url(HMAC-SHA256(SWITCHBOARD_SECRET)
truncated to 128 bits). The e-mail worker builds the links; the API's routes call
`record_open`, `record_click` (which returns the URL to redirect to — only ever a URL that
was signed, so the endpoint is no open redirect) and `unsubscribe`. Links do not expire:
mail is read months later, and RFC 8058 wants unsubscribe links to keep working.

A claim names its realm (`r`); links signed before realms name none and are the analyst
realm's, whose links keep their unprefixed paths. Other realms' links go to the core
notification routes under /v1/<realm>/ (kernel/web/notification_routes.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from typing import Literal
from urllib.parse import urlencode

import asyncpg
import msgspec

from kernel.errors import BadRequest, Unauthorized
from kernel.inbox import Inbox, bind, inbox_of, resolve_realm, user_key
from kernel.realms import Realm

OPEN_PATH = "/v1/notifications/email/open"
CLICK_PATH = "/v1/notifications/email/click"
UNSUBSCRIBE_PATH = "/v1/notifications/email/unsubscribe"
# The realm of links that name none (signed before realms existed).
LEGACY_REALM = "analyst"

Kind = Literal["open", "click", "unsubscribe"]
_DOMAIN = b"switchboard.email-link.v1."
_SIG_BYTES = 16
# A token as sign_link writes it, for the routes' schemas: body and signature, each unpadded
# base64url (a part of 4n+1 characters cannot be one).
_B64URL = r"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?"
TOKEN_PATTERN = rf"^{_B64URL}\.{_B64URL}\Z"


class LinkClaim(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """What a link's token vouches for. `n`: the notification; `d`: a digest delivery (its
    items); `c`: the category an unsubscribe turns off ('*' = every category)."""

    k: Kind
    u: str
    n: str | None = None
    d: int | None = None
    url: str | None = None
    c: str | None = None
    r: str = LEGACY_REALM


_decoder = msgspec.json.Decoder(LinkClaim)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), _DOMAIN + body, hashlib.sha256).digest()[:_SIG_BYTES]


def sign_link(secret: str, claim: LinkClaim) -> str:
    """The token for `claim`."""
    if claim.url is not None and not claim.url.startswith(("https://", "http://")):
        raise ValueError("only http(s) URLs can be click-tracked")
    body = msgspec.json.encode(claim)
    return _b64(body) + "." + _b64(_sign(secret, body))


def verify_tracking_token(secret: str, token: str, kind: Kind | None = None) -> LinkClaim:
    """The claim of a token this service signed; Unauthorized if forged or altered, BadRequest
    if malformed or of another kind than `kind`."""
    body_text, dot, sig_text = token.partition(".")
    if not dot or len(token) > 4096:
        raise BadRequest("malformed link token")
    try:
        body, sig = _unb64(body_text), _unb64(sig_text)
    except (ValueError, TypeError):
        raise BadRequest("malformed link token") from None
    if not hmac.compare_digest(sig, _sign(secret, body)):
        raise Unauthorized("link token signature does not match")
    try:
        claim = _decoder.decode(body)
    except msgspec.DecodeError:
        raise BadRequest("malformed link token") from None
    if kind is not None and claim.k != kind:
        raise BadRequest(f"not an {kind} link")
    return claim


def link_path(kind: Kind, realm: str = LEGACY_REALM) -> str:
    """The path of a realm's `kind` endpoint: the analyst realm's old unprefixed path, else
    the core notification route under /v1/<realm>/."""
    path = {"open": OPEN_PATH, "click": CLICK_PATH, "unsubscribe": UNSUBSCRIBE_PATH}[kind]
    return path if realm == LEGACY_REALM else f"/v1/{realm}/{path[len('/v1/') :]}"


def link(base_url: str, secret: str, claim: LinkClaim) -> str:
    """The absolute URL (under PUBLIC_BASE_URL) of `claim`'s endpoint with its token."""
    path = link_path(claim.k, claim.r)
    return base_url.rstrip("/") + path + "?" + urlencode({"t": sign_link(secret, claim)})


# --- recording (the API's routes call these) --------------------------------------------------

_OPEN = """
UPDATE {t} n
   SET email_opened = true, email_opened_at = coalesce(n.email_opened_at, now())
 WHERE {mine} AND (n.id = :notification OR n.id = ANY (coalesce(
       (SELECT digest_items FROM gateway.notification_deliveries
         WHERE id = :digest AND realm = :realm AND user_id = :user::text), ARRAY[]::uuid[])))
"""

_CLICK = """
UPDATE {t} n
   SET email_clicked = true, email_opened = true,
       email_opened_at = coalesce(n.email_opened_at, now())
 WHERE n.id = :notification AND {mine}
"""


def _sql(template: str, box: Inbox) -> str:
    return template.format(t=box.table, mine=box.owner("n", ":user::text"))


def _claimed(claim: LinkClaim, route_realm: str | None) -> tuple[Realm, str, uuid.UUID | None]:
    """The claim's realm, user id (canonical) and notification id."""
    if route_realm is not None and claim.r != route_realm:
        raise BadRequest(f"this link belongs to realm {claim.r!r}, not {route_realm!r}")
    try:
        realm = resolve_realm(claim.r)
        return realm, user_key(realm, claim.u), uuid.UUID(claim.n) if claim.n else None
    except ValueError:
        raise BadRequest("malformed link token") from None


async def record_open(
    conn: asyncpg.Connection, secret: str, token: str, *, realm: str | None = None
) -> int:
    """The open pixel was fetched: mark the notification(s) opened (the first time counts).
    Returns how many notifications were marked. Serve the 1x1 GIF whatever happens. `realm`:
    the realm whose route was called (a link of another realm is refused)."""
    claim = verify_tracking_token(secret, token, "open")
    the_realm, user, notification_id = _claimed(claim, realm)
    box = inbox_of(the_realm)
    sql, args = bind(
        _sql(_OPEN, box),
        {"realm": the_realm.name, "user": user, "notification": notification_id, "digest": claim.d},
    )
    status = await conn.execute(sql, *args)
    return int(status.split()[-1])


async def record_click(
    conn: asyncpg.Connection, secret: str, token: str, *, realm: str | None = None
) -> str:
    """A tracked link was followed: mark the notification clicked (and opened); return the URL
    to redirect to (303)."""
    claim = verify_tracking_token(secret, token, "click")
    the_realm, user, notification_id = _claimed(claim, realm)
    if claim.url is None:
        raise BadRequest("click link without a target")
    if notification_id is not None:
        box = inbox_of(the_realm)
        sql, args = bind(
            _sql(_CLICK, box),
            {"realm": the_realm.name, "user": user, "notification": notification_id},
        )
        await conn.execute(sql, *args)
    return claim.url


async def unsubscribe(
    conn: asyncpg.Connection, secret: str, token: str, *, realm: str | None = None
) -> tuple[uuid.UUID | int, str]:
    """One-click unsubscribe (RFC 8058, POST) or the link followed: turn e-mail off for the
    claim's category. Idempotent. Returns (user id in the realm's id type, category)."""
    claim = verify_tracking_token(secret, token, "unsubscribe")
    the_realm, user, _ = _claimed(claim, realm)
    category = claim.c or "*"
    await conn.execute(
        """INSERT INTO gateway.notification_preferences
               (realm, user_id, category, channel, enabled)
           VALUES ($1, $2, $3, 'email', false)
           ON CONFLICT (realm, user_id, category, channel) DO UPDATE
              SET enabled = false, updated_at = now()""",
        the_realm.name,
        user,
        category,
    )
    return the_realm.user_id_value(user), category
