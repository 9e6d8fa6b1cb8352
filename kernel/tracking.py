"""Signed links in notification e-mails: open pixel, click redirect, one-click unsubscribe.

A link carries a token: base64url(JSON claim) "." base64url(HMAC-SHA256(SWITCHBOARD_SECRET)
truncated to 128 bits). The e-mail worker builds the links; the API's routes call
`record_open`, `record_click` (which returns the URL to redirect to — only ever a URL that
was signed, so the endpoint is no open redirect) and `unsubscribe`. Links do not expire:
mail is read months later, and RFC 8058 wants unsubscribe links to keep working.
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

OPEN_PATH = "/v1/notifications/email/open"
CLICK_PATH = "/v1/notifications/email/click"
UNSUBSCRIBE_PATH = "/v1/notifications/email/unsubscribe"

Kind = Literal["open", "click", "unsubscribe"]
_DOMAIN = b"switchboard.email-link.v1."
_SIG_BYTES = 16


class LinkClaim(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """What a link's token vouches for. `n`: the notification; `d`: a digest delivery (its
    items); `c`: the category an unsubscribe turns off ('*' = every category)."""

    k: Kind
    u: str
    n: str | None = None
    d: int | None = None
    url: str | None = None
    c: str | None = None


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


def link(base_url: str, secret: str, claim: LinkClaim) -> str:
    """The absolute URL (under PUBLIC_BASE_URL) of `claim`'s endpoint with its token."""
    path = {"open": OPEN_PATH, "click": CLICK_PATH, "unsubscribe": UNSUBSCRIBE_PATH}[claim.k]
    return base_url.rstrip("/") + path + "?" + urlencode({"t": sign_link(secret, claim)})


# --- recording (the API's routes call these) --------------------------------------------------

_OPEN = """
UPDATE analyst.notifications
   SET email_opened = true, email_opened_at = coalesce(email_opened_at, now())
 WHERE user_id = $1 AND (id = $2 OR id = ANY (coalesce(
       (SELECT digest_items FROM gateway.notification_deliveries
         WHERE id = $3 AND user_id = $1), '{}')))
"""

_CLICK = """
UPDATE analyst.notifications
   SET email_clicked = true, email_opened = true,
       email_opened_at = coalesce(email_opened_at, now())
 WHERE id = $2 AND user_id = $1
"""


def _ids(claim: LinkClaim) -> tuple[uuid.UUID, uuid.UUID | None]:
    try:
        return uuid.UUID(claim.u), uuid.UUID(claim.n) if claim.n else None
    except ValueError:
        raise BadRequest("malformed link token") from None


async def record_open(conn: asyncpg.Connection, secret: str, token: str) -> int:
    """The open pixel was fetched: mark the notification(s) opened (the first time counts).
    Returns how many notifications were marked. Serve the 1x1 GIF whatever happens."""
    claim = verify_tracking_token(secret, token, "open")
    user_id, notification_id = _ids(claim)
    status = await conn.execute(_OPEN, user_id, notification_id, claim.d)
    return int(status.split()[-1])


async def record_click(conn: asyncpg.Connection, secret: str, token: str) -> str:
    """A tracked link was followed: mark the notification clicked (and opened); return the URL
    to redirect to (303)."""
    claim = verify_tracking_token(secret, token, "click")
    user_id, notification_id = _ids(claim)
    if claim.url is None:
        raise BadRequest("click link without a target")
    if notification_id is not None:
        await conn.execute(_CLICK, user_id, notification_id)
    return claim.url


async def unsubscribe(conn: asyncpg.Connection, secret: str, token: str) -> tuple[uuid.UUID, str]:
    """One-click unsubscribe (RFC 8058, POST) or the link followed: turn e-mail off for the
    claim's category. Idempotent. Returns (user id, category)."""
    claim = verify_tracking_token(secret, token, "unsubscribe")
    user_id, _ = _ids(claim)
    category = claim.c or "*"
    try:
        await conn.execute(
            """INSERT INTO gateway.notification_preferences (user_id, category, channel, enabled)
               VALUES ($1, $2, 'email', false)
               ON CONFLICT (user_id, category, channel) DO UPDATE
                  SET enabled = false, updated_at = now()""",
            user_id,
            category,
        )
    except asyncpg.ForeignKeyViolationError:
        pass  # the account is gone: nothing will be sent to it anyway
    return user_id, category
