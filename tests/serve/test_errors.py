"""Every error is OpenAI-shaped with the right status; bad input never breaks the server."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.serve.conftest import running_server, transformers_engine

HELLO = [{"role": "user", "content": "Hi"}]


def _post(url: str, body, **kwargs) -> httpx.Response:
    if isinstance(body, (dict, list)):
        return httpx.post(f"{url}/v1/chat/completions", json=body, **{"timeout": 60, **kwargs})
    return httpx.post(
        f"{url}/v1/chat/completions",
        content=body,
        timeout=60,
        headers={"content-type": "application/json", **kwargs.pop("headers", {})},
        **kwargs,
    )


def _assert_error(
    r: httpx.Response, status: int, code: str | None = None, param: str | None = None
) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


BAD_REQUESTS = [
    ({"model": "tiny-chat", "messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
    ({"model": "tiny-chat", "messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
    ({"model": "tiny-chat", "messages": [{"role": "user"}]}, "messages.0.content"),
    ({"model": "tiny-chat", "messages": []}, "messages"),
    ({"model": "tiny-chat", "messages": "hi"}, "messages"),
    ({"messages": HELLO}, "model"),
    ({"model": "tiny-chat", "messages": HELLO, "temperature": "hot"}, "temperature"),
    ({"model": "tiny-chat", "messages": HELLO, "temperature": 3}, "temperature"),
    ({"model": "tiny-chat", "messages": HELLO, "top_p": 0}, "top_p"),
    ({"model": "tiny-chat", "messages": HELLO, "n": 0}, "n"),
    ({"model": "tiny-chat", "messages": HELLO, "n": 1000}, "n"),
    ({"model": "tiny-chat", "messages": HELLO, "max_tokens": -1}, "max_tokens"),
    ({"model": "tiny-chat", "messages": HELLO, "max_tokens": 1.5}, "max_tokens"),
    ({"model": "tiny-chat", "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "tiny-chat", "messages": HELLO, "stop": [""]}, "stop"),
    ({"model": "tiny-chat", "messages": HELLO, "seed": "x"}, "seed"),
    ({"model": "tiny-chat", "messages": HELLO, "stream": "yes"}, "stream"),
    ({"model": "tiny-chat", "messages": HELLO, "condition": 5}, "condition"),
    ({"model": "tiny-chat", "messages": HELLO, "condition": "bad\ue000"}, "condition"),
    (
        {"model": "tiny-chat", "messages": HELLO, "logprobs": 5},
        "logprobs",
    ),  # a boolean (served since issue 15)
    ({"model": "tiny-chat", "messages": HELLO, "presence_penalty": 9}, "presence_penalty"),
]


@pytest.mark.parametrize("body,param", BAD_REQUESTS, ids=[p for _, p in BAD_REQUESTS])
def test_invalid_requests_are_400_naming_the_field(server_url, body, param):
    _assert_error(_post(server_url, body), 400, param=param)


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b'"just a string"', b"\xff\xfe"])
def test_bodies_that_are_not_a_json_object_are_400(server_url, raw):
    _assert_error(_post(server_url, raw), 400)


def test_prompt_longer_than_the_context_is_context_length_exceeded(server_url, served_model):
    long = [{"role": "user", "content": "word " * (served_model.context_length + 10)}]
    _assert_error(
        _post(server_url, {"model": "tiny-chat", "messages": long}), 400, "context_length_exceeded"
    )
    too_many = {"model": "tiny-chat", "messages": HELLO, "max_tokens": served_model.context_length}
    _assert_error(_post(server_url, too_many), 400, "context_length_exceeded")


def test_unknown_model_is_404_and_unknown_route_is_404_in_openai_shape(server_url):
    _assert_error(
        _post(server_url, {"model": "gpt-5", "messages": HELLO}), 404, "model_not_found", "model"
    )
    _assert_error(httpx.get(f"{server_url}/v1/nothing"), 404)
    _assert_error(httpx.get(f"{server_url}/v1/chat/completions"), 405)


def test_the_openai_client_raises_its_typed_errors(client):
    import openai

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="tiny-chat", messages=[{"role": "tool", "content": "x"}]
        )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=HELLO)


def test_server_stays_healthy_after_a_burst_of_malformed_requests(server_url):
    bodies = [b for b, _ in BAD_REQUESTS] * 6
    raws = [b"{", b"[]", b"null", b"\x00\x01", b'{"model": ' * 50]

    async def burst():
        async with httpx.AsyncClient(base_url=server_url, timeout=60) as c:
            jobs = [c.post("/v1/chat/completions", json=b) for b in bodies]
            jobs += [
                c.post(
                    "/v1/chat/completions", content=r, headers={"content-type": "application/json"}
                )
                for r in raws * 10
            ]
            return await asyncio.gather(*jobs)

    responses = asyncio.run(burst())
    assert {r.status_code for r in responses} == {400}
    assert httpx.get(f"{server_url}/health").json() == {
        **httpx.get(f"{server_url}/health").json(),
        "pending": 0,
    }
    ok = _post(server_url, {"model": "tiny-chat", "messages": HELLO, "max_tokens": 2})
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] >= 1


def test_api_keys_are_required_and_checked(served_model):
    with running_server(
        transformers_engine(served_model), served_model, api_keys=("k1", "k2")
    ) as url:
        body = {"model": "tiny-chat", "messages": HELLO, "max_tokens": 1}
        _assert_error(_post(url, body), 401, "invalid_api_key")
        _assert_error(
            _post(url, body, headers={"Authorization": "Bearer k3"}), 401, "invalid_api_key"
        )
        _assert_error(
            _post(url, body, headers={"Authorization": "Basic k1"}), 401, "invalid_api_key"
        )
        _assert_error(httpx.get(f"{url}/v1/models"), 401)
        assert _post(url, body, headers={"Authorization": "Bearer k2"}).status_code == 200
        assert httpx.get(f"{url}/health").status_code == 200  # health stays open for probes


def _slow_down(engine, seconds: float) -> None:
    forward = engine.model.forward

    def slow_forward(*args, **kwargs):
        time.sleep(seconds)
        return forward(*args, **kwargs)

    engine.model.forward = slow_forward


def _wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_overload_is_503_and_capacity_returns_when_requests_end(served_model):
    engine = transformers_engine(served_model)
    with running_server(engine, served_model, max_pending=1) as url:
        _slow_down(engine, 0.02)
        body = {"model": "tiny-chat", "messages": HELLO, "max_tokens": 1500, "stream": True}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as first:
            lines = first.iter_lines()  # kept: a discarded iterator closes the response
            next(lines)
            _assert_error(_post(url, {**body, "stream": False}), 503, "overloaded")
        assert _wait_until(lambda: httpx.get(f"{url}/health").json()["pending"] == 0)
        assert _post(url, {**body, "stream": False, "max_tokens": 2}).status_code == 200


@pytest.mark.parametrize("stream", [True, False])
def test_client_disconnect_cancels_its_generation(served_model, stream):
    engine = transformers_engine(served_model)
    with running_server(engine, served_model) as url:
        _slow_down(engine, 0.02)  # 1500 tokens would take 30 s
        body = {"model": "tiny-chat", "messages": HELLO, "max_tokens": 1500, "stream": stream}
        if stream:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
                lines = r.iter_lines()
                next(lines), next(lines), next(lines)  # role chunk, blank line, first token
                assert _wait_until(lambda: engine.active_sequences == 1, timeout=5)
        else:
            with pytest.raises(httpx.ReadTimeout):
                _post(url, body, timeout=1.0)
        assert _wait_until(lambda: engine.active_sequences == 0, timeout=5), (
            "generation still running"
        )
        assert httpx.get(f"{url}/health").json()["pending"] == 0
