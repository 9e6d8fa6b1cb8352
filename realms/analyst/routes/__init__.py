"""The analyst realm's REST resources, one module per resource, in mounting order."""

from __future__ import annotations

from realms.analyst.routes import (
    accounts,
    auth,
    bookmarks,
    channels,
    comments,
    discounts,
    featuring,
    inbox,
    invites,
    moderation,
    mutes,
    notifications,
    payments,
    payouts,
    posts,
    profiles,
    reviews,
    subscriptions,
    support,
    tiers,
)

ROUTE_TABLES = [
    module.routes
    for module in (
        auth,
        profiles,
        tiers,
        subscriptions,
        payments,
        discounts,
        invites,
        posts,
        bookmarks,
        reviews,
        moderation,
        support,
        inbox,
        channels,
        notifications,
        comments,
        featuring,
        payouts,
        accounts,
        mutes,
    )
]
