"""The REST sidecar: the documented domain over HTTP (aiohttp), with an OpenAPI document."""
