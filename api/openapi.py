"""The OpenAPI document: short stable operation ids, and what the middlewares do.

Operation ids are part of the API's compatibility promise (generated clients name their functions
after them). Every route gets `{tag}-{action}` from `operation_id` below, with no edit: the
route's first tag, then its name (the handler's name unless `name=` is given) without the words
that repeat the tag and without a leading `get_` when something follows it. `list_experiments`
under tag `experiments` is `experiments-list`, `get_metrics` under `runs` is `runs-metrics`, a
plot `loss` is `plots-loss`. Two routes with one id stop the app at start-up.

Authentication and the body cap are middlewares (they fail closed for every route), so FastAPI
cannot see them; this adds them to the generated document, from the same list of public routes
the middleware uses, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.auth import COOKIE_NAME, SAFE_METHODS, is_public
from shared.schemas import ErrorMessage

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SECURITY_SCHEMES = {
    "bearerToken": {"type": "http", "scheme": "bearer", "description": "`bnlab tokens create`"},
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME},
}
RAW_BODY = "x-raw-body"
ERROR_REF = {"$ref": "#/components/schemas/ErrorMessage"}
VALIDATION_REF = {"$ref": "#/components/schemas/HTTPValidationError"}


def operation_id(route: APIRoute) -> str:
    """`{tag}-{action}`, e.g. `experiments-list`, `runs-metrics`, `plots-loss`."""
    tag = str(route.tags[0]) if route.tags else "api"
    repeats = {tag, tag.removesuffix("s")}
    words = [w for w in route.name.lower().split("_") if w and w not in repeats]
    if len(words) > 1 and words[0] == "get":
        words = words[1:]
    return "-".join([tag.replace("_", "-"), *words])


def check_operation_ids(schema: dict[str, Any]) -> None:
    """Refuse a document with two operations under one id (a generated client would lose one)."""
    seen: dict[str, str] = {}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in HTTP_METHODS or "operationId" not in operation:
                continue
            where, found = f"{method.upper()} {path}", operation["operationId"]
            if found in seen:
                raise RuntimeError(
                    f"operation id {found!r} of {where} is {seen[found]}'s too: "
                    "give one of the routes another name="
                )
            seen[found] = where


def error(description: str) -> dict[str, Any]:
    """A response object whose body is an ErrorMessage."""
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def can_be_invalid(operation: dict[str, Any]) -> bool:
    """Whether a request can fail validation: a body, or a parameter that is more than a string."""
    if "requestBody" in operation:
        return True
    plain = {"type": "string"}
    return any(
        {k: v for k, v in p.get("schema", {}).items() if k != "title"} != plain
        for p in operation.get("parameters", [])
    )


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
            # A route that reads its body itself says so (x-raw-body): FastAPI never decodes it.
            if "requestBody" in operation and not operation.pop(RAW_BODY, False):
                # FastAPI's answer to a body json cannot even decode (not UTF-8, a number with
                # thousands of digits); JSON that merely does not parse is a 422.
                responses.setdefault("400", error("Body is not decodable JSON"))
            default_422 = responses.get("422", {}).get("description") == "Validation Error"
            if default_422 and not can_be_invalid(operation):
                # FastAPI documents a 422 for any route with parameters, even plain strings.
                del responses["422"]
            if "422" in responses and "content" not in responses["422"]:
                # Every 422 of this API is FastAPI-shaped: {"detail": [{loc, msg, type}, ...]}.
                responses["422"]["content"] = {"application/json": {"schema": VALIDATION_REF}}
            for code in ("404", "409"):
                if code in responses and "content" not in responses[code]:
                    responses[code] = error(responses[code].get("description") or "Not found")


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return the annotated document; check the operation ids first."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            check_operation_ids(document)
            annotate(document)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
