"""`ocx eval --endpoint URL1 --endpoint URL2`: requests spread over several servers."""

from __future__ import annotations

import json
import socket

from ocx.harness.backends.multi_endpoint import MultiEndpointBackend, server_fault
from ocx.testing.mock_server import last_user_content
from tests.cli import invoke_ocx


def _answer(body: dict) -> str:
    """A deterministic answer per prompt, so any server gives the same one."""
    prompt = last_user_content(body)
    return f"The answer is {sum(map(ord, prompt)) % 97}."


def _eval(monkeypatch, capsys, out, *endpoint_args):
    code, _, err = invoke_ocx(
        monkeypatch,
        capsys,
        "eval",
        *endpoint_args,
        "--model-name",
        "m",
        "--sets",
        "arithmetic",
        "--limit",
        "40",
        "--concurrency",
        "2",
        "--output",
        out,
        "--quiet",
        "--no-cache",
    )
    assert code == 0, err
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return json.loads((out / "results.json").read_text()), [
        (r["id"], r["response"]) for r in records
    ]


def _closed_port_url() -> str:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_two_servers_both_receive_requests_and_the_results_equal_one_servers(
    monkeypatch, capsys, mock_server, tmp_path
):
    alone = mock_server(_answer, latency=0.01)
    first, second = mock_server(_answer, latency=0.01), mock_server(_answer, latency=0.01)
    single, single_records = _eval(monkeypatch, capsys, tmp_path / "one", "--endpoint", alone.url)
    both, both_records = _eval(
        monkeypatch, capsys, tmp_path / "two", "--endpoint", f"{first.url},{second.url}"
    )
    assert first.total_received > 5 and second.total_received > 5, (
        first.total_received,
        second.total_received,
    )
    assert first.total_received + second.total_received == alone.total_received == 40
    assert sorted(both_records) == sorted(single_records)
    assert both["summary"] == single["summary"]
    assert both["model"]["base_url"] == sorted([first.url, second.url]) and both["endpoints"] == [
        first.url,
        second.url,
    ]


def test_a_dead_endpoints_requests_go_to_the_live_one(monkeypatch, capsys, mock_server, tmp_path):
    live = mock_server(_answer)
    reference = mock_server(_answer)
    _, expected = _eval(monkeypatch, capsys, tmp_path / "ref", "--endpoint", reference.url)
    _, records = _eval(
        monkeypatch,
        capsys,
        tmp_path / "run",
        "--endpoint",
        _closed_port_url(),
        "--endpoint",
        live.url,
    )
    assert sorted(records) == sorted(expected)
    assert live.total_received == 40


def test_a_server_that_refuses_the_request_itself_is_not_retried_elsewhere(mock_server):
    from ocx.harness.backends import Request, Sampling

    refusing = [mock_server(_answer, fail_first=100, fail_status=400) for _ in range(2)]
    backend = MultiEndpointBackend(
        [s.url for s in refusing], "m", concurrency=1, http_client="fast"
    )
    answers, errors = {}, {}
    backend.generate(
        [Request(0, ({"role": "user", "content": "hi"},), None, Sampling())],
        answers.__setitem__,
        errors.__setitem__,
    )
    assert not answers and "400" in str(errors[0])
    assert sum(s.total_received for s in refusing) == 1


def test_server_faults_are_connection_errors_5xx_and_429_not_4xx():
    from ocx.harness.backends.fast_http import HTTPStatusError

    assert server_fault(ConnectionRefusedError()) and server_fault(TimeoutError())
    assert server_fault(HTTPStatusError(503, "x")) and server_fault(HTTPStatusError(429, "x"))
    assert not server_fault(HTTPStatusError(400, "x")) and not server_fault(
        HTTPStatusError(401, "x")
    )


def test_requests_taken_by_an_endpoint_whose_client_breaks_go_to_another(mock_server, monkeypatch):
    from ocx.harness.backends import Request, Sampling

    live = mock_server(_answer)
    backend = MultiEndpointBackend(
        ["http://127.0.0.1:9/v1", live.url], "m", concurrency=1, http_client="fast"
    )
    broken = backend.backends[0]

    def take_one_and_crash(requests, on_result, on_error):
        next(iter(requests))
        raise RuntimeError("client bug")

    monkeypatch.setattr(broken, "generate", take_one_and_crash)
    requests = [
        Request(i, ({"role": "user", "content": f"q{i}"},), None, Sampling()) for i in range(6)
    ]
    answers, errors = {}, {}
    backend.generate(requests, answers.__setitem__, errors.__setitem__)
    assert not errors and sorted(answers) == list(range(6)) and live.total_received == 6
