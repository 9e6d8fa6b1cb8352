"""Typed configuration, read once from the environment at start-up (see README, Configuration)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal

import msgspec


class ConfigError(Exception):
    """A required variable is missing or a value does not parse; the message names it."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str
    secret: str
    redis_url: str | None = None
    # REDIS_CLUSTER=1: REDIS_URL names any node of a Redis Cluster; fan-out then goes through
    # sharded pub/sub and every Redis key is hash-tagged by channel (docs/scaling.md).
    redis_cluster: bool = False
    access_token_ttl_s: int = 900
    # The gateway and the api refuse tokens whose exp - iat is longer than this.
    access_token_max_ttl_s: int = 3600
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
    # sends of one socket in flight at once (read ahead while earlier commits run)
    gateway_send_pipeline: int = 32
    gateway_ping_interval_s: float = 20.0
    gateway_heartbeat_s: float = 5.0
    gateway_node_ttl_s: float = 20.0
    gateway_missed_notifications: int = 50
    # Every Redis round trip of the gateway (publish, subscribe, PING, rate limit) is bounded
    # by this; publishes wait in a queue of at most this many (the oldest dropped past it).
    gateway_redis_timeout_s: float = 1.0
    gateway_publish_queue: int = 10_000
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
    # Origin allow-lists (docs/operations.md): browsers' cross-origin calls to the api (empty:
    # no CORS headers) and WebSocket upgrades of the gateway (empty: any Origin is accepted).
    cors_origins: tuple[str, ...] = ()
    gateway_origins: tuple[str, ...] = ()
    # The worker's Prometheus endpoint; port 0 turns it off.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9108
    # `dev`: the api also keeps the e-mails it sends for /dev/mail; `prod`: it refuses to start
    # with a sender that would write sign-in codes to the log (realms/analyst/otp.py).
    env: Literal["dev", "prod"] = "dev"
    # The gateway URL the demo web app connects to; unset: the page's host on GATEWAY_PORT.
    public_gateway_url: str | None = None
    # Sign-in codes by SMS: `log` writes them to the log (refused in prod), `off` refuses them.
    sms_sender: Literal["log", "off"] = "log"
    # Notification SMS through a Twilio-shaped Messages API (workers/delivery/sms.py); without
    # the account SID, auth token and sender number, SMS jobs are skipped with that reason.
    sms_base_url: str = "https://api.twilio.com"
    sms_account_sid: str | None = None
    sms_auth_token: str | None = None
    sms_from: str | None = None
    sms_concurrency: int = 16


# variable name -> (field, parser); the README's Configuration table lists the same names.
_ENV: dict[str, tuple[str, type]] = {
    "DATABASE_URL": ("database_url", str),
    "SWITCHBOARD_SECRET": ("secret", str),
    "REDIS_URL": ("redis_url", str),
    "ACCESS_TOKEN_TTL": ("access_token_ttl_s", int),
    "ACCESS_TOKEN_MAX_TTL": ("access_token_max_ttl_s", int),
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
    "GATEWAY_SEND_PIPELINE": ("gateway_send_pipeline", int),
    "GATEWAY_PING_INTERVAL": ("gateway_ping_interval_s", float),
    "GATEWAY_HEARTBEAT": ("gateway_heartbeat_s", float),
    "GATEWAY_NODE_TTL": ("gateway_node_ttl_s", float),
    "GATEWAY_MISSED_NOTIFICATIONS": ("gateway_missed_notifications", int),
    "GATEWAY_REDIS_TIMEOUT": ("gateway_redis_timeout_s", float),
    "GATEWAY_PUBLISH_QUEUE": ("gateway_publish_queue", int),
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
    "WORKER_METRICS_HOST": ("worker_metrics_host", str),
    "WORKER_METRICS_PORT": ("worker_metrics_port", int),
    "SWITCHBOARD_ENV": ("env", str),
    "PUBLIC_GATEWAY_URL": ("public_gateway_url", str),
    "SMS_SENDER": ("sms_sender", str),
    "SMS_BASE_URL": ("sms_base_url", str),
    "SMS_ACCOUNT_SID": ("sms_account_sid", str),
    "SMS_AUTH_TOKEN": ("sms_auth_token", str),
    "SMS_FROM": ("sms_from", str),
    "SMS_CONCURRENCY": ("sms_concurrency", int),
}

# Delivery concurrency per worker process (docs/notifications.md, "Throughput").
_CONCURRENCY = (
    ("FCM_CONCURRENCY", "fcm_concurrency"),
    ("SMTP_CONNECTIONS", "smtp_connections"),
    ("SMS_CONCURRENCY", "sms_concurrency"),
)

