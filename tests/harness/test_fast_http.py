"""The lean HTTP client against servers that answer in awkward but legal ways (and some illegal
ones): bytes dribbled one at a time, chunked bodies with extensions and trailers, HTTP/1.0
bodies that run to the end of the connection, idle keep-alive connections the server closed,
garbage."""

from __future__ import annotations

import asyncio
import json

import pytest

from ocx.harness.backends.fast_http import FastHTTPClient, MalformedResponseError

BODY = json.dumps({"ok": True}).encode()


async def _serve(answers: list[bytes], *, dribble: bool = False, close_after_each: bool = False):
    """A raw server: answers[i] is written whole (or byte by byte) for the i-th request received."""
    served = {"requests": 0, "connections": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served["connections"] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.lower().split(b"\r\n")
                length = int(
                    next(ln.split(b":")[1] for ln in lines if ln.startswith(b"content-length"))
                )
                await reader.readexactly(length)
                answer = answers[min(served["requests"], len(answers) - 1)]
                served["requests"] += 1
                for i in range(len(answer)) if dribble else [None]:
                    writer.write(answer if i is None else answer[i : i + 1])
                    await writer.drain()
                if close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", served


def _ok(body: bytes = BODY, extra: bytes = b"") -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n"
    return head % (extra, len(body)) + body


def _run(answers, n=3, **server_options):
    async def main():
        server, url, served = await _serve(answers, **server_options)
        client = FastHTTPClient(url, api_key="k", timeout=5, max_connections=1)
        try:
            results = []
            for _ in range(n):
                try:
                    results.append(await client.post_json("/chat/completions", {"q": 1}))
                except Exception as exc:  # noqa: BLE001 - the test looks at which error it was
                    results.append(exc)
            return results, served
        finally:
            await client.close()
            server.close()

    return asyncio.run(main())


def test_a_response_dribbled_one_byte_at_a_time_is_read_whole_and_the_connection_reused():
    results, served = _run([_ok()], dribble=True)
    assert results == [{"ok": True}] * 3 and served["connections"] == 1


def test_chunked_bodies_with_extensions_and_trailers_are_joined():
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;name=x\r\n" + BODY[:4] + b"\r\n" + b"%x\r\n" % (len(BODY) - 4) + BODY[4:] + b"\r\n"
        b"0\r\nX-Trailer: 1\r\n\r\n"
    )
    results, served = _run([chunked], dribble=True)
    assert results == [{"ok": True}] * 3 and served["connections"] == 1


def test_an_http_1_0_body_that_runs_to_the_end_of_the_connection_is_read_and_not_reused():
    results, served = _run([b"HTTP/1.0 200 OK\r\n\r\n" + BODY], close_after_each=True)
    assert results == [{"ok": True}] * 3 and served["connections"] == 3


def test_a_connection_the_server_closes_after_answering_is_not_reused():
    results, served = _run([_ok(extra=b"Connection: close\r\n")], close_after_each=True)
    assert results == [{"ok": True}] * 3 and served["connections"] == 3


def test_a_keep_alive_connection_the_server_dropped_while_idle_is_replaced():
    async def main():
        server, url, served = await _serve(
            [_ok()], close_after_each=True
        )  # closes without saying so
        client = FastHTTPClient(url, api_key="k", timeout=5, max_connections=1)
        try:
            first = await client.post_json("/x", {})
            await asyncio.sleep(0.05)  # the close reaches the idle connection
            return first, await client.post_json("/x", {}), served
        finally:
            await client.close()
            server.close()

    first, second, served = asyncio.run(main())
    assert first == second == {"ok": True} and served["connections"] == 2


@pytest.mark.parametrize(
    "answer", [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnot"]
)
def test_garbage_heads_and_bodies_are_malformed_responses(answer):
    results, _ = _run([answer], n=1)
    assert isinstance(results[0], MalformedResponseError)


def test_a_response_cut_short_is_an_error_not_a_hang():
    results, _ = _run(
        [b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"ok"'], n=1, close_after_each=True
    )
    assert isinstance(results[0], (asyncio.IncompleteReadError, ConnectionError))
