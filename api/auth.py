"""Who is asking: bearer tokens (or the login cookie holding one), checked before any route runs.

The check is an ASGI middleware rather than a dependency so that it fails closed: a route, page
or static mount added later is protected without having to ask for it. Only the paths below are
public. The routes' dependency (api.deps.CurrentOwner) reads the owner the middleware found.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import threading
import time
import urllib.parse
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api import ratelimit
from shared import tokens
from shared.config import Settings, get_settings
from shared.db import get_sessionmaker
from shared.models import utcnow
from shared.tokens import Principal, Refusal

log = logging.getLogger(__name__)

LOCAL_OWNER = "local"
COOKIE_NAME = "bnlab_token"
# Probes for orchestrators, and the docs, which hold nothing but the schema.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/redoc", "/openapi.json", "/login"})
PUBLIC_PREFIXES = ("/static/docs/",)
# Logging in and out: what a caller without a (valid) token must be able to do.
PUBLIC_ROUTES = frozenset({("POST", "/session"), ("DELETE", "/session")})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_public(method: str, path: str) -> bool:
    """Whether a request may go through without a token."""
    return (
        path in PUBLIC_PATHS
        or path.startswith(PUBLIC_PREFIXES)
        or (method.upper(), path) in PUBLIC_ROUTES
    )


def authenticate(settings: Settings, token: str) -> Principal | Refusal:
    """Who `token` acts for, or why not (blocking: runs in the thread pool)."""
    session = get_sessionmaker(settings.resolved_database_url)()
    try:
        found = tokens.check(session, token)
        session.commit()  # last_used_at, refreshed at most once a minute
        return found
    finally:
        session.close()


class TokenCache:
    """Tokens found valid in the last `ttl_s` seconds, so most requests skip the database.

    Keyed by the token's SHA-256, never the token. Only valid tokens are kept, and their expiry is
    checked on every hit, so the cache can only delay a revocation, by at most `ttl_s` on each
    API process (BNLAB_TOKEN_CACHE_S; 0 turns the cache off).
    """

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self.entries: dict[str, tuple[float, Principal]] = {}
        self.lock = threading.Lock()

    def get(self, key: str, ttl_s: float) -> Principal | Refusal | None:
        """The cached answer for a token, or None when it must be checked again."""
        entry = self.entries.get(key)
        if entry is None or time.monotonic() - entry[0] > ttl_s:
            return None
        principal = entry[1]
        if principal.expires_at is not None and principal.expires_at <= utcnow():
            return Refusal.expired
        return principal

    def put(self, key: str, principal: Principal) -> None:
        with self.lock:
            if len(self.entries) >= self.MAX_ENTRIES:
                self.entries.clear()
            self.entries[key] = (time.monotonic(), principal)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


token_cache = TokenCache()


async def principal_for(settings: Settings, token: str) -> Principal | Refusal:
    """Who `token` acts for: from the cache when it was checked a moment ago."""
    ttl_s = settings.token_cache_s
    key = hashlib.sha256(token.encode()).hexdigest() if ttl_s > 0 else ""
    if ttl_s > 0:
        cached = token_cache.get(key, ttl_s)
        if cached is not None:
            return cached
    found = await run_in_threadpool(authenticate, settings, token)
    if ttl_s > 0 and isinstance(found, Principal):
        token_cache.put(key, found)
    return found


def header_map(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name; repeated Cookie headers are joined."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = (
            f"{headers[name]}; {value}" if name == "cookie" and name in headers else value
        )
    return headers


def credentials(headers: dict[str, str]) -> tuple[str | None, bool]:
    """The token a request carries and whether it came in the cookie; the header wins."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        return (value.strip() or None) if scheme.lower() == "bearer" else None, False
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE_NAME and value:
            return value, True
    return None, False


def same_origin(headers: dict[str, str]) -> bool:
    """False only when the browser says the request comes from another origin (or site)."""
    # Fetch metadata, sent by every current browser: refuses even when Origin is left out.
    if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return False
    origin = headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urllib.parse.urlsplit(origin).netloc == headers.get("host")


def login_link(path: str) -> str:
    """/login, coming back to `path` afterwards."""
    return "/login?" + urllib.parse.urlencode({"next": path})


class AuthMiddleware:
    """Sets scope['state']['owner'] for authenticated requests and answers 401 for the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            # The API serves no websockets; refuse rather than pass anything unchecked.
            await send({"type": "websocket.close", "code": 1008})
            return
        settings = get_settings()
        state = scope.setdefault("state", {})
        method, path = scope["method"], scope["path"]
        if not settings.auth_enabled:
            # One user on one machine (or a deployment that turned tokens off): no limits.
            state["owner"] = LOCAL_OWNER
            await self.app(scope, receive, send)
            return
        if is_public(method, path):
            if not await within_limits(scope, send, settings, None):
                return
            await self.app(scope, receive, send)
            return
        headers = header_map(scope)
        token, via_cookie = credentials(headers)
        found = await principal_for(settings, token) if token else None
        if not isinstance(found, Principal):
            await unauthorized(scope, send, headers, found)
            return
        # Requests that change state and are authenticated by the cookie are protected against
        # CSRF by its SameSite=Strict: browsers never attach it to a request another site starts.
        # "Site" spans sibling subdomains, though, so a cross-origin Origin is refused as well.
        if via_cookie and method not in SAFE_METHODS and not same_origin(headers):
            await respond(send, 403, {"detail": "cross-origin request refused"})
            return
        if found.read_only and method not in SAFE_METHODS:
            detail = "this token is read-only: it may not change anything"
            await respond(send, 403, {"detail": detail})
            return
        state["owner"] = found.owner
        state["read_only"] = found.read_only
        if not await within_limits(scope, send, settings, found.owner):
            return
        await self.app(scope, receive, send)


async def within_limits(scope: Scope, send: Send, settings: Settings, owner: str | None) -> bool:
    """True if the request is within its rate limit; otherwise answers 429 and returns False."""
    client = scope["client"][0] if scope.get("client") else "unknown"
    wait = await ratelimit.retry_after(settings, scope["method"], scope["path"], owner, client)
    if wait is None:
        return True
    detail = f"too many requests: try again in {wait} s"
    await respond(send, 429, {"detail": detail}, {"Retry-After": str(wait)})
    return False


async def respond(
    send: Send,
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
    html_page: bool = False,
) -> None:
    """Send a whole response: JSON, or an HTML page."""
    payload = body.encode() if html_page else json.dumps(body).encode()
    content_type = "text/html; charset=utf-8" if html_page else "application/json"
    raw = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(payload))]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def challenge(refusal: Refusal | None) -> str:
    """The WWW-Authenticate header of a 401 (RFC 6750)."""
    if refusal is None:
        return 'Bearer realm="bnlab"'
    return f'Bearer realm="bnlab", error="invalid_token", error_description="{refusal}"'


async def unauthorized(
    scope: Scope, send: Send, headers: dict[str, str], refusal: Refusal | None
) -> None:
    """401 with a Bearer challenge; a browser asking for a page also gets a way to log in."""
    reply = {"WWW-Authenticate": challenge(refusal)}
    detail = str(refusal) if refusal is not None else "missing bearer token"
    if "text/html" not in headers.get("accept", "") or scope["method"] != "GET":
        await respond(send, 401, {"detail": detail}, reply)
        return
    link = html.escape(login_link(scope["path"]))
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0; url={link}"><title>bnlab: log in</title>'
        f'</head><body><p>{detail}: <a href="{link}">log in</a></p></body></html>'
    )
    await respond(send, 401, page, reply, html_page=True)
