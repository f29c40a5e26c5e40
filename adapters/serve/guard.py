"""Checks made on a request's headers before any of its body is read: key, size, read timeout.

`RequestGuard` is plain ASGI middleware in front of the FastAPI app. It refuses a missing or
wrong API key (401) and a declared `Content-Length` over the cap (413) from the headers alone,
then reads the body itself, counting bytes as they arrive, so a chunked body without a length
is stopped as soon as it passes the cap and no more than the cap is ever held in memory. A
client that pauses longer than the read timeout in the middle of its body gets a 408 and the
connection is closed.

A 401 or 413 is answered at once, while the client may still be sending. Closing the socket
with its data unread would make the kernel reset the connection, and the client could lose the
answer; so, like nginx's lingering close, the server goes on reading and discarding the rest
(uvicorn drops body bytes that arrive after the response, never buffering them) for at most
the read timeout (`server.with_header_timeout`), then closes.

The app then receives the body as one message, and later `receive()` calls reach the server
as usual (the app still learns of a client disconnecting).
"""

from __future__ import annotations

import asyncio
import hmac

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocx.adapters.serve.protocol import ApiError

PROTECTED_PREFIX = "/v1/"
"""Paths that need a key; /health and the chat page stay open (probes, the page asks for one)."""


class _Disconnected(Exception):
    pass


def check_api_keys(keys: tuple[str, ...]) -> None:
    """Refuse keys no client could send (empty, whitespace, control or non-ASCII characters)."""
    for key in keys:
        if not key.strip():
            raise ValueError(
                "an API key is empty or only whitespace; it would let an empty bearer in"
            )
        if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
            raise ValueError(
                f"API key {key[:4]}... holds whitespace, control or non-ASCII characters; "
                "HTTP clients cannot send it in an Authorization header"
            )


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: tuple[str, ...],
        max_request_bytes: int,
        read_timeout: float,
    ):
        check_api_keys(api_keys)
        self.app = app
        self.keys = [k.encode() for k in api_keys]
        self.max_request_bytes = max_request_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_headers(scope, Headers(scope=scope))
            body = await self._read_body(receive)
        except ApiError as error:
            close = {"connection": "close"} if error.status == 408 else {}
            response = JSONResponse(error.body(), status_code=error.status, headers=close)
            await response(scope, receive, send)
            return
        except _Disconnected:
            return
        await self.app(scope, _replay(body, receive), send)

    def _check_headers(self, scope: Scope, headers: Headers) -> None:
        if (
            self.keys
            and scope["path"].startswith(PROTECTED_PREFIX)
            and not self._authorized(headers)
        ):
            raise ApiError(
                401,
                "Incorrect or missing API key. Send `Authorization: Bearer <key>`.",
                code="invalid_api_key",
            )
        length = headers.get("content-length")
        if length is not None and (
            not length.strip().isdigit() or int(length) > self.max_request_bytes
        ):
            raise self._too_large()

    def _authorized(self, headers: Headers) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        given_bytes = given.strip().encode("latin-1")
        # Compare against every key, always, so timing says nothing about which one is close.
        ok = False
        for key in self.keys:
            ok |= hmac.compare_digest(given_bytes, key)
        return ok and scheme.lower() == "bearer"

    def _too_large(self) -> ApiError:
        return ApiError(
            413,
            f"the request body is larger than this server's limit of {self.max_request_bytes} "
            "bytes (--max-request-bytes)",
            code="request_too_large",
        )

    async def _read_body(self, receive: Receive) -> bytes:
        body = bytearray()
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except asyncio.TimeoutError:
                raise ApiError(
                    408,
                    f"the request body stalled for more than {self.read_timeout:g} s "
                    "(--read-timeout)",
                    code="request_timeout",
                ) from None
            if message["type"] == "http.disconnect":
                raise _Disconnected
            body += message.get("body", b"")
            if len(body) > self.max_request_bytes:
                raise self._too_large()
            if not message.get("more_body", False):
                return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the whole body first, then passes through to the server's."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
