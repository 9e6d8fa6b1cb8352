"""The academy realm's channel namespaces: `academy.session:<live_sessions.id>` (a live
session's room, realms/academy/namespaces/session.py) and `academy.community:all` (the
community's live feed, realms/academy/namespaces/community.py)."""

from __future__ import annotations

from collections.abc import Sequence

from kernel.conversation import Namespace, NamespaceContext
from realms.academy.namespaces.community import CommunityFeed
from realms.academy.namespaces.session import SessionChat, SessionRooms


def build(context: NamespaceContext) -> Sequence[Namespace]:
    chat = SessionChat(context.pool, context.publish)
    return [SessionRooms(context.pool, context.publish, chat), CommunityFeed()]
