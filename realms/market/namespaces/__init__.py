"""The market realm's channels: `market.chat:<id>` (chats) and `market.order:<id>` (live
order tracking)."""

from __future__ import annotations

from collections.abc import Sequence

from kernel.conversation import Namespace, NamespaceContext
from realms.market.namespaces.chat import ChatNamespace
from realms.market.namespaces.order import OrderNamespace


def build(context: NamespaceContext) -> Sequence[Namespace]:
    return [
        ChatNamespace(context.pool, context.publish, context.on_batch),
        OrderNamespace(context.pool, context.publish),
    ]
