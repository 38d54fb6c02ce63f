"""API tokens: made by an admin (`bnlab tokens create NAME`), checked on every request.

A token reads `bnlab_<id>_<secret>`. The id (the row's UUID, in hex) is not secret: it is how the
row is found, so no query ever compares a secret. The secret is 32 bytes from `secrets`, and only
its SHA-256 is stored. A slow password hash (bcrypt, scrypt, argon2) buys nothing here: it exists
to make guessing a low-entropy password from a stolen hash expensive, and a 256-bit random secret
cannot be guessed however fast the hash is. It would cost tens of milliseconds of CPU on every
request instead.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

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


@dataclass(frozen=True)
class TokenInfo:
    """What `tokens list` shows: never the secret nor its hash."""

    id: uuid.UUID
    owner: str
    created_at: datetime
    last_used_at: datetime | None


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


def create(session: Session, owner: str) -> str:
    """Store a new token for `owner` and return it; this is the only time it is ever seen."""
    if not OWNER_PATTERN.fullmatch(owner):
        raise ValueError(f"owner name must match {NAME_PATTERN}")
    token_id = uuid.uuid4()
    secret = secrets.token_urlsafe(32)
    session.add(ApiToken(id=token_id, owner=owner, token_hash=digest(secret), created_at=utcnow()))
    session.commit()
    return f"{PREFIX}{token_id.hex}_{secret}"


def list_tokens(session: Session) -> list[TokenInfo]:
    """Every token, oldest first."""
    rows = session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id))
    return [TokenInfo(r.id, r.owner, r.created_at, r.last_used_at) for r in rows]


def revoke(session: Session, owner: str) -> int:
    """Delete every token of `owner`; how many there were."""
    result = session.execute(delete(ApiToken).where(ApiToken.owner == owner))
    session.commit()
    return result.rowcount if isinstance(result, CursorResult) else 0


def verify(session: Session, token: str) -> str | None:
    """The owner a token stands for, or None; the hashes are compared in constant time."""
    parts = split(token)
    if parts is None:
        return None
    token_id, secret = parts
    row = session.get(ApiToken, token_id)
    expected = row.token_hash if row is not None else digest("")
    # compare_digest on equal-length hex strings: no early exit that would time the match.
    if not hmac.compare_digest(expected, digest(secret)) or row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        row.last_used_at = now
        session.commit()
    return row.owner
