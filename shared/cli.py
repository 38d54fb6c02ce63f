"""The admin command line, installed as `bnlab`: `bnlab tokens create|list|revoke`.

It talks to the database the settings name (BNLAB_DATABASE_URL, or the embedded SQLite file), so
run it with the same environment as the API. Only a new token goes to stdout, so that
`TOKEN=$(bnlab tokens create alice)` captures exactly the token; messages go to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.exc import OperationalError, ProgrammingError

from shared import tokens
from shared.config import get_settings
from shared.db import session_scope


def lifetime(text: str) -> timedelta:
    """`--expires`' value as a duration, or argparse's usage error naming what is expected."""
    try:
        return tokens.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def parser() -> argparse.ArgumentParser:
    """The `bnlab` argument parser."""
    root = argparse.ArgumentParser(prog="bnlab", description="bnlab administration")
    commands = root.add_subparsers(dest="command", required=True)
    token_parser = commands.add_parser("tokens", help="API tokens")
    actions = token_parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a token for NAME and print it on stdout")
    create.add_argument("name", metavar="NAME", help="the owner the token acts for")
    create.add_argument(
        "--expires",
        metavar="LIFETIME",
        type=lifetime,
        help="lifetime, e.g. 30d, 12h, 90m, 2w (default: never expires)",
    )
    create.add_argument(
        "--read-only", action="store_true", help="the token may read but change nothing"
    )
    actions.add_parser(
        "list", help="list tokens: id, owner, created, last used, expires, scope (no secrets)"
    )
    revoke = actions.add_parser("revoke", help="delete every token of NAME")
    revoke.add_argument("name", metavar="NAME")
    return root


def run_tokens(args: argparse.Namespace) -> int:
    """Carry out one `tokens` action; the exit status."""
    with session_scope(get_settings().resolved_database_url) as session:
        if args.action == "create":
            try:
                token = tokens.create(session, args.name, args.expires, args.read_only)
            except ValueError as exc:
                print(f"bnlab: {exc}", file=sys.stderr)
                return 2
            print(token)
            print(f"created a token for {args.name}; it is not shown again", file=sys.stderr)
        elif args.action == "list":
            for info in tokens.list_tokens(session):
                last = info.last_used_at.isoformat() if info.last_used_at else "never"
                expires = info.expires_at.isoformat() if info.expires_at else "never"
                print(
                    f"{info.id.hex}\t{info.owner}\t{info.created_at.isoformat()}\t{last}"
                    f"\t{expires}\t{info.scope}"
                )
        else:
            count = tokens.revoke(session, args.name)
            print(f"revoked {count} token(s) of {args.name}", file=sys.stderr)
            return 0 if count else 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bnlab` console script."""
    args = parser().parse_args(argv)
    try:
        return run_tokens(args)
    except (OperationalError, ProgrammingError) as exc:
        # Most often: the schema is not there yet.
        reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        print(f"bnlab: database error ({reason}); run `alembic upgrade head`?", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
