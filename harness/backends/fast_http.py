"""A lean HTTP/1.1 JSON client on asyncio protocols, for chat completions on plain-HTTP endpoints.

Why not only the `openai` SDK: it costs about 1 ms of CPU per request (request transformation,
httpx's connection pool, pydantic parsing), so one process tops out near 1,000 requests/s and a
fast local endpoint (ocx serve, vLLM, a mock) waits on the client. This client keeps idle
keep-alive connections in a deque and does little per request but write one buffer and parse
one JSON body. It speaks just what chat completions need: POST with a JSON body, Content-Length
or chunked responses, keep-alive, TLS when the URL is https.

Per request it avoids what asyncio's conveniences cost at thousands of requests a second: no
StreamReader (the response is parsed in `data_received` and handed over through one future), no
per-request timer (`asyncio.timeout` pushes and pops a handle on the loop's timer heap each time;
one sweep per client checks the deadlines of the requests in flight), and only the three headers
a 2xx answer needs are read.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections import deque
from urllib.parse import urlsplit

_HEAD_LIMIT = 64 * 1024  # as asyncio.StreamReader's default: a larger response head is an error
_FRAMING = re.compile(rb"\r\n(content-length|transfer-encoding|connection)[ \t]*:([^\r\n]*)")


class HTTPStatusError(Exception):
    """A non-2xx answer; `retryable` for 429 and 5xx (the server may succeed later);
    `retry_after` is the server's Retry-After header, as sent (or None)."""

    def __init__(self, status: int, message: str, retry_after: str | None = None):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.retryable = status == 429 or status >= 500
        self.retry_after = retry_after


class MalformedResponseError(ValueError):
    """A 2xx answer whose body is not the JSON it should be (garbage, truncated): worth a retry,
    since a proxy or an overloaded server hiccuping is the usual cause."""


def _error_message(status: int, raw: bytes) -> str:
    try:
        error = json.loads(raw).get("error", {})
        return error.get("message", "") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        return raw[:300].decode("utf-8", "replace")


