"""Property-based run of schemathesis against the API's own OpenAPI document.

The real app listens on a loopback port (its own thread and event loop, so schemathesis's
blocking HTTP client can talk to it from the test) over this test's fresh database, seeded
with a small world so that path parameters hit real rows for part of the examples. Every
operation of GET /openapi.json is run (examples, coverage and fuzzing phases, positive and
negative data) with a bounded, derandomized number of examples, per scope: the core's
operations, and each realm's (selected by their /v1/<realm>/ prefix). Each scope runs
anonymously; a realm whose world is seeded here (the analyst realm: an admin, an approved
analyst, a subscribed trader) also runs as each of its roles. Every check schemathesis has is
applied to every response: no 5xx, documented status codes, content types, headers and
bodies, schema-valid requests accepted and schema-violating ones refused, 405 with `Allow` for
a method the path lacks, `Allow` that matches the document, auth enforced where declared.

Excluded, narrowly, where a check cannot hold: `Allow` and 405 on a literal path that a
sibling template also matches (`_shadowed_paths`); acceptance of a well-formed request refused
for a rule no JSON Schema can state, listed one by one with the reason in BEYOND_THE_SCHEMA
(opaque cursors, decimal places of binary floats, rules relating two values, rules over the
stored row a PATCH merges into, ids that must name a row of a certain kind).
Notes on the operations that can only be reached part-way:
- POST /v1/payments/webhook and POST /v1/payouts/webhook: generated bodies are never signed
  with the webhook secret, so only the refusals (400/401) are exercised; the signed paths are
  covered in test_payments.py and test_payouts.py.
- GET /v1/i/{code} (302) and GET /v1/notifications/email/click (303) redirect: redirects are
  not followed (allow_redirects=False), so the documented 3xx status is what gets checked
  and nothing leaves the machine.
- Auth endpoints limit attempts per account and per address; they may answer 429, which their
  operations document.
- A request line longer than aiohttp's parser takes (8190 bytes) is refused by aiohttp before
  the app, with a plain-text 400: checked as that, not against the document.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import unittest
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import strategies as st
from schemathesis import BaseSchema, HookContext
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    positive_data_acceptance,
    unsupported_method,
)

from api.app import create_app
from api.url_limit import MAX_URL_BYTES
from kernel.config import load_settings
from kernel.db import connect
from kernel.realms import enabled_realms
from kernel.tokens import sign_access_token
from realms.analyst.otp import OTP_SENDERS, OtpSenders, SmtpOtpSender
from tests.api.conftest import SmsCapture, SmtpSink
from tests.conftest import free_port
from tests.factories import insert_row, make_analyst, make_subscription, make_tier, make_user

T = TypeVar("T")

# Generated examples per operation and role (on top of the deterministic coverage cases) and
# the seed; SB_SCHEMATHESIS_EXAMPLES and SB_SCHEMATHESIS_SEED change them for a deeper run.
MAX_EXAMPLES = int(os.environ.get("SB_SCHEMATHESIS_EXAMPLES", "10"))
SEED = int(os.environ.get("SB_SCHEMATHESIS_SEED", "20240601"))
# Every check schemathesis has. (It has no timing check; `max_response_time` is a config
# option left unset, so nothing here depends on how fast the machine is.)
load_all_checks()
CHECKS = REGISTERED_CHECKS.get_all()


@dataclass
class World:
    admin: uuid.UUID
    analyst: uuid.UUID
    trader: uuid.UUID
    path_values: dict[str, dict[str, str]]  # path template -> real values of its parameters


class LiveApi:
    """The app on 127.0.0.1:<free port>, served by its own thread's event loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def start(self) -> None:
        self._thread.start()

        async def serve() -> None:
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        self.run(serve())

    def stop(self) -> None:
        try:
            self.run(self._runner.cleanup())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()


