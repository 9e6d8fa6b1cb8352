"""Typed application keys for the resources the API's handlers share."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from api.otp import OtpSenders
from kernel.config import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
OTP_SENDERS = web.AppKey("otp_senders", OtpSenders)
