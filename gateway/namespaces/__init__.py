"""Channel namespaces: `community:<id>`, `user:<id>`; the registry the gateway core consults."""

from __future__ import annotations

from gateway.namespaces.base import Namespace, NamespaceRegistry

__all__ = ["Namespace", "NamespaceRegistry"]
