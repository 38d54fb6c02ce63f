"""Validation errors that can always be written as JSON.

Python's json module reads the literals NaN, Infinity and -Infinity, so a request may carry them;
the spec refuses them, and FastAPI's stock 422 handler then echoes the offending input back, which
strict JSON cannot encode: the client got a 500 instead of a 422 naming the field.
"""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi import Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from shared.errors import Conflict, DomainError, InvalidInput, NotFound

HTTP_METHODS = {"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"}


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by its JSON-ish spelling, as a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 in FastAPI's usual shape (loc, msg, type, input), with the input made encodable."""
    assert isinstance(exc, RequestValidationError)
    detail = json_safe(jsonable_encoder(exc.errors()))
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail}
    )


def documented_methods(document: dict[str, Any], path: str) -> set[str]:
    """The methods the OpenAPI document lists for the path template `path` falls under."""
    for template, item in document.get("paths", {}).items():
        pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods = {m.upper() for m in item if m.upper() in HTTP_METHODS}
            return methods | {"HEAD"} if "GET" in methods else methods
    return set()


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's usual answer, but a 405's Allow lists every method the path serves.

    Starlette fills Allow from the first route whose path matches, so GET and POST on one path
    (two routes) advertised only one of them.
    """
    assert isinstance(exc, HTTPException)
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        allowed = documented_methods(request.app.openapi(), request.url.path)
        if allowed:
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))}
    return await http_exception_handler(request, exc)


# The one place where the domain's refusals become HTTP statuses.
DOMAIN_STATUSES: dict[type[DomainError], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    InvalidInput: status.HTTP_422_UNPROCESSABLE_CONTENT,
}


async def domain_error(request: Request, exc: Exception) -> JSONResponse:
    """A service's DomainError as `{"detail": ...}` with its status (422s in FastAPI's shape)."""
    assert isinstance(exc, DomainError)
    code = next(c for kind, c in DOMAIN_STATUSES.items() if isinstance(exc, kind))
    if isinstance(exc, InvalidInput):
        detail: Any = [{"loc": list(exc.field), "msg": str(exc), "type": "value_error"}]
    else:
        detail = str(exc)
    return JSONResponse(status_code=code, content={"detail": detail})
