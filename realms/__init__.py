"""Realms: one package per platform seed (analyst, academy, aichat, creator, market).

Each realm package declares, in its `__init__.py`, everything it brings (SQL migrations,
REST routes, gateway namespaces, notification categories, scheduled jobs); the processes
load the enabled ones through `kernel.realms`. docs/realms.md says how to add one.
"""
