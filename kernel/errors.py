"""The one exception tree of Switchboard, and each error's wire code and HTTP status.

SwitchboardError                 internal        500
├── BadRequest                   bad_request     400
├── Unauthorized                 unauthorized    401
│   └── TokenExpired             unauthorized    401
├── Forbidden                    forbidden       403
├── NotFound                     not_found       404
├── Conflict                     conflict        409
├── TooLarge                     too_large       413
├── RateLimited                  rate_limited    429   (carries retry_after_ms)
├── QuotaExceeded                quota_exceeded  429   (a plan's monthly quota; carries resets_on)
├── Unavailable                  unavailable     503
└── Internal                     internal        500

The gateway sends `error {code, message}` frames and the API sends
`{"error": {"code", "message", "details"}}` bodies from these, and from nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

# The closed set of error codes of the wire protocol and the REST API.
ErrorCode = Literal[
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "rate_limited",
    "quota_exceeded",
    "too_large",
    "conflict",
    "unavailable",
    "internal",
]
ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)


class SwitchboardError(Exception):
    """Root of every error Switchboard reports to a client."""

    code: ClassVar[ErrorCode] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str = "", *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details = details or {}


class BadRequest(SwitchboardError):
    code = "bad_request"
    http_status = 400


class Unauthorized(SwitchboardError):
    code = "unauthorized"
    http_status = 401


class TokenExpired(Unauthorized):
    """The token was valid but its `exp` has passed; a fresh one may be presented."""


class Forbidden(SwitchboardError):
    code = "forbidden"
    http_status = 403


class NotFound(SwitchboardError):
    code = "not_found"
    http_status = 404


class Conflict(SwitchboardError):
    code = "conflict"
    http_status = 409


class TooLarge(SwitchboardError):
    code = "too_large"
    http_status = 413


class RateLimited(SwitchboardError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str = "", *, retry_after_ms: int) -> None:
        super().__init__(message, details={"retry_after_ms": retry_after_ms})
        self.retry_after_ms = retry_after_ms


class QuotaExceeded(SwitchboardError):
    """A plan's quota for the period is used up; `resets_on` (ISO date) says when it renews."""

    code = "quota_exceeded"
    http_status = 429

    def __init__(self, message: str = "", *, resets_on: str) -> None:
        super().__init__(message, details={"resets_on": resets_on})
        self.resets_on = resets_on


class Unavailable(SwitchboardError):
    code = "unavailable"
    http_status = 503


class Internal(SwitchboardError):
    code = "internal"
    http_status = 500
