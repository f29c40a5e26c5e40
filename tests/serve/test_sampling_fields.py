"""top_k, min_p and repetition_penalty: honoured by an engine that implements them, refused with
a 400 by one that does not; never accepted and silently ignored."""

from __future__ import annotations

import httpx
import pytest

from ocx.adapters.serve.chat import prepare
from ocx.adapters.serve.protocol import ApiError, ChatCompletionRequest, parse_request
from ocx.harness.sampling import ALL_FIELDS, BASIC_FIELDS, Sampling

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(
    "field, value", [("top_k", 40), ("min_p", 0.05), ("repetition_penalty", 1.2)]
)
def test_a_field_the_engine_does_not_implement_is_refused_naming_it(served_model, field, value):
    request = ChatCompletionRequest(model="tiny-chat", messages=HELLO, **{field: value})
    with pytest.raises(ApiError) as caught:
        prepare(request, served_model, BASIC_FIELDS)
    assert (caught.value.status, caught.value.param, caught.value.code) == (
        400,
        field,
        "unsupported_parameter",
    )


def test_the_defaults_and_vllms_spelling_of_off_are_served_by_every_engine(served_model):
    request = ChatCompletionRequest(
        model="tiny-chat", messages=HELLO, top_k=-1, min_p=0.0, repetition_penalty=1.0
    )
    assert prepare(request, served_model, BASIC_FIELDS).settings[0].top_k == 0


def test_the_validator_builds_the_one_sampling_type_with_every_field(served_model):
    request = ChatCompletionRequest(
        model="tiny-chat",
        messages=HELLO,
        n=2,
        seed=5,
        top_k=40,
        min_p=0.05,
        repetition_penalty=1.2,
        temperature=0.7,
        stop=["\n\n"],
        max_tokens=9,
    )
    settings = prepare(request, served_model, ALL_FIELDS).settings
    assert all(isinstance(s, Sampling) for s in settings)
    first = settings[0]
    assert (first.top_k, first.min_p, first.repetition_penalty, first.temperature) == (
        40,
        0.05,
        1.2,
        0.7,
    )
    assert (first.stop, first.max_tokens, first.stop_token_ids) == (
        ("\n\n",),
        9,
        served_model.stop_token_ids,
    )
    assert [s.seed for s in settings] == [5, 6]


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "repetition_penalty": 0}',
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], '
        b'"repetition_penalty": 1e300}',
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "min_p": 1.5}',
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "top_k": 1e3}',
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "top_k": -2}',
    ],
)
def test_out_of_range_sampling_values_are_400s_naming_the_field(body):
    with pytest.raises(ApiError) as caught:
        parse_request(body)
    assert caught.value.status == 400 and caught.value.param in (
        "top_k",
        "min_p",
        "repetition_penalty",
    )


class _BasicEngine:
    """An engine that implements only the basic sampling fields (no `sampling_fields`)."""

    name = "basic"

    def __init__(self, eot: int):
        self.eot = eot

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...

    async def generate(self, request_id, prompt_ids, settings):
        from ocx.adapters.serve.engine import Step

        yield Step((self.eot,), "stop")

    async def abort(self, request_id) -> None: ...


def test_a_server_whose_engine_lacks_top_k_answers_it_with_a_400_and_keeps_serving(served_model):
    from tests.serve.conftest import running_server

    with running_server(_BasicEngine(served_model.stop_token_ids[0]), served_model) as url:
        refused = httpx.post(
            f"{url}/v1/chat/completions",
            timeout=60,
            json={"model": "tiny-chat", "messages": HELLO, "top_k": 40, "max_tokens": 2},
        )
        served = httpx.post(
            f"{url}/v1/chat/completions",
            timeout=60,
            json={"model": "tiny-chat", "messages": HELLO, "top_k": 0, "max_tokens": 2},
        )
        health = httpx.get(f"{url}/health").json()
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "top_k"
    assert served.status_code == 200 and health["pending"] == 0


def test_the_transformers_server_honours_top_k(server_url):
    """top_k=1 leaves only the likeliest token: sampling at temperature 1 must equal greedy."""

    def reply(**sampling) -> str:
        body = {"model": "tiny-chat", "messages": HELLO, "max_tokens": 8, **sampling}
        answer = httpx.post(f"{server_url}/v1/chat/completions", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()["choices"][0]["message"]["content"]

    greedy = reply(temperature=0)
    assert all(reply(temperature=1.0, top_k=1, seed=seed) == greedy for seed in (1, 2, 3))
