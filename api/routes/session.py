"""Logging in from a browser: the token goes into an HttpOnly, SameSite=Strict cookie.

The dashboard cannot send an Authorization header on a plain navigation, so a session is simply
the token kept in a cookie the page's scripts cannot read. Cookie-authenticated requests that
change state are protected against CSRF by SameSite=Strict (see api.auth). POST and DELETE
/session are public (api.auth.PUBLIC_ROUTES): they are how a caller gets or drops credentials.
"""

from __future__ import annotations

import html
import json
import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.auth import COOKIE_NAME, LOCAL_OWNER, authenticate, header_map, same_origin
from api.deps import CurrentOwner, SettingsDep
from api.errors import json_safe
from shared.schemas import SessionCreate, SessionPublic

router = APIRouter(tags=["session"])

FORM = "application/x-www-form-urlencoded"
# Documented by hand: FastAPI's own form parsing would need python-multipart for one field.
# x-raw-body: the route reads the body itself, so FastAPI's 400 never comes (api.openapi).
BODY_DOC = {
    "x-raw-body": True,
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SessionCreate.model_json_schema()},
            FORM: {"schema": SessionCreate.model_json_schema()},
        },
    },
}
ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorMessage"}}}
INVALID_JSON = {
    "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
}


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only, never another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        # Browsers drop tabs and newlines from URLs: "/\t/evil.test" would become "//evil.test".
        return "/"
    return target


def login_page(target: str, message: str = "", status_code: int = 200) -> HTMLResponse:
    """The login form, self-contained (no scripts, no external styles)."""
    note = f'<p class="error">{html.escape(message)}</p>' if message else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bnlab: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
input{{width:100%;padding:.5rem;margin:.5rem 0;box-sizing:border-box;font-family:monospace}}
button{{padding:.5rem 1.5rem}}.error{{color:#b00020}}</style></head>
<body><h1>bnlab</h1>{note}
<form method="post" action="/session">
<label for="token">API token (<code>bnlab tokens create NAME</code>)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{html.escape(target)}">
<button type="submit">Log in</button></form></body></html>"""
    return HTMLResponse(page, status_code=status_code)


@router.get("/login", include_in_schema=False)
def login(
    next_path: Annotated[str | None, Query(alias="next", max_length=2048)] = None,
) -> Response:
    """The login form; it posts to /session and comes back to `next`."""
    return login_page(safe_next(next_path))


async def read_login(request: Request) -> tuple[dict[str, Any] | None, bool]:
    """The submitted fields (None: not a JSON object) and whether they came from a form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if content_type == FORM:
        return dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"))), True
    try:
        fields = json.loads(body)
    except ValueError:
        return None, False
    return (fields if isinstance(fields, dict) else None), False


def unprocessable(detail: list[dict[str, Any]]) -> JSONResponse:
    """A 422 in FastAPI's shape."""
    return JSONResponse({"detail": json_safe(detail)}, status.HTTP_422_UNPROCESSABLE_CONTENT)


@router.post(
    "/session",
    response_model=SessionPublic,
    responses={
        303: {"description": "Form login: on to `next`"},
        401: {
            "description": "Unknown or revoked token (a form gets the login page again)",
            "content": {**ERROR_JSON, "text/html": {"schema": {"type": "string"}}},
        },
        403: {"description": "Posted from another origin", "content": ERROR_JSON},
        422: {"description": "No token, or not a JSON object or form", "content": INVALID_JSON},
    },
    openapi_extra=BODY_DOC,
)
async def create_session(request: Request, settings: SettingsDep) -> Response:
    """Log in with a token (JSON or form); sets the session cookie."""
    fields, from_form = await read_login(request)
    if fields is None:
        message = "expected a JSON object with 'token' (or a form)"
        return unprocessable([{"loc": ["body"], "msg": message, "type": "model_attributes_type"}])
    target = safe_next(fields.pop("next", None)) if from_form else "/"
    if not same_origin(header_map(request.scope)):
        # A login forced from another site would put the victim in the attacker's account.
        return JSONResponse({"detail": "cross-origin login refused"}, status.HTTP_403_FORBIDDEN)
    try:
        token = SessionCreate.model_validate(fields).token
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        return unprocessable([{**e, "loc": ["body", *e["loc"]]} for e in errors])
    owner = LOCAL_OWNER
    if settings.auth_enabled:
        found = await run_in_threadpool(authenticate, settings, token)
        if found is None:
            if from_form:
                return login_page(target, "That token is not valid.", status.HTTP_401_UNAUTHORIZED)
            return JSONResponse(
                {"detail": "invalid or revoked token"},
                status.HTTP_401_UNAUTHORIZED,
                headers={"WWW-Authenticate": 'Bearer realm="bnlab", error="invalid_token"'},
            )
        owner = found
    response: Response = (
        RedirectResponse(target, status.HTTP_303_SEE_OTHER)
        if from_form
        else JSONResponse(SessionPublic(owner=owner, auth=settings.auth_enabled).model_dump())
    )
    if settings.auth_enabled:
        response.set_cookie(
            COOKIE_NAME,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_session(request: Request) -> Response:
    """Log out: the cookie is dropped (the token itself stays valid until revoked)."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/session", response_model=SessionPublic)
def get_session(owner: CurrentOwner, settings: SettingsDep) -> SessionPublic:
    """Who this request acts for (from the bearer token or the session cookie)."""
    return SessionPublic(owner=owner, auth=settings.auth_enabled)