async def seed(dsn: str) -> World:
    """An admin; an approved analyst with a tier, a channel with a message, a post, a discount
    code and an invite link; a trader subscribed to the tier (with a captured payment), who
    bookmarked and reviewed, has a notification and a support ticket, and flagged the post."""
    db: asyncpg.Connection = await connect(dsn)
    try:
        admin = await make_user(db, user_type="admin")
        analyst = await make_analyst(db, verification_status="approved")
        tier = await make_tier(db, analyst, price_monthly=99900, price_yearly=999000)
        trader = await make_user(db)
        subscription = await make_subscription(db, trader, tier)
        channel = await insert_row(
            db,
            "chat_channels",
            {"analyst_id": analyst, "channel_name": "Desk", "channel_type": "community"},
        )
        await insert_row(
            db,
            "chat_messages",
            {"channel_id": channel, "user_id": analyst, "analyst_id": analyst, "message": "hi"},
        )
        post = await insert_row(
            db,
            "posts",
            {
                "analyst_id": analyst,
                "title": "NIFTY long",
                "content": "Buy the dip",
                "post_type": "call",
                "strategy_type": "swing",
                "stock_symbol": "NIFTY",
                "action": "BUY",
                "entry_price": 100,
                "target_price": 120,
                "stop_loss": 90,
                "call_status": "open",
            },
        )
        bookmark = await insert_row(db, "bookmarks", {"user_id": trader, "post_id": post})
        review = await insert_row(
            db,
            "reviews",
            {"user_id": trader, "analyst_id": analyst, "rating": 4, "review_text": "Solid"},
        )
        notification = await insert_row(
            db,
            "notifications",
            {
                "user_id": trader,
                "notification_type": "new_post",
                "title": "New post",
                "message": "NIFTY long",
                "action_url": "https://switchboard.example/posts",
            },
        )
        ticket = await insert_row(
            db, "support_tickets", {"user_id": trader, "subject": "Cannot pay"}
        )
        flag = await insert_row(
            db,
            "moderation_flags",
            {
                "reported_by": trader,
                "flagged_entity_type": "post",
                "flagged_entity_id": post,
                "flag_reason": "spam",
            },
        )
        discount = await insert_row(
            db,
            "discount_codes",
            {
                "analyst_id": analyst,
                "code": "WELCOME10",
                "discount_type": "percentage",
                "discount_value": 10,
                "valid_until": datetime.now(UTC) + timedelta(days=30),
            },
        )
        invite = await insert_row(
            db, "invite_links", {"analyst_id": analyst, "invite_code": "desk-invite"}
        )
        payment = await insert_row(
            db,
            "payment_transactions",
            {
                "user_id": trader,
                "analyst_id": analyst,
                "subscription_id": subscription,
                "razorpay_order_id": "order_seed0001",
                "razorpay_payment_id": "pay_seed0001",
                "transaction_type": "subscription_payment",
                "amount": 99900,
                "status": "captured",
                "payout_amount": 79920,
                "platform_commission": 19980,
            },
        )
    finally:
        await db.close()
    a, ids = str(analyst), {"analyst_id": str(analyst)}
    path_values = {
        "/v1/analysts/{analyst_id}": ids,
        "/v1/analysts/{analyst_id}/posts": ids,
        "/v1/analysts/{analyst_id}/tiers": ids,
        "/v1/analysts/{analyst_id}/reviews": ids,
        "/v1/admin/analysts/{analyst_id}/review": {"analyst_id": a},
        "/v1/admin/analysts/{analyst_id}/approve": {"analyst_id": a},
        "/v1/admin/analysts/{analyst_id}/reject": {"analyst_id": a},
        "/v1/admin/analysts/{analyst_id}/feature": {"analyst_id": a},
        "/v1/admin/analysts/{analyst_id}/payouts": {"analyst_id": a},
        "/v1/tiers/{tier_id}": {"tier_id": str(tier)},
        "/v1/discount-codes/{code}/preview": {"code": "WELCOME10"},
        "/v1/i/{code}": {"code": "desk-invite"},
    }
    by_id = {
        "/v1/posts/{id}": post,
        "/v1/posts/{id}/call-status": post,
        "/v1/posts/{id}/comments": post,
        "/v1/admin/posts/{id}/feature": post,
        "/v1/bookmarks/{id}": bookmark,
        "/v1/channels/{id}": channel,
        "/v1/channels/{id}/archive": channel,
        "/v1/channels/{id}/unarchive": channel,
        "/v1/channels/{id}/messages": channel,
        "/v1/discount-codes/{id}": discount,
        "/v1/inbox/notifications/{id}/read": notification,
        "/v1/invite-links/{id}": invite,
        "/v1/moderation/flags/{id}": flag,
        "/v1/moderation/queue/{id}": flag,
        "/v1/moderation/queue/{id}/review": flag,
        "/v1/moderation/queue/{id}/resolve": flag,
        "/v1/moderation/queue/{id}/action": flag,
        "/v1/subscriptions/{id}": subscription,
        "/v1/subscriptions/{id}/cancel": subscription,
        "/v1/payments/{id}": payment,
        "/v1/payments/{id}/refund": payment,
        "/v1/reviews/{id}": review,
        "/v1/reviews/{id}/response": review,
        "/v1/reviews/{id}/votes": review,
        "/v1/reviews/{id}/moderation": review,
        "/v1/support/tickets/{id}": ticket,
        "/v1/support/tickets/{id}/status": ticket,
    }
    path_values.update({path: {"id": str(row)} for path, row in by_id.items()})
    return World(admin=admin, analyst=analyst, trader=trader, path_values=path_values)


