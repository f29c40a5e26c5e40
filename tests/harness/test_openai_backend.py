import pytest

from ocx.harness.backends import Request, Sampling
from ocx.harness.backends.openai_http import OpenAIBackend
from ocx.testing.mock_server import last_user_content

CLIENTS = ["openai", "fast"]


_SHORT = Sampling(max_tokens=32)


def _requests(n, condition=None, sampling=_SHORT):
    return [
        Request(i, ({"role": "user", "content": f"question {i}"},), condition, sampling)
        for i in range(n)
    ]


def _run(backend, requests):
    results, errors = {}, {}
    backend.generate(requests, results.__setitem__, errors.__setitem__)
    return results, errors


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("chunked", [False, True])
def test_every_request_is_answered_once_with_its_own_response(mock_server, client, chunked):
    server = mock_server(lambda body: "echo: " + last_user_content(body), chunked=chunked)
    results, errors = _run(
        OpenAIBackend(server.url, "m", concurrency=8, http_client=client), _requests(50)
    )
    assert errors == {}
    assert results == {i: f"echo: question {i}" for i in range(50)}
    assert server.total_received == 50


@pytest.mark.parametrize("client", CLIENTS)
def test_no_more_requests_are_in_flight_than_the_concurrency(mock_server, client):
    server = mock_server(lambda body: "ok", latency=0.01)
    _run(OpenAIBackend(server.url, "m", concurrency=5, http_client=client), _requests(40))
    assert server.max_in_flight == 5


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limits_and_server_errors_are_retried_until_they_succeed(mock_server, client, status):
    server = mock_server(lambda body: "ok", fail_first=5, fail_status=status)
    backend = OpenAIBackend(server.url, "m", concurrency=2, backoff=0.01, http_client=client)
    results, errors = _run(backend, _requests(4))
    assert errors == {} and results == {i: "ok" for i in range(4)}
    assert server.total_received == 9


@pytest.mark.parametrize("client", CLIENTS)
def test_a_request_that_keeps_failing_is_reported_after_the_last_retry(mock_server, client):
    server = mock_server(lambda body: "ok", fail_first=100)
    backend = OpenAIBackend(
        server.url, "m", concurrency=1, backoff=0.001, max_retries=2, http_client=client
    )
    results, errors = _run(backend, _requests(1))
    assert results == {} and "mock failure" in str(errors[0])
    assert server.total_received == 3


@pytest.mark.parametrize("client", CLIENTS)
def test_client_errors_are_not_retried(mock_server, client):
    server = mock_server(lambda body: "ok", fail_first=1, fail_status=400)
    results, errors = _run(
        OpenAIBackend(server.url, "m", concurrency=1, backoff=0.001, http_client=client),
        _requests(1),
    )
    assert results == {} and 0 in errors
    assert server.total_received == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_a_server_that_is_down_is_retried_then_reported(client):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = OpenAIBackend(
        f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff=0.001, http_client=client
    )
    results, errors = _run(backend, _requests(1))
    assert results == {} and 0 in errors


@pytest.mark.parametrize("client", CLIENTS)
def test_condition_travels_as_an_extra_body_field_and_only_when_set(mock_server, client):
    server = mock_server(lambda body: "ok")
    _run(OpenAIBackend(server.url, "m", http_client=client), _requests(1, condition="GPT4 Correct"))
    _run(OpenAIBackend(server.url, "m", http_client=client), _requests(1, condition=None))
    with_condition, without = server.bodies
    assert with_condition["condition"] == "GPT4 Correct"
    assert "condition" not in without


@pytest.mark.parametrize("client", CLIENTS)
def test_sampling_settings_are_sent_with_each_request(mock_server, client):
    server = mock_server(lambda body: "ok")
    sampling = Sampling(temperature=0.5, top_p=0.9, max_tokens=77, seed=3, stop=("Q:",))
    _run(OpenAIBackend(server.url, "model-x", http_client=client), _requests(1, sampling=sampling))
    body = server.bodies[0]
    assert (
        body["model"],
        body["temperature"],
        body["top_p"],
        body["max_tokens"],
        body["seed"],
        body["stop"],
    ) == ("model-x", 0.5, 0.9, 77, 3, ["Q:"])
    assert (
        "presence_penalty" not in body and "frequency_penalty" not in body
    )  # unset: left to the server


@pytest.mark.parametrize("client", CLIENTS)
def test_presence_and_frequency_penalties_are_sent_when_set(mock_server, client):
    server = mock_server(lambda body: "ok")
    sampling = Sampling(max_tokens=8, presence_penalty=0.5, frequency_penalty=-0.25)
    _run(OpenAIBackend(server.url, "m", http_client=client), _requests(1, sampling=sampling))
    assert (server.bodies[0]["presence_penalty"], server.bodies[0]["frequency_penalty"]) == (
        0.5,
        -0.25,
    )


def test_https_endpoints_use_the_openai_sdk_and_plain_http_the_fast_client():
    assert OpenAIBackend("https://api.example.com/v1", "m").http_client == "openai"
    assert OpenAIBackend("http://127.0.0.1:8000/v1", "m").http_client == "fast"
    assert (
        OpenAIBackend("http://127.0.0.1:8000/v1", "m", http_client="openai").http_client == "openai"
    )


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="concurrency"):
        OpenAIBackend("http://127.0.0.1:9/v1", "m", concurrency=0)
    with pytest.raises(ValueError, match="http_client"):
        OpenAIBackend("http://127.0.0.1:9/v1", "m", http_client="curl")


HOSTILE_TEXT = 'Wie heißt „das“?\n\t\\ "x" 😀 \x01 \u2028 </s>'


def test_a_body_with_the_prompts_json_spliced_in_is_the_json_the_sdk_sends(mock_server):
    from ocx.benchmarks.base import canonical_json

    server = mock_server(lambda body: "ok")
    messages = (
        {"role": "system", "content": HOSTILE_TEXT},
        {"role": "user", "content": HOSTILE_TEXT * 3},
    )
    settings = [
        (condition, sampling)
        for condition in (None, "", "GPT4 Correct", HOSTILE_TEXT)
        for sampling in (
            Sampling(max_tokens=32),
            Sampling(temperature=0.7, seed=5, stop=("Q:", "\n\n")),
        )
    ]
    spliced = [
        Request(i, messages, c, s, canonical_json(list(messages)))
        for i, (c, s) in enumerate(settings)
    ]
    plain = [Request(i, messages, c, s) for i, (c, s) in enumerate(settings)]
    for client, requests in (("fast", spliced), ("fast", plain), ("openai", plain)):
        _run(OpenAIBackend(server.url, "m-ö", concurrency=1, http_client=client), requests)
    n = len(settings)
    fast_spliced, fast_plain, sdk = (
        server.bodies[:n],
        server.bodies[n : 2 * n],
        server.bodies[2 * n :],
    )
    assert fast_spliced == fast_plain == sdk
    assert all(body["messages"] == list(messages) for body in fast_spliced)
    assert [body.get("condition") for body in sdk] == [c for c, _ in settings]