# Comma-separated lists of exact origins (`scheme://host[:port]`), kept lower-case without a
# trailing slash, as browsers send them.
_ORIGIN_LISTS = (("CORS_ORIGINS", "cors_origins"), ("GATEWAY_ORIGINS", "gateway_origins"))
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s@]+\Z")


def _origins(name: str, raw: str) -> tuple[str, ...]:
    origins: list[str] = []
    for item in raw.split(","):
        origin = item.strip().lower().removesuffix("/")
        if not origin:
            continue
        if origin == "*":
            raise ConfigError(
                f"{name}: `*` is not allowed; list the exact origins (the api lets listed"
                " origins send credentials, which a wildcard must never do)"
            )
        if origin == "null" or not _ORIGIN.match(origin):
            raise ConfigError(f"{name}: {item.strip()!r} is not an origin like https://app.example")
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


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
    redis_timeout = values.get("gateway_redis_timeout_s")
    if isinstance(redis_timeout, float) and not 0 < redis_timeout <= 60:
        raise ConfigError("GATEWAY_REDIS_TIMEOUT must be above 0 and at most 60 seconds")
    queue = values.get("gateway_publish_queue")
    if isinstance(queue, int) and not 1 <= queue <= 10_000_000:
        raise ConfigError("GATEWAY_PUBLISH_QUEUE must be between 1 and 10000000")
    cluster = env.get("REDIS_CLUSTER", "").strip().lower()
    if cluster:
        if cluster not in ("0", "1", "false", "true", "no", "yes"):
            raise ConfigError("REDIS_CLUSTER must be 1 (a Redis Cluster) or 0 (one Redis)")
        values["redis_cluster"] = cluster in ("1", "true", "yes")
        if values["redis_cluster"] and "redis_url" not in values:
            raise ConfigError("REDIS_CLUSTER=1 needs REDIS_URL (any node of the cluster)")
    mode = values.get("razorpay_payout_mode")
    if mode is not None and mode not in ("IMPS", "NEFT", "RTGS", "UPI"):
        raise ConfigError("RAZORPAY_PAYOUT_MODE must be one of IMPS, NEFT, RTGS, UPI")
    for name, field in _CONCURRENCY:
        count = values.get(field)
        if isinstance(count, int) and not 1 <= count <= 1000:
            raise ConfigError(f"{name} must be between 1 and 1000")
    pipeline = values.get("gateway_send_pipeline")
    if isinstance(pipeline, int) and not 1 <= pipeline <= 1024:
        raise ConfigError("GATEWAY_SEND_PIPELINE must be between 1 and 1024")
    ttl = values.get("access_token_ttl_s", 900)
    max_ttl = values.get("access_token_max_ttl_s", 3600)
    if isinstance(ttl, int) and isinstance(max_ttl, int) and not 0 < ttl <= max_ttl:
        raise ConfigError("ACCESS_TOKEN_TTL must be positive and at most ACCESS_TOKEN_MAX_TTL")
    for name, field in _ORIGIN_LISTS:
        if env.get(name):
            values[field] = _origins(name, env[name])
    metrics_port = values.get("worker_metrics_port")
    if isinstance(metrics_port, int) and not 0 <= metrics_port <= 65535:
        raise ConfigError("WORKER_METRICS_PORT must be between 0 (off) and 65535")
    key = values.get("server_api_key")
    if isinstance(key, str) and len(key) < 32:
        raise ConfigError("SERVER_API_KEY must be at least 32 characters")
    days = values.get("subscription_expiring_days")
    if isinstance(days, int) and days < 1:
        raise ConfigError("SUBSCRIPTION_EXPIRING_DAYS must be at least 1")
    if values.get("env", "dev") not in ("dev", "prod"):
        raise ConfigError("SWITCHBOARD_ENV must be `dev` or `prod`")
    if values.get("sms_sender", "log") not in ("log", "off"):
        raise ConfigError("SMS_SENDER must be `log` or `off`")
    sms_url = values.get("sms_base_url")
    if isinstance(sms_url, str) and not sms_url.startswith(("http://", "https://")):
        raise ConfigError("SMS_BASE_URL must start with http:// or https://")
    gateway_url = values.get("public_gateway_url")
    if isinstance(gateway_url, str) and not gateway_url.startswith(("ws://", "wss://")):
        raise ConfigError("PUBLIC_GATEWAY_URL must start with ws:// or wss://")
    return msgspec.convert(values, Settings)
