"""Swagger UI and ReDoc from assets the API serves itself: no CDN, so they work offline."""

from __future__ import annotations

from pathlib import Path

import fastapi_standalone_docs
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

# A packaged copy of the swagger-ui-dist and redoc bundles (PyPI: fastapi-standalone-docs).
ASSETS = Path(fastapi_standalone_docs.__file__).parent / "static"


def mount_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc with local scripts and styles."""
    app.mount("/static/docs", StaticFiles(directory=ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url="/static/docs/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger/swagger-ui.css",
            swagger_favicon_url="/static/docs/redoc/logo-mini.svg",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url="/static/docs/redoc/redoc.standalone.js",
            redoc_favicon_url="/static/docs/redoc/logo-mini.svg",
            with_google_fonts=False,
        )
