"""The core's conversations (kinds direct, group and support) for realms whose seed keeps
none of its own: `conversation_namespaces(...)` gives a realm its `<realm>.direct`,
`<realm>.group` and `<realm>.support` namespaces over one shared store (sql/0100,
docs/adr/0005-core-conversations.md)."""

from __future__ import annotations

from collections.abc import Sequence

from kernel.conversation import Namespace, NamespaceContext
from kernel.conversations.namespace import ConversationNamespace
from kernel.conversations.policy import ConversationPolicy, OpenPolicy
from kernel.conversations.store import ConversationStore
from kernel.realms import Realm

KINDS = ("direct", "group", "support")

__all__ = ["KINDS", "ConversationPolicy", "OpenPolicy", "conversation_namespaces"]


def conversation_namespaces(
    realm: Realm,
    context: NamespaceContext,
    policy: ConversationPolicy | None = None,
    kinds: Sequence[str] = KINDS,
) -> list[Namespace]:
    """One namespace per kind in `kinds`, sharing one store (and one group commit)."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"not conversation kinds of the core: {sorted(unknown)}")
    store = ConversationStore(
        realm,
        context.pool,
        context.publish,
        policy or OpenPolicy(realm, context.pool),
        on_batch=context.on_batch,
    )
    return [ConversationNamespace(realm, kind, store) for kind in kinds]
