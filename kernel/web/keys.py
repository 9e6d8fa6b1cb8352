"""Typed application keys for the resources the API's handlers share."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from kernel.config import Settings
from kernel.realms import Realms

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
REALMS = web.AppKey("realms", Realms)
