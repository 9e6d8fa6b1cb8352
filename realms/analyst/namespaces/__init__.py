"""The analyst realm's channel namespaces: `community:<chat_channels.id>` (stored, gated
rooms) and `community.live:<id>` (the same gates, broadcast without storing)."""

from __future__ import annotations

from collections.abc import Sequence

from kernel.conversation import Namespace, NamespaceContext
from realms.analyst.namespaces.community import CommunityNamespace
from realms.analyst.namespaces.community_live import CommunityLiveNamespace, LiveMessages
from realms.analyst.namespaces.community_messages import CommunityMessages


def build(context: NamespaceContext) -> Sequence[Namespace]:
    """The namespaces of one gateway process, sharing one group commit for stored rooms."""
    messages = CommunityMessages(context.pool, context.publish, on_batch=context.on_batch)
    rooms = CommunityNamespace(context.pool, messages)
    return [rooms, CommunityLiveNamespace(rooms, LiveMessages(context.publish))]
