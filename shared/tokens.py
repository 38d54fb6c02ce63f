"""API tokens: made by an admin (`bnlab tokens create NAME`), checked on every request.

A token reads `bnlab_<id>_<secret>`. The id (the row's UUID, in hex) is not secret: it is how the
row is found, so no query ever compares a secret. The secret is 32 bytes from `secrets`, and only
its SHA-256 is stored. A slow password hash (bcrypt, scrypt, argon2) buys nothing here: it exists
to make guessing a low-entropy password from a stolen hash expensive, and a 256-bit random secret
cannot be guessed however fast the hash is. It would cost tens of milliseconds of CPU on every
request instead.

A token may expire (`expires_at`) and may be read-only (`read_only`: the API refuses it anything
but GET, HEAD and OPTIONS). None of these functions commits: the caller's scope does.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from shared.models import ApiToken, utcnow
from shared.spec import NAME_PATTERN

PREFIX = "bnlab_"
# Owner names share the spec's safe alphabet: they are shown in listings and logs.
OWNER_PATTERN = re.compile(NAME_PATTERN)
# Writing last_used_at on every request would turn every read into a write.
TOUCH_EVERY = timedelta(minutes=1)
# Far longer than any real token; anything longer is refused before it is hashed.
MAX_TOKEN_CHARS = 200
# `--expires 30d`, `12h`, `90m`: a number and a unit.
DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Scope(StrEnum):
    """What a token may do."""

    read_write = "read-write"
    read_only = "read-only"


class Refusal(StrEnum):
    """Why a token was not accepted."""

    invalid = "invalid or revoked token"
    expired = "token expired"


@dataclass(frozen=True)
class Principal:
    """Who a valid token acts for, what it may do and until when."""

    owner: str
    read_only: bool
    expires_at: datetime | None


@dataclass(frozen=True)
class TokenInfo:
    """What `tokens list` shows: never the secret nor its hash."""

    id: uuid.UUID
    owner: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    scope: Scope


def digest(secret: str) -> str:
    """The stored form of a secret: SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def split(token: str) -> tuple[uuid.UUID, str] | None:
    """The (id, secret) a token is made of, or None if it is not shaped like one of ours."""
    if len(token) > MAX_TOKEN_CHARS or not token.startswith(PREFIX):
        return None
    token_id, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or not secret or len(token_id) != 32:
        return None
    try:
        return uuid.UUID(hex=token_id), secret
    except ValueError:
        return None


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` as a timedelta; ValueError for anything else."""
    match = DURATION.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"expected a lifetime like 30d, 12h, 90m or 2w, not {text!r}")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def create(
    session: Session, owner: str, expires_in: timedelta | None = None, read_only: bool = False
) -> str:
    """Store a new token for `owner` and return it; this is the only time it is ever seen."""
    if not OWNER_PATTERN.fullmatch(owner):
        raise ValueError(f"owner name must match {NAME_PATTERN}")
    token_id = uuid.uuid4()
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        ApiToken(
            id=token_id,
            owner=owner,
            token_hash=digest(secret),
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
            read_only=read_only,
        )
    )
    session.flush()
    return f"{PREFIX}{token_id.hex}_{secret}"


def list_tokens(session: Session) -> list[TokenInfo]:
    """Every token, oldest first."""
    rows = session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id))
    return [
        TokenInfo(
            r.id,
            r.owner,
            r.created_at,
            r.last_used_at,
            r.expires_at,
            Scope.read_only if r.read_only else Scope.read_write,
        )
        for r in rows
    ]


def revoke(session: Session, owner: str) -> int:
    """Delete every token of `owner`; how many there were."""
    result = session.execute(delete(ApiToken).where(ApiToken.owner == owner))
    return result.rowcount if isinstance(result, CursorResult) else 0


def check(session: Session, token: str) -> Principal | Refusal:
    """Who a token acts for, or why not; the hashes are compared in constant time.

    Refreshes last_used_at at most once a minute (the caller commits).
    """
    parts = split(token)
    if parts is None:
        return Refusal.invalid
    token_id, secret = parts
    row = session.get(ApiToken, token_id)
    expected = row.token_hash if row is not None else digest("")
    # compare_digest on equal-length hex strings: no early exit that would time the match.
    if not hmac.compare_digest(expected, digest(secret)) or row is None:
        return Refusal.invalid
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        return Refusal.expired
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        row.last_used_at = now
    return Principal(row.owner, row.read_only, row.expires_at)


def verify(session: Session, token: str) -> str | None:
    """The owner a valid token stands for, or None."""
    found = check(session, token)
    return found.owner if isinstance(found, Principal) else None
