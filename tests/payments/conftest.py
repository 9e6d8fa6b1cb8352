"""Fixtures of the payment-provider port's tests: `stripe_standin`, a started local Stripe
stand-in (tests/payments/stripe_standin.py), and `stripe`, a StripeClient aimed at it.
Other test packages start their own with `running_standin()`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from kernel.payments.stripe import StripeClient
from tests.payments.stripe_standin import StripeStandin, running_standin


@pytest.fixture
async def stripe_standin() -> AsyncIterator[StripeStandin]:
    async with running_standin() as standin:
        yield standin


@pytest.fixture
async def stripe(stripe_standin: StripeStandin) -> AsyncIterator[StripeClient]:
    async with aiohttp.ClientSession() as session:
        yield StripeClient(stripe_standin.settings(), session)
