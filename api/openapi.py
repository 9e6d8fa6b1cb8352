"""The OpenAPI 3.1 document, built from the endpoint registry and the msgspec types it names,
served at GET /openapi.json; it states every rule the endpoints enforce (ids, either/or
bodies, datetimes, NUL, 503 with Retry-After), which tests/api/test_schemathesis.py holds it to."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web
from msgspec import _json_schema

from api.mount import MOUNTED, Mounted
from kernel.errors import ERROR_CODES
from kernel.realms import Realm
from kernel.web.endpoints import Endpoint, body_required, endpoint
from kernel.web.keys import REALMS

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
_RETRY_AFTER = {
    "description": "seconds to wait before retrying",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
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
    414: "URL too long",
    429: "Rate limited",
    503: "Unavailable",
}


# The JSON Schema of a realm's row ids, by Realm.user_id_type: a path parameter named `id` or
# `<something>_id` of a realm's route is one of its ids (kernel/web/paths.py reads them).
_ID_SCHEMAS: dict[str, dict[str, Any]] = {
    "uuid": {"type": "string", "format": "uuid"},
    "bigint": {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1},
}
# Postgres text cannot hold NUL and the endpoint decorator refuses it in every string of a
# request (path, query, body); said once for every string the document does not constrain.
_NO_NUL = "^[^\\u0000]*$"


def _path_param_schema(name: str, ids: dict[str, Any] | None) -> dict[str, Any]:
    if ids is not None and (name == "id" or name.endswith("_id")):
        return dict(ids)
    return {"type": "string", "minLength": 1}


def _operation(
    spec: Endpoint,
    path: str,
    refs: dict[type, dict[str, Any]],
    ids: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": spec.summary,
        "tags": [spec.tag],
        "operationId": f"{spec.method.lower()}_{path}".replace("/", "_")
        .replace("{", "")
        .replace("}", "")
        .replace("-", "_"),
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": _path_param_schema(name, ids)}
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
            "required": body_required(spec.body),  # kernel/web/endpoints.py reads none as {}
            "content": {"application/json": {"schema": refs[spec.body]}},
        }
    responses: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": _REASONS.get(spec.status, "OK")}
    if spec.response is not None and spec.status != 204:
        ok["content"] = {"application/json": {"schema": refs[spec.response]}}
    responses[str(spec.status)] = ok
    automatic = {  # answered by kernel/web (endpoints, errors), whatever the handler declares
        400,
        414,  # a URL over 8 KiB (api/url_limit.py)
        503,  # an outage of what the request needs (kernel/web/errors.py)
        *((401,) if spec.auth else ()),
        *((413,) if spec.body is not None else ()),
    }
    for status in sorted({*spec.errors, *automatic}):
        responses[str(status)] = {
            "description": _REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if status == 503:
            responses[str(status)]["headers"] = {"Retry-After": _RETRY_AFTER}
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


# What msgspec reads as a datetime or a time (it leaves both as bare strings in a schema, as
# the offset is optional): RFC 3339 without leap seconds or the year 0000, an offset or none.
# Days past a month's end are left out; 29 February is too, as most years have none.
_DAY = (
    "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    "|02-(0[1-9]|1[0-9]|2[0-8]))"
)
_TIME = (
    "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?"
)
_TYPED_STRINGS = {
    msgspec.inspect.DateTimeType: {"pattern": f"^(?!0000)[0-9]{{4}}-{_DAY}[Tt ]{_TIME}$"},
    msgspec.inspect.TimeType: {"pattern": f"^{_TIME}$"},
}


_NUL_AHEAD = "^(?=[^\\u0000]*$)"


def _constrain_strings(node: Any) -> None:
    """Say of every string without a format or enum that it holds no NUL (the API refuses it
    everywhere): its pattern, or a lookahead before the pattern it has."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not node.keys() & {"format", "enum"}:
            pattern = node.get("pattern")
            if pattern is None:
                node["pattern"] = _NO_NUL
            elif not pattern.startswith(_NUL_AHEAD):
                anchored = pattern.startswith("^")
                node["pattern"] = _NUL_AHEAD + (pattern[1:] if anchored else "[\\s\\S]*" + pattern)
        for value in node.values():
            _constrain_strings(value)
    elif isinstance(node, list):
        for item in node:
            _constrain_strings(item)


def _structs(types: list[type]) -> list[tuple[str, msgspec.inspect.StructType]]:
    """Every Struct the types use, nested ones included, with its component's name. The
    names come from msgspec's own helpers (private, but msgspec is pinned): two Structs of one
    name in different modules (LoginBody of two realms) get longer names there."""
    found = _json_schema._collect_component_types(msgspec.inspect.multi_type_info(types))
    names = _json_schema._build_name_map(found)
    return [
        (names[cls], info)
        for cls, info in found.items()
        if isinstance(info, msgspec.inspect.StructType)
    ]


def _typed_string(info: msgspec.inspect.Type) -> dict[str, Any] | None:
    if isinstance(info, msgspec.inspect.UnionType):
        for member in info.types:
            if (typed := _typed_string(member)) is not None:
                return typed
        return None
    return _TYPED_STRINGS.get(type(info))


def _complete_components(types: list[type]) -> None:
    """What msgspec's schemas leave out: a Struct's `schema_rules`
    (kernel.web.endpoints.exactly_one_of …) under its `allOf`, and the shape of its datetime
    and time fields."""
    for name, struct in _structs(types):
        component = _COMPONENTS.get(name)
        if component is None:
            continue
        rules = getattr(struct.cls, "schema_rules", None)
        if rules:
            component["allOf"] = [*component.get("allOf", []), *rules]
        for f in struct.fields:
            typed = _typed_string(f.type)
            prop = component.get("properties", {}).get(f.encode_name)
            if typed is None or prop is None:
                continue
            for branch in prop.get("anyOf", [prop]):
                if branch.get("type") == "string":
                    branch.update(typed)


def _realm_ids(path: str, realms: dict[str, Realm]) -> dict[str, Any] | None:
    """The id schema of the realm serving `path` (/v1/<realm>/…, or an analyst alias)."""
    parts = path.split("/")
    realm = realms.get(parts[2]) if len(parts) > 2 and parts[1] == "v1" else None
    if realm is None:
        realm = next((r for r in realms.values() if r.unprefixed_paths), None)
        if realm is None or not path.startswith("/v1/"):
            return None
    return _ID_SCHEMAS[realm.user_id_type]


def build_document(
    mounted: list[Mounted], realms: dict[str, Realm] | None = None
) -> dict[str, Any]:
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
    _complete_components(types)
    _constrain_strings([schemas, components])
    refs = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for m in mounted:
        operation = _operation(m.endpoint, m.path, refs, _realm_ids(m.path, realms or {}))
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
    served = {realm.name: realm for realm in request.app[REALMS]}
    return build_document(request.app[MOUNTED], served)
