"""The api's web security and operations (issue 20, item 6): CORS by an allow-list, OPTIONS,
access-log lines with request ids, the request id on the delivery jobs a request queues, and
GET /metrics."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
import pytest

from kernel.config import ConfigError, load_settings
from kernel.tokens import sign_access_token
from tests.factories import make_user
from tests.ops.conftest import ApiStarter

APP = "https://app.example.com"
DEV = "http://localhost:5173"
OTHER = "https://evil.example.net"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def _items(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(",") if part.strip()}


def bearer(secret: str, user: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_access_token(secret, str(user), 'analyst', 600)}"}


# --- CORS -----------------------------------------------------------------------------------


async def test_a_preflight_from_a_listed_origin_is_answered_204_with_what_the_api_takes(
    start_api: ApiStarter,
) -> None:
    api = await start_api(CORS_ORIGINS=f"{APP}, {DEV}/")
    for path in ("/v1/auth/login", "/v1/analyst/auth/login", "/v1/me"):
        response = await api.options(path, headers={"Origin": APP, **PREFLIGHT})
        assert response.status == 204, await response.text()
        assert response.headers["Access-Control-Allow-Origin"] == APP
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert {"get", "post", "put", "patch", "delete"} <= _items(
            response.headers["Access-Control-Allow-Methods"]
        )
        assert {"authorization", "content-type", "x-api-key", "x-request-id"} <= _items(
            response.headers["Access-Control-Allow-Headers"]
        )
        assert int(response.headers["Access-Control-Max-Age"]) > 0
        assert "origin" in _items(response.headers["Vary"])
    # the second origin of the list (written with a trailing slash) is just as good
    response = await api.options("/v1/me", headers={"Origin": DEV, **PREFLIGHT})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == DEV


@pytest.mark.parametrize("cors_origins", [APP, ""])
async def test_a_preflight_from_an_unlisted_origin_is_refused_403_in_the_error_shape(
    start_api: ApiStarter, cors_origins: str
) -> None:
    api = await start_api(CORS_ORIGINS=cors_origins)
    origin = OTHER if cors_origins else APP  # with no list, no origin is listed
    response = await api.options("/v1/auth/login", headers={"Origin": origin, **PREFLIGHT})
    assert response.status == 403
    body = await response.json()
    assert body["error"]["code"] == "forbidden"
    assert "CORS_ORIGINS" in body["error"]["message"]
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Methods" not in response.headers


async def test_responses_to_a_listed_origin_carry_allow_origin_and_vary(
    start_api: ApiStarter,
) -> None:
    api = await start_api(CORS_ORIGINS=APP)
    ok = await api.get("/healthz", headers={"Origin": APP})
    assert ok.status == 200
    assert ok.headers["Access-Control-Allow-Origin"] == APP
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    assert "x-request-id" in _items(ok.headers["Access-Control-Expose-Headers"])
    assert "origin" in _items(ok.headers["Vary"])
    # errors too, so that the page can read why it was refused
    refused = await api.get("/v1/me", headers={"Origin": APP})
    assert refused.status == 401
    assert refused.headers["Access-Control-Allow-Origin"] == APP
    missing = await api.get("/v1/nothing-here", headers={"Origin": APP})
    assert missing.status == 404
    assert missing.headers["Access-Control-Allow-Origin"] == APP


async def test_responses_to_other_origins_carry_no_allow_origin_but_vary(
    start_api: ApiStarter,
) -> None:
    api = await start_api(CORS_ORIGINS=APP)
    for headers in ({"Origin": OTHER}, {}):
        response = await api.get("/healthz", headers=headers)
        assert response.status == 200  # answered; the browser keeps it from the page
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers
        assert "origin" in _items(response.headers["Vary"])  # caches must not mix them up


async def test_without_cors_origins_no_cors_headers_are_sent(start_api: ApiStarter) -> None:
    api = await start_api()
    response = await api.get("/healthz", headers={"Origin": APP})
    assert response.status == 200
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]
    assert "Vary" not in response.headers


async def test_options_is_answered_204_with_allow_instead_of_405(start_api: ApiStarter) -> None:
    api = await start_api()
    login = await api.options("/v1/auth/login")
    assert login.status == 204
    assert _items(login.headers["Allow"]) == {"options", "post"}
    me = await api.options("/v1/me")
    assert me.status == 204
    assert _items(me.headers["Allow"]) == {"delete", "get", "options"}
    missing = await api.options("/v1/nothing-here")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("*", "`\\*` is not allowed"),
        (f"{APP}, *", "`\\*` is not allowed"),
        ("null", "not an origin"),
        ("app.example.com", "not an origin"),
        ("https://app.example.com/path", "not an origin"),
    ],
)
@pytest.mark.parametrize("variable", ["CORS_ORIGINS", "GATEWAY_ORIGINS"])
def test_origin_lists_take_exact_origins_only(variable: str, value: str, message: str) -> None:
    env = {"DATABASE_URL": "postgresql://x/y", "SWITCHBOARD_SECRET": "s" * 40, variable: value}
    with pytest.raises(ConfigError, match=f"{variable}: .*{message}"):
        load_settings(env)


def test_origin_lists_are_kept_as_browsers_send_origins() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://x/y",
            "SWITCHBOARD_SECRET": "s" * 40,
            "CORS_ORIGINS": " HTTPS://App.Example.com/ , http://localhost:5173,,",
            "GATEWAY_ORIGINS": "capacitor://localhost",
        }
    )
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:5173")
    assert settings.gateway_origins == ("capacitor://localhost",)
    defaults = load_settings({"DATABASE_URL": "postgresql://x/y", "SWITCHBOARD_SECRET": "s" * 40})
    assert (defaults.cors_origins, defaults.gateway_origins) == ((), ())
    assert (defaults.worker_metrics_host, defaults.worker_metrics_port) == ("127.0.0.1", 9108)


# --- access log and request ids ---------------------------------------------------------------


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        dict(getattr(r, "fields", {}))
        for r in caplog.records
        if r.name == "api.access" and r.getMessage() == "request"
    ]


async def test_each_request_gets_one_access_line_with_its_request_id(
    start_api: ApiStarter, db: asyncpg.Connection, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = await start_api()
    user = await make_user(db)
    caplog.set_level(logging.INFO, logger="api.access")

    given = await api.get("/healthz", headers={"X-Request-Id": "edge-7f3a:42"})
    assert given.headers["X-Request-Id"] == "edge-7f3a:42"
    made_up = await api.get("/v1/me", headers={"X-Request-Id": 'bad id "with" quotes'})
    generated = made_up.headers["X-Request-Id"]
    assert generated != 'bad id "with" quotes' and len(generated) == 32
    authed = await api.get("/v1/me", headers=bearer(secret, user))
    assert authed.status == 200
    preflight = await api.options("/v1/me", headers={"Origin": OTHER, **PREFLIGHT})
    assert preflight.status == 403

    lines = _access_lines(caplog)
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("GET", "/healthz", 200),
        ("GET", "/v1/me", 401),
        ("GET", "/v1/me", 200),
        ("OPTIONS", "/v1/me", 403),
    ]
    assert [line["request_id"] for line in lines] == [
        "edge-7f3a:42",
        generated,
        authed.headers["X-Request-Id"],
        preflight.headers["X-Request-Id"],
    ]
    assert len({line["request_id"] for line in lines}) == 4
    assert [line["user"] for line in lines] == ["", "", str(user), ""]
    assert all(isinstance(line["duration_ms"], float) for line in lines)
    assert all(line["remote"] for line in lines)


async def test_the_request_id_is_recorded_on_the_delivery_jobs_the_request_queues(
    start_api: ApiStarter, db: asyncpg.Connection, secret: str
) -> None:
    api = await start_api()
    admin = await make_user(db, user_type="admin")
    reader = await make_user(db, email_verified=True)
    body = {
        "event_key": "ops:request-id:1",
        "notification_type": "system_notice",
        "title": "Traced",
        "user_ids": [str(reader)],
        "send_push": False,
    }
    response = await api.post(
        "/v1/internal/notifications",
        json=body,
        headers={**bearer(secret, admin), "X-Request-Id": "trace-0001"},
    )
    assert response.status == 201, await response.text()
    assert response.headers["X-Request-Id"] == "trace-0001"
    digest = {**body, "event_key": "ops:request-id:2", "notification_group": "daily_digest"}
    response = await api.post(
        "/v1/internal/notifications", json=digest, headers=bearer(secret, admin)
    )
    assert response.status == 201, await response.text()
    rows = await db.fetch(
        "SELECT channel, request_id FROM gateway.notification_deliveries ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        ("email", "trace-0001"),
        ("digest", response.headers["X-Request-Id"]),
    ]


# --- metrics -----------------------------------------------------------------------------------


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_metrics_count_requests_by_route_method_and_status(
    start_api: ApiStarter, db: asyncpg.Connection, secret: str
) -> None:
    api = await start_api(CORS_ORIGINS=APP)
    user = await make_user(db)
    for _ in range(3):
        assert (await api.get("/v1/me", headers=bearer(secret, user))).status == 200
    assert (await api.get("/v1/me")).status == 401
    assert (await api.get("/v1/nothing/here/at/all")).status == 404
    assert (await api.options("/v1/me", headers={"Origin": OTHER, **PREFLIGHT})).status == 403

    response = await api.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = _samples(await response.text())
    requests = "switchboard_api_requests_total"
    assert samples[f'{requests}{{method="GET",route="/v1/me",status="200"}}'] == 3
    assert samples[f'{requests}{{method="GET",route="/v1/me",status="401"}}'] == 1
    assert samples[f'{requests}{{method="GET",route="unmatched",status="404"}}'] == 1
    assert samples[f'{requests}{{method="OPTIONS",route="unmatched",status="403"}}'] == 1
    latency = "switchboard_api_request_duration_seconds"
    assert samples[f'{latency}_count{{method="GET",route="/v1/me"}}'] == 4
    assert samples[f'{latency}_bucket{{le="+Inf",method="GET",route="/v1/me"}}'] == 4
    assert samples["switchboard_api_requests_in_flight"] == 1  # this scrape
    assert samples["process_cpu_seconds_total"] > 0
    assert samples["process_resident_memory_bytes"] > 0
    assert any(name.startswith("python_info{") for name in samples)
    assert any(name.startswith("python_gc_objects_collected_total{") for name in samples)


async def test_metrics_are_documented_as_text_in_openapi(start_api: ApiStarter) -> None:
    api = await start_api()
    document = await (await api.get("/openapi.json")).json()
    operation = document["paths"]["/metrics"]["get"]
    assert "security" not in operation
    assert list(operation["responses"]["200"]["content"]) == ["text/plain"]
