"""A huge body, with a wrong key or no length, barely moves `ocx serve`'s memory."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import free_port, server_process

KEY = "sk-memory"
HUGE = 300 * 2**20
PIECE = b"x" * 2**20
MAX_GROWTH = 50 * 2**20


def _memory(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in bytes, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def _push(port: int, headers: str, chunked: bool) -> bytes:
    """Send headers and then HUGE bytes (stopping if the server hangs up); returns its answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        sock.sendall(headers.encode())
        for _ in range(HUGE // len(PIECE)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading: what it answered first is still worth reading
    try:
        return sock.recv(65536)
    except (ConnectionResetError, TimeoutError):
        return b""
    finally:
        sock.close()


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    if not Path("/proc/self/status").is_file():
        pytest.skip("reads process memory from /proc (Linux)")
    port = free_port()
    ocx = Path(sys.executable).parent / "ocx"
    cmd = [
        str(ocx),
        "serve",
        "--model",
        str(tiny_checkpoint),
        "--engine",
        "transformers",
        "--port",
        str(port),
        "--served-model-name",
        "tiny-chat",
        "--api-keys",
        KEY,
        "--max-request-bytes",
        str(2**20),
        "--read-timeout",
        "2",
        "--disable-log-requests",
    ]
    with server_process(cmd, port, start_timeout=300) as url:
        yield url, port


def _server_pid(port: int) -> int:
    import psutil

    for conn in psutil.net_connections("tcp"):
        if conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            return conn.pid
    raise AssertionError(f"no process listens on {port}")


CASES = [
    (
        "wrong key, Content-Length",
        f"Authorization: Bearer sk-wrong\r\nContent-Length: {HUGE}\r\n",
        False,
        b" 401 ",
    ),
    ("no key, chunked", "Transfer-Encoding: chunked\r\n", True, b" 401 "),
    (
        "right key, Content-Length",
        f"Authorization: Bearer {KEY}\r\nContent-Length: {HUGE}\r\n",
        False,
        b" 413 ",
    ),
    (
        "right key, chunked",
        f"Authorization: Bearer {KEY}\r\nTransfer-Encoding: chunked\r\n",
        True,
        b" 413 ",
    ),
]


def _small_request(url: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "tiny-chat",
            "messages": [{"role": "user", "content": "a"}],
            "max_tokens": 1,
        },
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )


@pytest.mark.slow
def test_300_mb_bodies_are_refused_without_the_server_holding_them(server):
    url, port = server
    pid = _server_pid(port)
    _small_request(url)  # warm up: first-request allocations are not the body's
    before = _memory(pid)
    for name, headers, chunked, status in CASES:
        answer = _push(
            port,
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\n{headers}\r\n",
            chunked,
        )
        assert answer == b"" or status in answer.split(b"\r\n")[0], (name, answer[:200])
    after = _memory(pid)
    assert after["VmHWM"] - before["VmHWM"] < MAX_GROWTH, (before, after)
    assert after["VmRSS"] - before["VmRSS"] < MAX_GROWTH, (before, after)
    ok = _small_request(url)
    assert ok.status_code == 200 and httpx.get(f"{url}/health").json()["pending"] == 0
