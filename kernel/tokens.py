"""Access tokens: HS256 JWTs signed with SWITCHBOARD_SECRET (claims sub, realm, exp, iat, jti,
and `sid`, the realm's sign-in session, only in tokens issued for one).

The API issues them (`sign_access_token`); the gateway and the API verify them
(`verify_access_token`), which raises Unauthorized or TokenExpired and never returns an
unverified claim. Whether the claimed realm is served is the process's question
(`Realms.for_token`): a well-signed token of a realm not served here is refused there.
JOSE itself (encoding, the signature, the algorithm allow-list) is PyJWT's.
"""

from __future__ import annotations

import time
import uuid

import jwt
import msgspec

from kernel.errors import TokenExpired, Unauthorized
from kernel.realms import REALM_NAME


class AccessClaims(msgspec.Struct, frozen=True):
    sub: str
    realm: str
    exp: int
    iat: int
    jti: str
    typ: str = "access"
    # The sign-in session the token belongs to (a realm's sessions row), when the realm has
    # them: revoking that session (kernel/revocation.py) refuses the token and closes its
    # sockets. Absent from tokens issued without one.
    sid: str | None = None


_ALGORITHM = "HS256"
# PyJWS checks the structure, the algorithm allow-list and the signature; the claims are then
# read by msgspec and their times checked against the caller's clock (`now`).
_JWS = jwt.PyJWS(algorithms=[_ALGORITHM])
_claims_decoder = msgspec.json.Decoder(AccessClaims)


def sign_access_token(
    secret: str,
    user_id: str,
    realm: str,
    ttl_s: int,
    *,
    now: float | None = None,
    session_id: str | None = None,
) -> str:
    """A token for `user_id` in `realm`, valid `ttl_s` seconds from `now` (default: the clock);
    with `session_id`, of that sign-in session (the `sid` claim)."""
    if not REALM_NAME.match(realm):
        raise ValueError(f"not a realm name: {realm!r}")
    issued = int(time.time() if now is None else now)
    claims = AccessClaims(
        sub=str(user_id),
        realm=realm,
        exp=issued + ttl_s,
        iat=issued,
        jti=uuid.uuid4().hex,
        sid=None if session_id is None else str(session_id),
    )
    fields = msgspec.structs.asdict(claims)
    if claims.sid is None:  # tokens without a session stay as they always were
        del fields["sid"]
    return _JWS.encode(msgspec.json.encode(fields), secret, algorithm=_ALGORITHM)


CLOCK_SKEW_S = 60


def verify_access_token(
    secret: str, token: str, *, now: float | None = None, max_ttl_s: int | None = None
) -> AccessClaims:
    """The token's claims if its signature is good, it has not expired, it was not issued in
    the future, and (with `max_ttl_s`) it lives no longer than that.

    Raises TokenExpired when only the expiry fails, Unauthorized for anything else.
    """
    try:
        signed = _JWS.decode_complete(token, secret, algorithms=[_ALGORITHM])
    except jwt.InvalidTokenError as exc:
        # Three ASCII parts that do not verify (forged, or another header) are a bad
        # signature; anything else does not even look like a token.
        shaped = isinstance(token, str) and token.isascii() and token.count(".") == 2
        raise Unauthorized(
            "token signature is invalid" if shaped else "token is malformed"
        ) from exc
    try:
        claims = _claims_decoder.decode(signed["payload"])
    except msgspec.DecodeError as exc:  # ValidationError is one
        raise Unauthorized("token is malformed") from exc
    if claims.typ != "access":
        raise Unauthorized("token is not an access token")
    if not REALM_NAME.match(claims.realm):
        raise Unauthorized("token names no realm")
    clock = int(time.time() if now is None else now)
    if max_ttl_s is not None and claims.exp - claims.iat > max_ttl_s:
        raise Unauthorized(f"token lives longer than the maximum of {max_ttl_s} s")
    if claims.iat > clock + CLOCK_SKEW_S:
        raise Unauthorized("token is issued in the future")
    if claims.exp <= clock:
        raise TokenExpired("token has expired")
    return claims