@pytest.fixture
def live(
    dsn: str, secret: str, smtp_sink: SmtpSink, sms: SmsCapture
) -> Iterator[tuple[LiveApi, World]]:
    settings = load_settings(
        {
            "DATABASE_URL": dsn,
            "SWITCHBOARD_SECRET": secret,
            "BCRYPT_ROUNDS": "4",
            "SMTP_URL": smtp_sink.url,
            "RAZORPAY_KEY_SECRET": "rzp-test-key-secret",
            "RAZORPAY_WEBHOOK_SECRET": "rzp-test-webhook-secret",
            # Payouts configured, aimed at the discard port: a payout request can never leave
            # the machine (it fails to connect and the payout waits, as documented).
            "RAZORPAY_KEY_ID": "rzp_test_schemathesis",
            "RAZORPAY_PAYOUT_ACCOUNT": "7878780080316316",
            "RAZORPAY_PAYOUTS_BASE_URL": "http://127.0.0.1:9",
            "PUBLIC_BASE_URL": "https://switchboard.example",
        }
    )
    senders = OtpSenders(email=SmtpOtpSender(settings.smtp_url, settings.mail_from), sms=sms)
    server = LiveApi(create_app(settings, resources={OTP_SENDERS: senders}))
    server.start()
    try:
        world = server.run(seed(dsn))
        yield server, world
    finally:
        server.stop()  # before this test's database is dropped


def load_schema(server: LiveApi, world: World, scope: str, token: str | None) -> BaseSchema:
    """The operations of `scope` (a realm's, at their /v1/<realm>/ paths, or the core's), as
    seen by the bearer of `token` (None: anonymous)."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # Generation time depends on the machine's load; the example count bounds it. A
            # body with many either/or rules (market's flash sales) makes Hypothesis discard
            # many drafts: that is the generator's efficiency, not the API's behaviour.
            "suppress-health-check": ["too_slow", "filter_too_much"],
            "headers": {"Authorization": f"Bearer {token}"} if token else {},
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json", config=config)

    @schema.hook
    def before_generate_path_parameters(context: HookContext, strategy: Any) -> Any:
        """Half the examples use the seeded rows' ids, the rest whatever is generated."""
        assert context.operation is not None
        # the seeded ids are keyed by the analyst realm's declared (unprefixed) paths
        declared = context.operation.path.replace("/v1/analyst/", "/v1/", 1)
        real = world.path_values.get(declared)
        return strategy if real is None else st.one_of(st.just(real), strategy)

    # Each operation once, at its canonical /v1/<realm>/ path: the old unprefixed paths are
    # aliases of the same handlers, marked deprecated (test_auth checks they are served).
    schema = schema.exclude(deprecated=True)
    if scope == CORE:
        realms = "|".join(REALMS_WITH_ROUTES)
        return schema.exclude(path_regex=f"^/v1/({realms})/")
    return schema.include(path_regex=f"^/v1/{scope}/")


