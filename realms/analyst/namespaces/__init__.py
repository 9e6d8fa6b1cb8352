"""The analyst realm's channel namespaces: `community:<chat_channels.id>` (stored, gated
rooms), `community.live:<id>` (the same gates, broadcast without storing), and the core's
support conversations `analyst.support:<id>` (realms/analyst/support.py says who answers)."""

from __future__ import annotations

from collections.abc import Sequence

from kernel.conversation import Namespace, NamespaceContext
from kernel.conversations import conversation_namespaces
from realms.analyst.namespaces.community import CommunityNamespace
from realms.analyst.namespaces.community_live import CommunityLiveNamespace, LiveMessages
from realms.analyst.namespaces.community_messages import CommunityMessages
from realms.analyst.support import AnalystSupportPolicy


def build(context: NamespaceContext) -> Sequence[Namespace]:
    """The namespaces of one gateway process, sharing one group commit for stored rooms."""
    from realms.analyst import REALM  # the package declares the realm that loads this

    messages = CommunityMessages(context.pool, context.publish, on_batch=context.on_batch)
    rooms = CommunityNamespace(context.pool, messages)
    support = conversation_namespaces(
        REALM, context, AnalystSupportPolicy(REALM, context.pool), kinds=("support",)
    )
    return [rooms, CommunityLiveNamespace(rooms, LiveMessages(context.publish)), *support]
