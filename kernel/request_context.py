"""The request id of the work in progress, carried in a context variable so that code far from
the web layer (kernel/notify.py) can record it without being passed it.

The api binds it for each request (from a valid `X-Request-Id`, else a new one); notify()
stores it on the delivery jobs it queues, so the worker that delivers them can be tied back to
the request that caused them (docs/operations.md).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-Id"
# Ids from outside are echoed into logs and headers: only characters that need no quoting
# there, and nothing that could split a log line or a header.
_VALID = re.compile(r"[A-Za-z0-9._:@+=/-]{1,128}\Z")

_request_id: ContextVar[str | None] = ContextVar("switchboard_request_id", default=None)


def valid_request_id(value: str | None) -> bool:
    """True for an id we accept from a client: 1-128 of letters, digits and `._:@+=/-`."""
    return value is not None and _VALID.match(value) is not None


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id bound in this context (this request, and the tasks it started), or None."""
    return _request_id.get()


@contextmanager
def bound_request_id(request_id: str) -> Iterator[str]:
    """Bind `request_id` for the duration of the block (and the tasks started inside it);
    ValueError unless it is a valid id (see valid_request_id)."""
    if not valid_request_id(request_id):
        raise ValueError(f"not a valid request id: {request_id[:40]!r}")
    token = _request_id.set(request_id)
    try:
        yield request_id
    finally:
        _request_id.reset(token)
