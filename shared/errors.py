"""Domain errors raised by the service layer; api/errors.py is the one place that turns them into
HTTP statuses, so the services speak of experiments, not of status codes."""

from __future__ import annotations


class DomainError(Exception):
    """Something the caller asked for that the domain refuses; the message is for the user."""


class NotFound(DomainError):
    """No such object, or not the caller's (the two are not told apart, on purpose)."""


class Conflict(DomainError):
    """The object is in a state that does not allow the request (cancel a finished experiment)."""


class InvalidInput(DomainError):
    """A request value the schema could not catch (an opaque cursor, say); `field` names it."""

    def __init__(self, field: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.field = field
