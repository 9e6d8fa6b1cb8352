"""Over-long URLs get the JSON error body (api/url_limit.py), not the HTTP parser's plain text."""

from __future__ import annotations

from typing import Any

from api.url_limit import MAX_URL_BYTES


async def test_a_url_over_the_limit_is_answered_414_in_json(api: Any) -> None:
    query = "q=" + "a" * MAX_URL_BYTES
    reply = await api.get(f"/v1/analyst/channels?{query}")
    assert reply.status == 414
    assert reply.content_type == "application/json"
    error = (await reply.json())["error"]
    assert error["code"] == "too_large"
    assert error["details"] == {"limit": MAX_URL_BYTES}
    assert "Access-Control-Allow-Origin" not in reply.headers  # no Origin sent


async def test_a_url_at_the_limit_reaches_the_route(api: Any) -> None:
    path = "/healthz?padding="
    reply = await api.get(path + "a" * (MAX_URL_BYTES - len(path)))
    assert reply.status == 200


async def test_the_openapi_document_declares_414(api: Any) -> None:
    document = await (await api.get("/openapi.json")).json()
    operation = document["paths"]["/v1/analyst/channels"]["get"]
    assert "414" in operation["responses"]