def _shorten(report: str) -> str:
    """Generated inputs can be huge: keep each line of a report readable."""
    return "\n".join(
        line if len(line) <= 800 else line[:800] + " [...]" for line in report.splitlines()
    )


def _shadowed_paths(schema: BaseSchema) -> set[str]:
    """Paths that a template of another path matches too (/payments/verify by /payments/{id}).
    An OPTIONS of one is answered, rightly, with the methods of both (GET /payments/verify
    reaches GET /payments/{id}, which refuses `verify` as an id with 400), so its `Allow`
    names methods its own entry does not document, and a method it lacks is not 405:
    allow_header_conformance and unsupported_method cannot hold there."""
    templates = [
        re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")
        for path in schema.raw_schema["paths"]
        if "{" in path
    ]
    return {
        path
        for path in schema.raw_schema["paths"]
        if any(t.match(path) for t in templates if t.pattern != re.escape(path) + "$")
    }


# Refusals of well-formed requests for rules that no JSON Schema can state: the operation's
# path ending (None: any), its method (None: any) and the start of the refusal's message.
BEYOND_THE_SCHEMA: list[tuple[str | None, str | None, str]] = [
    # Cursors are opaque (`next_cursor` of the previous page): the document gives their
    # alphabet, not which strings decode to a sort key.
    (None, None, "cursor is not valid"),
    # A price declared `multipleOf: 0.01`: validators test that in binary floating point, the
    # API in decimal (57 * 0.01 is 0.5700000000000001 in binary).
    (None, None, "`actual_exit_price` has more than 2 decimal places"),
    (None, None, "`actual_entry_price` has more than 2 decimal places"),
    (None, None, "`entry_price` has more than 2 decimal places"),
    (None, None, "`target_price` has more than 2 decimal places"),
    (None, None, "`stop_loss` has more than 2 decimal places"),
    # Rules relating two values (JSON Schema compares a value with constants only).
    ("/posts", "POST", "a BUY call needs target_price > entry_price > stop_loss"),
    ("/posts", "POST", "a SELL call needs target_price < entry_price < stop_loss"),
    ("/posts", "POST", "risk_reward_ratio"),
    ("/call-status", "POST", "actual_profit_percent would be over"),
    ("/tiers", "POST", "`price_yearly` must be above 0 and below 12 x"),
    ("/discount-codes", "POST", "valid_until: must be after valid_from"),
    ("/me/notification-settings", "PUT", "quiet hours cannot start when they end"),
    ("/support/queue", "GET", "give `assigned_to` or `unassigned`, not both"),
    # Rules over the stored row a PATCH merges into (the stored post is a call, say).
    ("/posts/{id}", "PATCH", "a "),  # check_call: "a BUY call needs …"
    ("/posts/{id}", "PATCH", "only a post_type 'call' carries these"),
    ("/posts/{id}", "PATCH", "risk_reward_ratio"),
    ("/tiers/{tier_id}", "PATCH", "`price_yearly`"),
    # An id in the body that must name a row of a kind only the database knows.
    ("/channels", "POST", "`minimum_tier_required` is not one of your subscription tiers"),
    ("/channels/{id}", "PATCH", "`minimum_tier_required`"),
    ("/support/tickets/{id}", "PATCH", "`assigned_to` must be an active support staff"),
    ("/discount-codes", "POST", "applicable_tiers: every tier must be one of your own tiers"),
    ("/discount-codes/{id}", "PATCH", "applicable_tiers: every tier must be one of your own"),
    ("/invite-links", "POST", "discount_code_id: not one of your discount codes"),
    ("/invite-links/{id}", "PATCH", "discount_code_id: not one of your discount codes"),
    ("/discount-codes/{id}", "PATCH", ""),  # _validated over the stored code and the edit
    ("/analysts/{analyst_id}/payouts", "POST", "analyst_id: this user is a"),
    # The state of the rows a request names: a code or a link that is used up, expired, of
    # another analyst; a tier that is closed or free; a flag whose content has no author.
    ("/subscriptions", "POST", "discount_code: "),
    ("/subscriptions", "POST", "invite_code: "),
    ("/subscriptions", "POST", "tier_id: "),
    ("/subscriptions", "POST", "billing_cycle: the tier has no yearly price"),
    ("/discount-codes/{code}/preview", "GET", "discount_code: "),
    ("/discount-codes/{code}/preview", "GET", "tier_id: "),
    ("/discount-codes/{code}/preview", "GET", "billing_cycle: the tier has no yearly price"),
    ("/moderation/flags", "POST", "you cannot report yourself or your own content"),
    ("/action", "POST", "the flagged "),
    ("/action", "POST", "content_removed applies to"),
    ("/refund", "POST", "amount: more than the payment"),
    # A Razorpay signature over the order and payment: only the secret's holder can make one.
    ("/payments/verify", "POST", "razorpay_signature: does not match"),
    # A date relative to today (creator's adults-only sign-up): a schema compares with
    # constants, and a date of birth generated in the future or the last 18 years is refused.
    ("/auth/signup", "POST", "accounts are for people aged 18 or older"),
    # The caller's own id in the path: no schema relates a path to the token's subject.
    ("/analysts/{analyst_id}/reviews", "POST", "you cannot review yourself"),
]


