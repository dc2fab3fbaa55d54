"""``/docs``: the OpenAPI page, with Swagger UI's files pinned to one release and checked by the browser.

FastAPI's own page loads ``swagger-ui-dist@5`` from a CDN (whatever 5.x it serves that day) with no integrity check:
that script runs as the server's own page, where its requests pass the origin check as same-site, so a changed file
could clone or delete voices on a server without keys. Here the release is fixed and each file carries its SHA-384
(``integrity``): a file that is not the one pinned is refused by the browser. ReDoc's page (``/redoc``, the same
kind of CDN script) is off. The hashes are those of the files in the npm package ``swagger-ui-dist`` of that release
(``openssl dgst -sha384 -binary FILE | base64``); the CDN serves the package's files as they are.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.36.0/"
"""One release of Swagger UI's files (the npm package's folder on the CDN)."""
SCRIPT = ("swagger-ui-bundle.js", "sha384-fUpRgC19yPykTqzdrUbdAg8NTiu16NEKf9U12J+IJWCg8/1mEI8f2+PEIz60Wyd+")
STYLE = ("swagger-ui.css", "sha384-z/AtSaOHGn5MJ5auAHXUypohywlIWLBZo1jeGmhdpVIbCnFhxAH92cwdV41oyINc")


def add_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (the app is made with ``docs_url=None, redoc_url=None``)."""

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        spec = request.scope.get("root_path", "") + (app.openapi_url or "/openapi.json")
        return HTMLResponse(page(app.title, spec))

    # The server's pages (this one; the web page, whose icon Gradio's script sets only once it runs) name no icon as
    # they load, so the browser asked for /favicon.ico on every view: a 404 in its console, and at -v a "refused" line
    # in the server's log for each visitor. There is no icon.
    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)


def page(title: str, spec: str) -> str:
    """The page: Swagger UI's pinned files, each with its integrity hash, reading the spec at ``spec``."""
    from html import escape

    settings = json.dumps({"url": spec, "dom_id": "#swagger-ui", "deepLinking": True}).replace("<", "\\u003c")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)} - API</title>
<link rel="stylesheet" href="{SWAGGER_UI}{STYLE[0]}" integrity="{STYLE[1]}" crossorigin="anonymous">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{SWAGGER_UI}{SCRIPT[0]}" integrity="{SCRIPT[1]}" crossorigin="anonymous"></script>
<script>window.ui = SwaggerUIBundle({settings});</script>
</body>
</html>
"""
