"""The OpenAPI document tells what the middlewares do: who needs a token, which errors come back.

Authentication and the body cap are middlewares (they fail closed for every route), so FastAPI
cannot see them; this adds them to the generated document, from the same list of public routes
the middleware uses, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.auth import COOKIE_NAME, SAFE_METHODS, is_public
from shared.schemas import ErrorMessage

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SECURITY_SCHEMES = {
    "bearerToken": {"type": "http", "scheme": "bearer", "description": "`bnlab tokens create`"},
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME},
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorMessage"}


def error(description: str) -> dict[str, Any]:
    """A response object whose body is an ErrorMessage."""
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def annotate(schema: dict[str, Any]) -> None:
    """Add security schemes, 400/401/403/413 and error bodies to the operations they concern."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    components.setdefault("schemas", {})["ErrorMessage"] = ErrorMessage.model_json_schema()
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if not is_public(method, path):
                operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
                responses.setdefault("401", error("Missing, invalid or revoked token"))
                if method.upper() not in SAFE_METHODS:
                    responses.setdefault("403", error("Cookie-authenticated, from another origin"))
            if "requestBody" in operation:
                responses.setdefault("413", error("Body larger than BNLAB_MAX_BODY_BYTES"))
                # FastAPI's answer to a body json cannot even decode (not UTF-8, a number with
                # thousands of digits); JSON that merely does not parse is a 422.
                responses.setdefault("400", error("Body is not decodable JSON"))
            for code in ("404", "409"):
                if code in responses and "content" not in responses[code]:
                    responses[code] = error(responses[code].get("description") or "Not found")


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return the annotated document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            annotate(generate())
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
