"""Request body size cap: 413 before a large body is read, chunked or not.

A Content-Length over the cap is refused at once. A body without one (Transfer-Encoding: chunked)
is counted as it arrives and refused as soon as it passes the cap, so no handler ever buffers more
than BNLAB_MAX_BODY_BYTES of it.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import respond
from shared.config import get_settings


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the body passes the cap.

    An HTTPException, because FastAPI turns any other error raised while it reads a body into a
    400; this one it passes on to its handler, which answers 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"request body larger than {limit} bytes (BNLAB_MAX_BODY_BYTES)",
        )


class BodyLimitMiddleware:
    """Refuse request bodies larger than `max_bytes` (default: the settings' max_body_bytes)."""

    def __init__(self, app: ASGIApp, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes if self.max_bytes is not None else get_settings().max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await respond(send, 413, {"detail": BodyTooLarge(limit).detail})
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as exc:
            # Reached here only when no exception handler answered (a plain ASGI app inside).
            if started:
                raise
            await respond(send, 413, {"detail": exc.detail})
