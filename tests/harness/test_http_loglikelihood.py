"""`OpenAIBackend.loglikelihood`: lm-eval's echo + logprobs request to `/v1/completions`, against
scripted endpoints (retries, and answers without the logprobs asked for). Against ocx serve:
tests/serve/test_completions_http_backend.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ocx.harness.backends.http_loglikelihood import (
    LoglikelihoodResponseError,
    completion_body,
    parse_loglikelihood,
)
from ocx.harness.backends.openai_http import OpenAIBackend
from ocx.harness.logprobs import LoglikelihoodRequest


def answer(values: list, tops: list) -> dict:
    return {
        "object": "text_completion",
        "choices": [
            {
                "index": 0,
                "text": "x",
                "finish_reason": "length",
                "logprobs": {
                    "tokens": ["t"] * len(values),
                    "token_logprobs": values,
                    "top_logprobs": tops,
                    "text_offset": list(range(len(values))),
                },
            }
        ],
    }


REQUEST = LoglikelihoodRequest(0, (1, 10, 11), (12, 13))


def test_the_request_is_lm_evals_local_completions_loglikelihood_payload():
    # lm_eval/models/openai_completions.py, LocalCompletionsAPI._create_payload(generate=False)
    assert completion_body("m", REQUEST) == {
        "model": "m",
        "prompt": [1, 10, 11, 12, 13],
        "temperature": 0,
        "max_tokens": 1,
        "logprobs": 1,
        "seed": 1234,
        "echo": True,
    }


def test_the_continuation_is_summed_and_greedy_when_each_token_tops_its_alternatives():
    tops = [None, {"a": -1.0}, {"b": -1.0}, {"c": -0.5}, {"d": -0.25, "e": -3.0}, {"f": -0.1}]
    result = parse_loglikelihood(answer([None, -1.0, -1.0, -0.5, -0.25, -0.1], tops), REQUEST)
    assert (result.logprob, result.is_greedy, result.token_logprobs) == (-0.75, True, (-0.5, -0.25))
    tops[4] = {"d": -0.25, "e": -0.125}
    assert (
        parse_loglikelihood(answer([None, -1.0, -1.0, -0.5, -0.25, -0.1], tops), REQUEST).is_greedy
        is False
    )


@pytest.mark.parametrize(
    "body",
    [
        {"choices": []},
        {"choices": [{"index": 0, "text": "x", "logprobs": None}]},
        answer([None, -1.0, -1.0, -0.5], [None, {"a": -1.0}, {"b": -1.0}, {"c": -0.5}]),
        answer(
            [None, -1.0, -1.0, "-0.5", -0.2, -0.1], [None, {}, {}, {"c": -0.5}, {"d": -0.2}, {}]
        ),
        answer([None, -1.0, -1.0, -0.5, True, -0.1], [None, {}, {}, {"c": -0.5}, {"d": -0.2}, {}]),
        answer([None, -1.0, -1.0, -0.5, -0.2, -0.1], [None, {}, {}, {}, {"d": -0.2}, {}]),
        answer([None, -1.0, -1.0, -0.5, -0.2, -0.1], [None, {}, {}, {"c": "x"}, {"d": -0.2}, {}]),
        ["not", "an", "object"],
    ],
)
def test_an_answer_without_the_logprobs_asked_for_is_a_clear_error(body):
    with pytest.raises(LoglikelihoodResponseError):
        parse_loglikelihood(body, REQUEST)


class _Scripted(BaseHTTPRequestHandler):
    """Answers POST /v1/completions from the server's `script` (status, body), one per request."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        status, body = self.server.script.pop(0) if self.server.script else self.server.last
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    servers = []

    def start(script, last):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
        server.script, server.last, server.bodies = list(script), last, []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


GOOD = answer(
    [None, -1.0, -1.0, -0.5, -0.25, -0.1],
    [None, {"a": -1.0}, {"b": -1.0}, {"c": -0.5}, {"d": -0.25}, {"e": -0.1}],
)


def _score(backend, requests):
    results, errors = {}, {}
    backend.loglikelihood(requests, results.__setitem__, errors.__setitem__)
    return results, errors


def test_server_errors_and_garbage_bodies_are_retried_then_scored(scripted):
    server, url = scripted(
        [(503, {"error": {"message": "busy"}}), (200, b"{not json")], (200, GOOD)
    )
    results, errors = _score(OpenAIBackend(url, "m", concurrency=1, backoff=0.001), [REQUEST])
    assert errors == {} and results[0].logprob == -0.75
    assert len(server.bodies) == 3 and server.bodies[0]["prompt"] == [1, 10, 11, 12, 13]


def test_an_endpoint_that_ignores_echo_fails_each_request_once_without_retrying(scripted):
    no_echo = answer([-0.1], [{"e": -0.1}])
    server, url = scripted([], (200, no_echo))
    requests = [LoglikelihoodRequest(i, (1, 10, 11), (12, 13)) for i in range(3)]
    results, errors = _score(OpenAIBackend(url, "m", concurrency=2, backoff=0.001), requests)
    assert results == {} and sorted(errors) == [0, 1, 2]
    assert all(
        isinstance(e, LoglikelihoodResponseError) and "echo" in str(e) for e in errors.values()
    )
    assert len(server.bodies) == 3


def test_an_empty_context_fails_only_its_own_request(scripted):
    _, url = scripted([], (200, GOOD))
    results, errors = _score(
        OpenAIBackend(url, "m", concurrency=2), [REQUEST, LoglikelihoodRequest(1, (), (12, 13))]
    )
    assert list(results) == [0] and "context is empty" in str(errors[1])
