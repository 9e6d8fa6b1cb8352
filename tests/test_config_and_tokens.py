"""Configuration parsing and access-token signing/verification."""

from __future__ import annotations

import pytest

from kernel.config import ConfigError, load_settings
from kernel.errors import TokenExpired, Unauthorized
from kernel.tokens import sign_access_token, verify_access_token

SECRET = "s" * 40


def test_settings_defaults_and_overrides() -> None:
    s = load_settings(
        {"DATABASE_URL": "postgresql://x/y", "SWITCHBOARD_SECRET": SECRET, "GATEWAY_PORT": "9000"}
    )
    assert s.gateway_port == 9000
    assert s.api_port == 8080
    assert s.redis_url is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SWITCHBOARD_SECRET": SECRET}, "DATABASE_URL is required"),
        ({"DATABASE_URL": "postgresql://x/y"}, "SWITCHBOARD_SECRET is required"),
        ({"DATABASE_URL": "postgresql://x/y", "SWITCHBOARD_SECRET": "short"}, "at least 32"),
        ({"DATABASE_URL": "x", "SWITCHBOARD_SECRET": SECRET, "API_PORT": "eighty"}, "API_PORT"),
    ],
)
def test_settings_name_the_bad_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_token_round_trip() -> None:
    token = sign_access_token(SECRET, "u1", "analyst", 60, now=1000)
    claims = verify_access_token(SECRET, token, now=1059)
    assert (claims.sub, claims.realm, claims.exp) == ("u1", "analyst", 1060)


def test_expired_token_is_told_apart_from_a_forged_one() -> None:
    token = sign_access_token(SECRET, "u1", "analyst", 60, now=1000)
    with pytest.raises(TokenExpired):
        verify_access_token(SECRET, token, now=1060)
    with pytest.raises(Unauthorized, match="signature"):
        verify_access_token("t" * 40, token, now=1000)


@pytest.mark.parametrize("bad", ["", "abc", "a.b.c", "x" * 5000, "' OR 1=1 --", "é.é.é"])
def test_malformed_tokens_are_unauthorized(bad: str) -> None:
    with pytest.raises(Unauthorized):
        verify_access_token(SECRET, bad)


@pytest.mark.parametrize("realm", ["", "Analyst", "a", "has space", "x" * 40, "analyst.user"])
def test_a_realm_that_is_not_a_realm_name_cannot_be_signed(realm: str) -> None:
    # Whether a well-named realm is served is each process's question (Realms.for_token).
    with pytest.raises(ValueError, match="realm"):
        sign_access_token(SECRET, "u1", realm, 60)