def _all_headers(head: bytes) -> dict[str, str]:
    """Every header, names and values lowercased (only an error answer needs more than framing)."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {
        k.strip().lower(): v.strip().lower()
        for k, _, v in (ln.partition(":") for ln in lines if ln)
    }


class _Response:
    """One response being parsed: its status, head, and how its body is framed."""

    __slots__ = ("status", "head", "length", "chunked", "keep")

    def __init__(self, head: bytes):
        status_line, _, _ = head.partition(b"\r\n")
        self.status = int(status_line.split(b" ", 2)[1])
        self.head = head
        framing = {name: value.strip() for name, value in _FRAMING.findall(head.lower())}
        self.chunked = framing.get(b"transfer-encoding") == b"chunked"
        length = framing.get(b"content-length")
        self.length = int(length) if length is not None and not self.chunked else None
        # Without a length or chunks the body runs to the end of the connection (HTTP/1.0 style).
        self.keep = (
            framing.get(b"connection") != b"close"
            and not status_line.startswith(b"HTTP/1.0")
            and (self.chunked or self.length is not None)
        )


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `exchange` sends a request and waits for its whole response."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.response: _Response | None = None
        self.deadline = 0.0
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None:
            self._advance()

    def eof_received(self) -> bool:
        if self.waiter is not None and self.response is not None and not self.response.keep:
            self._finish(
                bytes(self.buffer), keep=False
            )  # the body ran to the end of the connection
        return False  # close the transport: connection_lost fails a response cut short

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or asyncio.IncompleteReadError(bytes(self.buffer), None))
        self.waiter = None

    def exchange(self, request: bytes, deadline: float) -> asyncio.Future:
        self.waiter = self.loop.create_future()
        self.response, self.deadline = None, deadline
        self.transport.write(
            request
        )  # no drain: a request is a few KB and the transport buffers it
        return self.waiter

    def fail(self, exc: BaseException) -> None:
        """End the exchange with `exc` and drop the connection (its state is unknown)."""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.waiter = None
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _advance(self) -> None:
        buffer = self.buffer
        if self.response is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _HEAD_LIMIT:
                    self.fail(asyncio.LimitOverrunError("response head over 64 KiB", len(buffer)))
                return
            try:
                self.response = _Response(bytes(buffer[:end]))
            except (ValueError, IndexError):
                self.fail(MalformedResponseError(f"not an HTTP response: {bytes(buffer[:200])!r}"))
                return
            del buffer[: end + 4]
        response = self.response
        if response.length is not None:
            if len(buffer) >= response.length:
                body = bytes(buffer[: response.length])
                del buffer[: response.length]
                self._finish(body, response.keep)
        elif response.chunked:
            try:
                parsed = _dechunk(buffer)
            except ValueError:
                self.fail(
                    MalformedResponseError(f"a malformed chunked body: {bytes(buffer[:200])!r}")
                )
                return
            if parsed is not None:
                body, used = parsed
                del buffer[:used]
                self._finish(body, response.keep)

    def _finish(self, body: bytes, keep: bool) -> None:
        waiter, self.waiter = self.waiter, None
        # Bytes past the response would be read as the next one's start: never reuse such a line.
        keep = keep and not self.buffer
        if not waiter.done():
            waiter.set_result((self.response, body, keep))


def _dechunk(buffer: bytearray) -> tuple[bytes, int] | None:
    """(body, bytes used) of a complete chunked body at the start of `buffer`; None if partial."""
    parts, at = [], 0
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
        at = line_end + 2
        if size == 0:
            while True:  # trailers up to the empty line
                line_end = buffer.find(b"\r\n", at)
                if line_end < 0:
                    return None
                empty, at = line_end == at, line_end + 2
                if empty:
                    return b"".join(parts), at
        if len(buffer) < at + size + 2:
            return None
        parts.append(bytes(buffer[at : at + size]))
        at += size + 2


class FastHTTPClient:
    """POSTs JSON to one server over a pool of at most `max_connections` keep-alive connections."""

    def __init__(self, base_url: str, *, api_key: str, timeout: float, max_connections: int):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"endpoint must be an http(s) URL, got {base_url!r}")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/")
        host_header = parts.netloc.rpartition("@")[2]
        self.headers = (
            f"Host: {host_header}\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
            f"Accept-Encoding: identity\r\nAuthorization: Bearer {api_key}\r\n"
            f"User-Agent: ocx\r\nConnection: keep-alive\r\n"
        )
        self.timeout = timeout
        self._heads: dict[str, bytes] = {}
        self._idle: deque[_Connection] = deque()
        self._busy: set[_Connection] = set()
        self._slots = asyncio.Semaphore(max_connections)
        self._sweep: asyncio.TimerHandle | None = None
        # Deadlines are checked this often, so a timeout fires at most this late (and 1 s at most).
        self._sweep_every = min(max(timeout / 10, 0.005), 1.0)

    async def post_json(self, path: str, payload: dict) -> dict:
        """POST `payload` to base path + `path`; the decoded JSON body of a 2xx answer."""
        return await self.post(
            path, (json.dumps(payload).encode("ascii"),)
        )  # ASCII-escaped: the C fast path

    async def post(self, path: str, body: tuple[bytes, ...]) -> dict:
        """POST a JSON body given as pieces (joined once, with the request head) to base path +
        `path`; the decoded JSON body of a 2xx answer."""
        head = self._heads.get(path)
        if head is None:
            head = self._heads[path] = (
                f"POST {self.prefix}{path} HTTP/1.1\r\n{self.headers}Content-Length: ".encode()
            )
        request = b"".join((head, b"%d\r\n\r\n" % sum(map(len, body)), *body))
        async with self._slots:
            connection = self._take_idle() or await self._connect()
            self._busy.add(connection)
            self._arm_sweep()
            try:
                response, raw, keep = await connection.exchange(
                    request, time.monotonic() + self.timeout
                )
            except BaseException:
                connection.close()  # state unknown (timeout, reset, cancel): never reuse it
                raise
            finally:
                self._busy.discard(connection)
            if keep and not connection.closed:
                self._idle.append(connection)
            else:
                connection.close()
        status = response.status
        if not 200 <= status < 300:
            raise HTTPStatusError(
                status, _error_message(status, raw), _all_headers(response.head).get("retry-after")
            )
        try:
            return json.loads(raw)
        except ValueError:
            raise MalformedResponseError(
                f"HTTP {status} with a body that is not JSON: {raw[:200]!r}"
            ) from None

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:  # the server may have closed it while it sat idle
                return connection
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await asyncio.wait_for(
            loop.create_connection(_Connection, self.host, self.port, ssl=self.ssl), self.timeout
        )
        return connection

    def _arm_sweep(self) -> None:
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(
                self._sweep_every, self._check_deadlines
            )

    def _check_deadlines(self) -> None:
        self._sweep = None
        now = time.monotonic()
        for connection in [c for c in self._busy if c.deadline <= now]:
            connection.fail(asyncio.TimeoutError(f"no complete answer within {self.timeout:g} s"))
        if self._busy:
            self._arm_sweep()

    async def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while self._idle:
            self._idle.pop().close()
