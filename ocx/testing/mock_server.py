"""A small OpenAI-compatible chat completions server for tests and client benchmarks.

Written on raw asyncio streams (HTTP/1.1 with keep-alive) rather than a web framework, so the
server costs a few microseconds per request and a benchmark measures the client, not the
mock. It answers `POST .../chat/completions` with whatever a `responder` returns, after a
fixed latency, counts every request it receives per prompt, and can hold requests unanswered
(to test clients killed mid-run). Run it in a thread (`MockOpenAIServer`) or as a process
(`python -m ocx.testing.mock_server --latency 0.02`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import threading
import time
from collections.abc import Callable

Responder = Callable[[dict], str]


def fixed_responder(text: str = "The answer is (A).") -> Responder:
    return lambda body: text


def last_user_content(body: dict) -> str:
    users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
    return users[-1] if users else ""


def _completion(body: dict, content: str) -> dict:
    return {
        "id": f"chatcmpl-mock-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "mock"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _http_response(status: int, payload: dict, chunked: bool = False) -> bytes:
    body = json.dumps(payload).encode("utf-8")
    reason = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        429: "Too Many Requests",
        500: "Internal Server Error",
    }
    head = f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
    if chunked:
        # As servers streaming a body of unknown length send it (two chunks, to exercise the loop).
        half = len(body) // 2
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:half], body[half:]))
        return (
            (head + "transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n").encode()
            + chunks
            + b"0\r\n\r\n"
        )
    return (head + f"content-length: {len(body)}\r\nconnection: keep-alive\r\n\r\n").encode(
        "ascii"
    ) + body


def _error(status: int, message: str, kind: str, retry_after: str | None = None) -> bytes:
    response = _http_response(
        status, {"error": {"message": message, "type": kind, "param": None, "code": None}}
    )
    if retry_after is None:
        return response
    return response.replace(b"\r\n", f"\r\nretry-after: {retry_after}\r\n".encode("latin-1"), 1)


# What a broken proxy or an overloaded server sends with a 200: garbage, then a truncated body.
_MALFORMED = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 21\r\n"
    b"connection: keep-alive\r\n\r\n<html>oops</html>\n\n\n\n",
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n"
    b'connection: close\r\n\r\n{"choices": [{"message": {"content": "trunc',
)


class MockOpenAIServer:
    """An OpenAI-compatible mock on 127.0.0.1 (a free port unless one is given).

    responder(body) -> assistant text; latency: seconds before each answer;
    fail_first: answer the first N requests with `fail_status` (to exercise client retries);
    hold_after: answer only this many requests, hold every later one until `release()`;
    chunked: send bodies with chunked transfer encoding; record: keep every request body (and
    its headers, in `headers`) and count requests per prompt (off for benchmarks: memory).
    `max_in_flight` records the most requests the server held at once (how concurrent the
    client really was). retry_after: a Retry-After header sent with the `fail_first` errors;
    malformed_first: answer the next N requests with a 200 whose body is garbage or truncated.
    """

    def __init__(
        self,
        responder: Responder,
        *,
        latency: float = 0.0,
        port: int = 0,
        fail_first: int = 0,
        fail_status: int = 500,
        hold_after: int | None = None,
        chunked: bool = False,
        record: bool = True,
        retry_after: str | None = None,
        malformed_first: int = 0,
    ):
        self.responder = responder
        self.latency = latency
        self.port = port
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.chunked = chunked
        self.record = record
        self.retry_after = retry_after
        self.malformed_first = malformed_first
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold_after = hold_after
        self.received: collections.Counter[str] = collections.Counter()
        self.answered: collections.Counter[str] = collections.Counter()
        self.bodies: list[dict] = []
        self._count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._release: asyncio.Event | None = None
        self._server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def total_received(self) -> int:
        return sum(self.received.values())

    async def _answer(self, body: dict) -> bytes:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._respond(body)
        finally:
            self.in_flight -= 1

    async def _respond(self, body: dict) -> bytes:
        self._count += 1
        number = self._count
        prompt = last_user_content(body) if self.record else ""
        self.received[prompt] += 1
        if self.record:
            self.bodies.append(body)
        if number <= self.fail_first:
            return _error(self.fail_status, "mock failure", "server_error", self.retry_after)
        if number <= self.fail_first + self.malformed_first:
            return _MALFORMED[number % 2]
        if self.hold_after is not None and number > self.hold_after:
            await self._release.wait()
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            content = self.responder(body)
        except Exception as exc:
            # A broken responder is the test's bug: say so in an OpenAI-shaped error.
            return _error(500, f"responder failed: {type(exc).__name__}: {exc}", "server_error")
        self.answered[prompt] += 1
        return _http_response(200, _completion(body, content), self.chunked)

    async def _route(self, method: str, path: str, raw: bytes) -> bytes:
        if method == "GET" and path.rstrip("/").endswith("/models"):
            return _http_response(
                200, {"object": "list", "data": [{"id": "mock", "object": "model"}]}
            )
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return _error(404, f"no route {method} {path}", "invalid_request_error")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return _error(400, f"request body is not JSON: {exc}", "invalid_request_error")
        return await self._answer(body)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
                }
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                if self.record:
                    self.headers.append(headers)
                response = await self._route(method, path, raw)
                writer.write(response)
                await writer.drain()
                if b"connection: close" in response[:300]:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _serve(self) -> None:
        self._release = asyncio.Event()
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        async with self._server:
            await self._server.serve_forever()

    def start(self) -> MockOpenAIServer:
        """Serve from a daemon thread; returns once the port is bound."""

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._serve())
            except asyncio.CancelledError:
                pass
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="mock-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("mock OpenAI server did not start within 10 s")
        return self

    def release(self) -> None:
        """Answer held requests and every later one."""
        self.hold_after = None
        if self._loop and self._release:
            self._loop.call_soon_threadsafe(self._release.set)

    def stop(self) -> None:
        if self._loop and self._server:
            self._loop.call_soon_threadsafe(self._release.set)

            def shutdown() -> None:
                self._server.close()
                for task in asyncio.all_tasks(self._loop):
                    task.cancel()

            self._loop.call_soon_threadsafe(shutdown)
        if self._thread:
            self._thread.join(10)

    def __enter__(self) -> MockOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Serve a mock OpenAI chat completions API on 127.0.0.1."
    )
    parser.add_argument(
        "--port", type=int, default=0, help="0 picks a free port (printed on stdout)"
    )
    parser.add_argument("--latency", type=float, default=0.02, help="seconds before each answer")
    parser.add_argument(
        "--answer", default="The answer is (A).", help="the text every request gets"
    )
    args = parser.parse_args()
    server = MockOpenAIServer(
        fixed_responder(args.answer), latency=args.latency, port=args.port, record=False
    )
    asyncio.run(_serve_until_stdin_closes(server))


async def _serve_until_stdin_closes(server: MockOpenAIServer) -> None:
    task = asyncio.create_task(server._serve())
    while not server._ready.is_set():
        await asyncio.sleep(0.01)
    print(server.port, flush=True)
    # Stop when the parent closes our stdin (or dies), so no orphan server outlives a benchmark.
    await asyncio.get_running_loop().run_in_executor(None, _read_stdin_to_end)
    task.cancel()


def _read_stdin_to_end() -> None:
    import sys

    sys.stdin.read()


if __name__ == "__main__":
    main()