def _beyond_the_schema(case: schemathesis.Case, response: Any) -> bool:
    """Whether a well-formed request was refused (400) for a rule of BEYOND_THE_SCHEMA, so
    the refusal says nothing about the document: positive_data_acceptance is skipped for it."""
    if response.status_code != 400:
        return False
    try:
        message = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return False  # not the error body: content_type/schema conformance will say so
    return any(
        (path is None or case.operation.path.endswith(path))
        and (method is None or case.method.upper() == method)
        and message.startswith(start)
        for path, method, start in BEYOND_THE_SCHEMA
    )


def run_every_operation(schema: BaseSchema) -> tuple[int, list[str]]:
    """Run each operation's Hypothesis test (examples, coverage and fuzzing phases, as the
    config says); return how many operations ran and one report per failing operation.

    schemathesis.pytest.from_fixture would do the same, but its wrapper rewrites a private
    attribute of pytest's test items that pytest 9.2 no longer has; this drives the very
    tests it builds (`get_all_tests`) without touching pytest.
    """
    load_all_checks()
    shadowed = _shadowed_paths(schema)

    def check(case: schemathesis.Case) -> None:
        response = case.call(allow_redirects=False, timeout=30)
        target = urlsplit(response.request.url)
        if len(target.path) + (len(target.query) + 1 if target.query else 0) > MAX_URL_BYTES:
            # api/url_limit.py answers an over-long URL 414 before any operation runs: a limit
            # of every operation (declared on each), not an answer of this one.
            assert response.status_code == 414, response.status_code
            assert response.json()["error"]["code"] == "too_large"
            return
        excluded = (
            [allow_header_conformance, unsupported_method]
            if case.operation.path in shadowed
            else []
        )
        if _beyond_the_schema(case, response):
            excluded.append(positive_data_acceptance)
        case.validate_response(response, checks=CHECKS, excluded_checks=excluded)

    ran, failures = 0, []
    for result in get_all_tests(schema=schema, test_func=check, settings=None, given_kwargs={}):
        if not isinstance(result, Ok):
            failures.append(f"invalid schema: {result.err()}")
            continue
        operation, test = result.ok()
        ran += 1
        try:
            test()
        except unittest.SkipTest as exc:
            failures.append(f"{operation.label}: skipped ({exc}); nothing was sent")
        except (Exception, FailureGroup) as exc:  # FailureGroup is a BaseExceptionGroup
            failures.append(f"{operation.label}\n{_shorten(str(exc))}")
    return ran, failures


