"""A lean HTTP/1.1 JSON client on asyncio streams, for chat completions on plain-HTTP endpoints.

Why not only the `openai` SDK: it costs about 1 ms of CPU per request (request transformation,
httpx's connection pool, pydantic parsing), so one process tops out near 1,000 requests/s and a
fast local endpoint (ocx serve, vLLM, a mock) waits on the client. This client keeps idle
keep-alive connections in a deque and does nothing per request but write one buffer and parse
one JSON body (~0.1 ms). It speaks just what chat completions need: POST with a JSON body,
Content-Length or chunked responses, keep-alive, TLS when the URL is https.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import deque
from urllib.parse import urlsplit


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


async def _with_timeout(awaitable, seconds: float):
    # asyncio.timeout (3.11+) runs the coroutine in the current task; wait_for wraps it in a new
    # task per request, which costs more than the rest of the request's client-side work.
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


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
        self.headers = (f"Host: {host_header}\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
                        f"Accept-Encoding: identity\r\nAuthorization: Bearer {api_key}\r\n"
                        f"User-Agent: ocx\r\nConnection: keep-alive\r\n")
        self.timeout = timeout
        self._idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()
        self._slots = asyncio.Semaphore(max_connections)

    async def post_json(self, path: str, payload: dict) -> dict:
        """POST `payload` to base path + `path`; the decoded JSON body of a 2xx answer."""
        body = json.dumps(payload).encode("ascii")  # ASCII-escaped: the C fast path, no UTF-8 pass
        head = f"POST {self.prefix}{path} HTTP/1.1\r\n{self.headers}Content-Length: {len(body)}\r\n\r\n"
        async with self._slots:
            connection = self._idle.pop() if self._idle else await self._connect()
            try:
                status, raw, keep, headers = await _with_timeout(
                    self._exchange(connection, head.encode() + body), self.timeout)
            except BaseException:
                connection[1].close()  # state unknown (timeout, reset, cancel): never reuse it
                raise
            if keep:
                self._idle.append(connection)
            else:
                connection[1].close()
        if not 200 <= status < 300:
            raise HTTPStatusError(status, _error_message(status, raw), headers.get("retry-after"))
        try:
            return json.loads(raw)
        except ValueError:
            raise MalformedResponseError(f"HTTP {status} with a body that is not JSON: {raw[:200]!r}") from None

    async def _connect(self):
        return await asyncio.wait_for(asyncio.open_connection(self.host, self.port, ssl=self.ssl), self.timeout)

    async def _exchange(self, connection, request: bytes) -> tuple[int, bytes, bool, dict[str, str]]:
        reader, writer = connection
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip().lower() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if headers.get("transfer-encoding") == "chunked":
            raw = await _read_chunked(reader)
        elif "content-length" in headers:
            raw = await reader.readexactly(int(headers["content-length"]))
        else:  # HTTP/1.0 style: the body runs to the end of the connection
            return status, await reader.read(), False, headers
        keep = headers.get("connection") != "close" and not lines[0].startswith("HTTP/1.0")
        return status, raw, keep, headers

    async def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # skip trailers up to the empty line
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
