"""The OpenAPI 3.1 document, built from the endpoint registry and the msgspec types it names,
served at GET /openapi.json."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from api.mount import MOUNTED, Mounted
from kernel.errors import ERROR_CODES
from kernel.web.endpoints import Endpoint, endpoint

routes = web.RouteTableDef()

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {
                    "type": "string",
                    "enum": list(ERROR_CODES),
                },
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    429: "Rate limited",
    503: "Unavailable",
}


def _operation(spec: Endpoint, path: str, refs: dict[type, dict[str, Any]]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": spec.summary,
        "tags": [spec.tag],
        "operationId": f"{spec.method.lower()}_{path}".replace("/", "_")
        .replace("{", "")
        .replace("}", "")
        .replace("-", "_"),
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _path_params(path)
    ]
    if spec.query is not None:
        schema = refs[spec.query]
        # msgspec names clashing classes apart; the $ref says which component is this one
        ref = schema.get("$ref", "")
        target = _COMPONENTS.get(ref.rsplit("/", 1)[-1], schema)
        for name, prop in target.get("properties", {}).items():
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in target.get("required", []),
                    "schema": prop,
                }
            )
    if params:
        op["parameters"] = params
    if spec.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[spec.body]}},
        }
    responses: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": _REASONS.get(spec.status, "OK")}
    if spec.response is not None and spec.status != 204:
        ok["content"] = {"application/json": {"schema": refs[spec.response]}}
    responses[str(spec.status)] = ok
    automatic = {  # answered by api/endpoints.py itself, whatever the handler declares
        400,
        *((401,) if spec.auth else ()),
        *((413,) if spec.body is not None else ()),
    }
    for status in sorted({*spec.errors, *automatic}):
        responses[str(status)] = {
            "description": _REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    op["responses"] = responses
    if spec.auth:
        op["security"] = [{"bearer": []}]
    op.update(spec.extra)
    return op


def _path_params(path: str) -> list[str]:
    return [
        part[1:-1].split(":")[0]
        for part in path.split("/")
        if part.startswith("{") and part.endswith("}")
    ]


_COMPONENTS: dict[str, Any] = {}
_PYTHON_END = re.compile(r"(?<!\\)((?:\\\\)*)\\Z\Z")


def _ecma_patterns(node: Any) -> None:
    """Patterns end in `\\Z` for msgspec, which matches with Python's `re`, where `$` would
    also let a trailing newline through; JSON Schema's (ECMA 262) `$` is that `\\Z`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                node[key] = _PYTHON_END.sub(r"\1$", value)
            else:
                _ecma_patterns(value)
    elif isinstance(node, list):
        for item in node:
            _ecma_patterns(item)


def build_document(mounted: list[Mounted]) -> dict[str, Any]:
    """The document of what an application serves; an old path kept as an alias is listed
    too, marked deprecated and naming its canonical path."""
    types = sorted(
        {t for m in mounted for t in (m.endpoint.body, m.endpoint.query, m.endpoint.response) if t},
        key=lambda t: t.__name__,
    )  # dict (this document) is a plain object
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    _ecma_patterns([schemas, components])
    _COMPONENTS.clear()
    _COMPONENTS.update(components)
    refs = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for m in mounted:
        operation = _operation(m.endpoint, m.path, refs)
        if m.alias_of is not None:
            operation["deprecated"] = True
            operation["description"] = f"Alias of {m.alias_of} (paths before realms)."
        paths.setdefault(m.path, {})[m.endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard API",
            "version": "1",
            "description": "REST sidecar of the Switchboard gateway: every enabled realm's routes"
            " under /v1/<realm>/.",
        },
        "paths": paths,
        "components": {
            "schemas": {**components, "Error": _ERROR_SCHEMA},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "serverKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            },
        },
    }


@endpoint(
    routes,
    "GET",
    "/openapi.json",
    summary="This document",
    tag="operations",
    response=dict,
    auth=False,
)
async def openapi(request: web.Request) -> dict[str, Any]:
    return build_document(request.app[MOUNTED])