def _runs() -> list[Any]:
    """(scope, role) pairs: the core's operations and each realm's, anonymously and as the
    roles whose world `seed` builds (so far the analyst realm's only: another realm's
    operations get the anonymous run until a world of its own is seeded here)."""
    runs = [(CORE, "anonymous"), (CORE, "admin")]
    for realm in REALMS_WITH_ROUTES:
        roles = ROLES if realm == "analyst" else ("anonymous",)
        runs += [(realm, role) for role in roles]
    return [
        pytest.param(
            scope,
            role,
            id=f"{scope}-{role}",
            marks=[pytest.mark.xfail(reason=OPEN[scope], strict=False)] if scope in OPEN else [],
        )
        for scope, role in runs
    ]


# Realms whose document still promises less than their handlers enforce (their routes are
# theirs to fix: kernel.web.endpoints.exactly_one_of and friends state such rules). Remove an
# entry when its run passes (it then shows as XPASS).
OPEN: dict[str, str] = {}


CORE = "core"
ROLES = ("anonymous", "admin", "analyst", "trader")
REALMS_WITH_ROUTES = tuple(realm.name for realm in enabled_realms() if realm.routes is not None)


@pytest.mark.timeout(max(600, MAX_EXAMPLES * 24))
@pytest.mark.parametrize(("scope", "role"), _runs())
def test_the_api_keeps_to_its_openapi_document(
    live: tuple[LiveApi, World], secret: str, scope: str, role: str
) -> None:
    server, world = live
    users = {"admin": world.admin, "analyst": world.analyst, "trader": world.trader}
    token = (
        None
        if role == "anonymous"
        else sign_access_token(secret, str(users[role]), "analyst", 3600)
    )
    schema = load_schema(server, world, scope, token)
    ran, failures = run_every_operation(schema)
    assert ran == len(list(schema.get_all_operations())) > 0
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)


# --- what the run found, pinned down ----------------------------------------------------------


def _bearer(secret: str, user_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user_id), 'analyst', 600)}"}


