"""GET /docs: the REST API's documentation, Swagger UI over /openapi.json, with its assets
served from api/static/docs/ (vendored from the npm package swagger-ui-dist; version and
license in the README there). Nothing is loaded from another origin."""

from __future__ import annotations

from aiohttp import web

from api.routes.pages import (
    STATIC_DIR,
    content_type,
    file_response,
    file_responses,
    name_parameter,
    named_file,
)
from kernel.web.endpoints import endpoint

routes = web.RouteTableDef()

DOCS_DIR = STATIC_DIR / "docs"
FILES = {
    name: DOCS_DIR / name
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "docs.js", "docs.css")
}
# Swagger UI sets style attributes, and its stylesheet inlines its icons as data: URIs.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline';"
    " script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none';"
    " frame-ancestors 'none'; form-action 'self'"
)


@endpoint(
    routes,
    "GET",
    "/docs",
    summary="The REST API's documentation (Swagger UI over /openapi.json)",
    tag="web",
    auth=False,
    extra={"responses": file_responses(["text/html"])},
)
async def docs_page(request: web.Request) -> web.Response:
    return await file_response(DOCS_DIR / "index.html", headers={"Content-Security-Policy": _CSP})


@endpoint(
    routes,
    "GET",
    "/docs/{name}",
    summary="A file of the documentation page (Swagger UI's bundle and stylesheet)",
    tag="web",
    auth=False,
    extra={
        "parameters": name_parameter(FILES, "the file"),
        "responses": file_responses([content_type(p) for p in FILES.values()], (404,)),
    },
)
async def docs_file(request: web.Request) -> web.Response:
    return await named_file(request, FILES, cache="public, max-age=3600")
