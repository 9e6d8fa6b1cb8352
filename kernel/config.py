"""Typed configuration, read once from the environment at start-up (see README, Configuration)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec


class ConfigError(Exception):
    """A required variable is missing or a value does not parse; the message names it."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str
    secret: str
    redis_url: str | None = None
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    bcrypt_rounds: int = 12
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8765
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    gateway_processes: int = 1
    gateway_max_frame_bytes: int = 64 * 1024
    gateway_slow_consumer_bytes: int = 1024 * 1024
    gateway_auth_timeout_s: float = 5.0
    gateway_refresh_grace_s: float = 25.0
    gateway_frames_per_second: int = 50
    gateway_frame_burst: int = 100
    gateway_ping_interval_s: float = 20.0
    gateway_heartbeat_s: float = 5.0
    gateway_node_ttl_s: float = 20.0
    gateway_missed_notifications: int = 50
    db_pool_min: int = 2
    db_pool_max: int = 10
    log_level: str = "INFO"
    log_format: str = "kv"
    smtp_url: str | None = None
    mail_from: str = "Switchboard <no-reply@switchboard.local>"
    public_base_url: str = "http://127.0.0.1:8080"
    fcm_base_url: str = "https://fcm.googleapis.com/v1/projects"
    fcm_credentials_file: str | None = None
    fcm_project_id: str | None = None
    fcm_concurrency: int = 32
    smtp_connections: int = 16
    razorpay_key_secret: str | None = None
    razorpay_webhook_secret: str | None = None
    razorpay_key_id: str | None = None
    razorpay_payouts_base_url: str = "https://api.razorpay.com"
    razorpay_payout_account: str | None = None
    razorpay_payout_mode: str = "IMPS"
    subscription_expiring_days: int = 3
    # Trusted backends call the server API (/v1/server/...) with this key; unset: disabled.
    server_api_key: str | None = None


# variable name -> (field, parser); the README's Configuration table lists the same names.
_ENV: dict[str, tuple[str, type]] = {
    "DATABASE_URL": ("database_url", str),
    "SWITCHBOARD_SECRET": ("secret", str),
    "REDIS_URL": ("redis_url", str),
    "ACCESS_TOKEN_TTL": ("access_token_ttl_s", int),
    "REFRESH_TOKEN_TTL": ("refresh_token_ttl_s", int),
    "BCRYPT_ROUNDS": ("bcrypt_rounds", int),
    "GATEWAY_HOST": ("gateway_host", str),
    "GATEWAY_PORT": ("gateway_port", int),
    "API_HOST": ("api_host", str),
    "API_PORT": ("api_port", int),
    "GATEWAY_PROCESSES": ("gateway_processes", int),
    "GATEWAY_MAX_FRAME_BYTES": ("gateway_max_frame_bytes", int),
    "GATEWAY_SLOW_CONSUMER_BYTES": ("gateway_slow_consumer_bytes", int),
    "GATEWAY_AUTH_TIMEOUT": ("gateway_auth_timeout_s", float),
    "GATEWAY_REFRESH_GRACE": ("gateway_refresh_grace_s", float),
    "GATEWAY_FRAMES_PER_SECOND": ("gateway_frames_per_second", int),
    "GATEWAY_FRAME_BURST": ("gateway_frame_burst", int),
    "GATEWAY_PING_INTERVAL": ("gateway_ping_interval_s", float),
    "GATEWAY_HEARTBEAT": ("gateway_heartbeat_s", float),
    "GATEWAY_NODE_TTL": ("gateway_node_ttl_s", float),
    "GATEWAY_MISSED_NOTIFICATIONS": ("gateway_missed_notifications", int),
    "DB_POOL_MIN": ("db_pool_min", int),
    "DB_POOL_MAX": ("db_pool_max", int),
    "LOG_LEVEL": ("log_level", str),
    "LOG_FORMAT": ("log_format", str),
    "SMTP_URL": ("smtp_url", str),
    "MAIL_FROM": ("mail_from", str),
    "PUBLIC_BASE_URL": ("public_base_url", str),
    "FCM_BASE_URL": ("fcm_base_url", str),
    "FCM_CREDENTIALS_FILE": ("fcm_credentials_file", str),
    "FCM_PROJECT_ID": ("fcm_project_id", str),
    "FCM_CONCURRENCY": ("fcm_concurrency", int),
    "SMTP_CONNECTIONS": ("smtp_connections", int),
    "RAZORPAY_KEY_SECRET": ("razorpay_key_secret", str),
    "RAZORPAY_WEBHOOK_SECRET": ("razorpay_webhook_secret", str),
    "RAZORPAY_KEY_ID": ("razorpay_key_id", str),
    "RAZORPAY_PAYOUTS_BASE_URL": ("razorpay_payouts_base_url", str),
    "RAZORPAY_PAYOUT_ACCOUNT": ("razorpay_payout_account", str),
    "RAZORPAY_PAYOUT_MODE": ("razorpay_payout_mode", str),
    "SUBSCRIPTION_EXPIRING_DAYS": ("subscription_expiring_days", int),
    "SERVER_API_KEY": ("server_api_key", str),
}

# Delivery concurrency per worker process (docs/notifications.md, "Throughput").
_CONCURRENCY = (("FCM_CONCURRENCY", "fcm_concurrency"), ("SMTP_CONNECTIONS", "smtp_connections"))


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `environ` (default os.environ); ConfigError names any bad variable."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name, (field, parser) in _ENV.items():
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[field] = parser(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}={raw!r} is not a valid {parser.__name__}") from exc
    for required, field in (("DATABASE_URL", "database_url"), ("SWITCHBOARD_SECRET", "secret")):
        if field not in values:
            raise ConfigError(f"{required} is required (make run and make test set it for you)")
    if len(str(values["secret"])) < 32:
        raise ConfigError("SWITCHBOARD_SECRET must be at least 32 characters")
    missed = values.get("gateway_missed_notifications")
    if isinstance(missed, int) and not 0 <= missed <= 1000:
        raise ConfigError("GATEWAY_MISSED_NOTIFICATIONS must be between 0 and 1000")
    mode = values.get("razorpay_payout_mode")
    if mode is not None and mode not in ("IMPS", "NEFT", "RTGS", "UPI"):
        raise ConfigError("RAZORPAY_PAYOUT_MODE must be one of IMPS, NEFT, RTGS, UPI")
    for name, field in _CONCURRENCY:
        count = values.get(field)
        if isinstance(count, int) and not 1 <= count <= 1000:
            raise ConfigError(f"{name} must be between 1 and 1000")
    key = values.get("server_api_key")
    if isinstance(key, str) and len(key) < 32:
        raise ConfigError("SERVER_API_KEY must be at least 32 characters")
    days = values.get("subscription_expiring_days")
    if isinstance(days, int) and days < 1:
        raise ConfigError("SUBSCRIPTION_EXPIRING_DAYS must be at least 1")
    return msgspec.convert(values, Settings)