async def test_inputs_the_database_would_refuse_are_bad_requests(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    """Each of these passed validation and then failed in Postgres, answering 500."""
    analyst = await make_analyst(db, verification_status="approved")
    trader = await make_user(db)
    code = await insert_row(
        db,
        "discount_codes",
        {
            "analyst_id": analyst,
            "code": "TEN10",
            "discount_type": "percentage",
            "discount_value": 10,
        },
    )
    link = await insert_row(db, "invite_links", {"analyst_id": analyst, "invite_code": "desk-1"})
    channel = await insert_row(
        db,
        "chat_channels",
        {"analyst_id": analyst, "channel_name": "D", "channel_type": "community"},
    )
    big = 2**31  # one past the integer (int4) columns
    refused: list[tuple[str, str, uuid.UUID | None, dict[str, Any] | None]] = [
        ("GET", f"/v1/channels/{channel}/messages?after_seq={2**63}", analyst, None),
        ("POST", "/v1/auth/otp", None, {"purpose": "signup", "email": "\u00e9t\u00e9@example.com"}),
        ("POST", "/v1/auth/otp", None, {"purpose": "signup", "email": "new@example.com\n"}),
        ("POST", "/v1/auth/otp", None, {"purpose": "signup", "phone": "+919800000000\n"}),
        (
            "PUT",
            "/v1/me/notification-preferences",
            trader,
            {"category": "x\n", "channel": "push", "enabled": False},
        ),
        (
            "POST",
            "/v1/discount-codes",
            analyst,
            {"code": "HUGE", "discount_type": "fixed_amount", "discount_value": big},
        ),
        ("PATCH", f"/v1/discount-codes/{code}", analyst, {"usage_limit": big}),
        ("PATCH", f"/v1/discount-codes/{code}", analyst, {"per_user_limit": big}),
        ("PATCH", f"/v1/discount-codes/{code}", analyst, {"max_discount_amount": big}),
        ("POST", "/v1/invite-links", analyst, {"invite_code": "desk-2", "max_uses": big}),
        ("PATCH", f"/v1/invite-links/{link}", analyst, {"max_uses": big}),
        ("PATCH", f"/v1/invite-links/{link}", analyst, {"utm_source": "a\u0000b"}),
        ("GET", "/v1/i/desk%00", None, None),
    ]
    for method, path, who, body in refused:
        headers = _bearer(secret, who) if who else {}
        response = await api.request(method, path, json=body, headers=headers)
        assert response.status == 400, (method, path, body, await response.text())
        assert (await response.json())["error"]["code"] == "bad_request"
    # A JSON string that only spells the escape (a backslash, then u0000) is plain text.
    response = await api.patch(
        f"/v1/invite-links/{link}", json={"link_name": "\\u0000"}, headers=_bearer(secret, analyst)
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["link_name"] == "\\u0000"


async def test_passwords_longer_than_bcrypt_reads_are_hashed_from_their_first_72_bytes(
    api: TestClient, smtp_sink: SmtpSink
) -> None:
    """bcrypt 5 raises on more than 72 bytes (a 128-character password can be 512)."""
    password = "\u00e9" * 100  # 100 characters, 200 bytes
    address = f"long-{uuid.uuid4().hex[:8]}@example.com"
    otp = {"purpose": "signup", "email": address}
    assert (await api.post("/v1/auth/otp", json=otp)).status == 202
    signup = {"email": address, "password": password, "otp": smtp_sink.code_for(address)}
    response = await api.post("/v1/auth/signup", json=signup)
    assert response.status == 201, await response.text()
    login = {"email": address, "password": password}
    assert (await api.post("/v1/auth/login", json=login)).status == 200
    same_start = {"email": address, "password": password[:-1] + "x"}  # past byte 72: unread
    assert (await api.post("/v1/auth/login", json=same_start)).status == 200
    wrong = {"email": address, "password": "x" + password[1:]}
    assert (await api.post("/v1/auth/login", json=wrong)).status == 401


async def test_the_document_lists_413_for_bodies_and_uses_json_schema_patterns(
    api: TestClient,
) -> None:
    document = await (await api.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert "413" in operation["responses"], (method, path)
    assert "\\Z" not in json.dumps(document)  # Python's end-of-text; JSON Schema says `$`


async def test_a_method_the_path_does_not_have_is_405_with_allow_and_the_error_body(
    api: TestClient,
) -> None:
    response = await api.delete("/v1/analyst/auth/login")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert (await response.json())["error"]["code"] == "bad_request"


async def test_an_integral_number_is_an_integer_however_it_is_written(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    """JSON (and JSON Schema's `integer`) do not tell 5.0 from 5; msgspec does."""
    analyst = await make_analyst(db, verification_status="approved")
    headers = _bearer(secret, analyst)
    body = {"invite_code": "desk-float", "max_uses": 5.0}
    response = await api.post("/v1/invite-links", json=body, headers=headers)
    assert response.status == 201, await response.text()
    assert (await response.json())["max_uses"] == 5
    body = {"invite_code": "desk-half", "max_uses": 5.5}
    response = await api.post("/v1/invite-links", json=body, headers=headers)
    assert response.status == 400
    assert "max_uses" in (await response.json())["error"]["message"]


async def test_an_unreachable_mail_server_is_503_with_retry_after(
    dsn: str, secret: str, aiohttp_client: Any, sms: SmsCapture
) -> None:
    """The OTP cannot be sent: the request was fine, what it needs is down."""
    settings = load_settings(
        {"DATABASE_URL": dsn, "SWITCHBOARD_SECRET": secret, "BCRYPT_ROUNDS": "4"}
    )
    nowhere = SmtpOtpSender(f"smtp://127.0.0.1:{free_port()}", settings.mail_from)
    client: TestClient = await aiohttp_client(
        create_app(settings, resources={OTP_SENDERS: OtpSenders(email=nowhere, sms=sms)})
    )
    try:
        otp = {"purpose": "signup", "email": "down@example.com"}
        response = await client.post("/v1/auth/otp", json=otp)
        assert response.status == 503, await response.text()
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["error"]["code"] == "unavailable"
    finally:
        await client.close()


async def test_the_document_states_ids_either_or_bodies_and_refused_text(
    api: TestClient,
) -> None:
    document = await (await api.get("/openapi.json")).json()
    post = document["paths"]["/v1/analyst/posts/{id}"]["get"]
    assert post["parameters"][0]["schema"] == {"type": "string", "format": "uuid"}
    assert post["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    schemas = document["components"]["schemas"]

    def body_of(path: str, method: str = "post") -> dict[str, Any]:
        """The component of an operation's body (other realms may hold Structs of one name,
        which msgspec then names by module)."""
        ref = document["paths"][path][method]["requestBody"]["content"]["application/json"]
        return dict(schemas[ref["schema"]["$ref"].rsplit("/", 1)[-1]])

    login = body_of("/v1/analyst/auth/login")
    assert {
        "oneOf": [
            {"required": ["email"], "properties": {"email": {"not": {"type": "null"}}}},
            {"required": ["phone"], "properties": {"phone": {"not": {"type": "null"}}}},
        ]
    } in login["allOf"]
    assert len(login["allOf"]) == 2  # and exactly one of password or otp
    refresh = body_of("/v1/analyst/auth/refresh")["properties"]["refresh_token"]
    assert refresh["pattern"] == "^[^\\u0000]*$"
    # a body whose every field has a default may be left out; one with a rule may not
    logout = document["paths"]["/v1/analyst/auth/logout"]["post"]
    assert logout["requestBody"]["required"] is True  # refresh_token is required
    put = document["paths"]["/v1/analyst/me/notification-settings"]["put"]
    assert put["requestBody"]["required"] is True  # quiet hours: both or neither
    settings = body_of("/v1/analyst/me/notification-settings", "put")
    start = settings["properties"]["quiet_hours_start"]["anyOf"][0]
    # HH:MM, with NUL refused ahead of it as in every other pattern
    assert start["pattern"] == "^(?=[^\\u0000]*$)([01][0-9]|2[0-3]):[0-5][0-9]$"
    profile = body_of("/v1/analyst/me/profile")
    document_ref = profile["properties"]["verification_documents"]["anyOf"][0]["items"]["$ref"]
    uploaded = schemas[document_ref.rsplit("/", 1)[-1]]["properties"]["uploaded_at"]["anyOf"][0]
    assert uploaded["pattern"].startswith("^(?=[^\\u0000]*$)(?!0000)[0-9]{4}-")  # a datetime
    notification = body_of("/v1/analyst/internal/notifications")
    audience_ref = notification["properties"]["audience"]["anyOf"][0]["$ref"]
    assert schemas[audience_ref.rsplit("/", 1)[-1]]["allOf"]  # nested Structs get rules too


async def test_a_body_with_rules_cannot_be_left_out(
    api: TestClient, db: asyncpg.Connection, secret: str
) -> None:
    headers = _bearer(secret, await make_user(db))
    response = await api.put("/v1/me/notification-settings", headers=headers)
    assert response.status == 400
    assert (await response.json())["error"]["message"] == "a JSON body is required"
    response = await api.put("/v1/me/notification-settings", json={}, headers=headers)
    assert response.status == 200, await response.text()
