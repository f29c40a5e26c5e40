"""POST /v1/completions in vLLM's shape: prompts as text or token IDs, echo, legacy logprobs,
streaming, and the 400s a careless or hostile client gets. A model-free engine with known
log-probabilities (fake_logprobs) pins the shapes exactly."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.serve.conftest import running_server
from tests.serve.fake_logprobs import LogprobEngine, generated_logprob, prompt_logprob

ANSWER = " Paris is nice"
"""What the engine's tokens for "Paris is nice" read as after a prompt: sentencepiece's word
boundary becomes the space a continuation needs."""


@pytest.fixture(scope="module")
def answer_ids(served_model):
    return served_model.tokenizer.encode_text(ANSWER.strip())


@pytest.fixture(scope="module")
def fake_url(served_model, answer_ids):
    engine = LogprobEngine(answer_ids, eot=served_model.stop_token_ids[0])
    with running_server(engine, served_model, max_pending=64) as url:
        yield url


def post(url: str, body: dict, path: str = "/v1/completions") -> httpx.Response:
    return httpx.post(f"{url}{path}", json={"model": "tiny-chat", **body}, timeout=60)


def lm_eval_parse(choice: dict, ctxlen: int) -> tuple[float, bool]:
    """lm-eval's `LocalCompletionsAPI.parse_logprobs` for one choice, line for line."""
    logprobs = sum(choice["logprobs"]["token_logprobs"][ctxlen:-1])
    tokens_logprobs = choice["logprobs"]["token_logprobs"][ctxlen:-1]
    top_logprobs = choice["logprobs"]["top_logprobs"][ctxlen:-1]
    is_greedy = True
    for tok, top in zip(tokens_logprobs, top_logprobs, strict=False):
        if tok != max(top.values()):
            is_greedy = False
            break
    return logprobs, is_greedy


def test_a_text_prompt_is_completed_without_a_chat_template_and_starts_with_bos(
    fake_url, served_model
):
    r = post(fake_url, {"prompt": "The capital of France is", "max_tokens": 50, "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    choice = body["choices"][0]
    assert (
        choice["text"] == ANSWER
        and choice["finish_reason"] == "stop"
        and choice["logprobs"] is None
    )
    tok = served_model.tokenizer
    expected_prompt = 1 + len(tok.encode_text("The capital of France is"))
    assert body["usage"]["prompt_tokens"] == expected_prompt


def test_lm_evals_loglikelihood_request_gets_one_logprob_per_token_and_parses(
    fake_url, served_model
):
    contexts = [[1, 415, 5565], [1, 22557]]
    continuations = [[302, 4843], [28705]]
    prompts = [c + k for c, k in zip(contexts, continuations)]
    r = post(
        fake_url,
        {
            "prompt": prompts,
            "max_tokens": 1,
            "logprobs": 1,
            "echo": True,
            "temperature": 0,
            "seed": 1234,
        },
    )
    assert r.status_code == 200, r.text
    choices = sorted(r.json()["choices"], key=lambda c: c["index"])
    assert [c["index"] for c in choices] == [0, 1]
    for choice, prompt, context in zip(choices, prompts, contexts):
        lp = choice["logprobs"]
        assert (
            len(lp["token_logprobs"])
            == len(lp["tokens"])
            == len(lp["top_logprobs"])
            == len(prompt) + 1
        )
        assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
        assert lp["token_logprobs"][1 : len(prompt)] == [
            prompt_logprob(k) for k in range(1, len(prompt))
        ]
        assert lp["token_logprobs"][-1] == generated_logprob(0)
        assert all(len(top) <= 2 for top in lp["top_logprobs"][1:])
        total, greedy = lm_eval_parse(choice, len(context))
        assert total == sum(prompt_logprob(k) for k in range(len(context), len(prompt)))
        assert greedy is True


def test_max_tokens_zero_with_echo_scores_the_prompt_and_generates_nothing(fake_url, served_model):
    prompt = served_model.tokenizer.encode_text("one two three")
    r = post(fake_url, {"prompt": prompt, "max_tokens": 0, "echo": True, "logprobs": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    choice = body["choices"][0]
    assert choice["text"] == served_model.tokenizer.decode(prompt) == "one two three"
    assert choice["logprobs"]["token_logprobs"] == [
        None,
        *(prompt_logprob(k) for k in range(1, len(prompt))),
    ]
    assert choice["logprobs"]["text_offset"][0] == 0
    assert body["usage"]["completion_tokens"] == 0 and choice["finish_reason"] == "length"


def test_a_one_token_prompt_with_echo_has_a_null_first_logprob_then_the_generated_one(fake_url):
    r = post(fake_url, {"prompt": [1], "max_tokens": 1, "echo": True, "logprobs": 2})
    assert r.status_code == 200, r.text
    lp = r.json()["choices"][0]["logprobs"]
    assert lp["token_logprobs"] == [None, generated_logprob(0)]
    assert lp["top_logprobs"][0] is None and len(lp["top_logprobs"][1]) <= 3


def test_text_offsets_index_the_returned_text(fake_url):
    r = post(fake_url, {"prompt": "Hello world", "max_tokens": 3, "echo": True, "logprobs": 0})
    lp = r.json()["choices"][0]["logprobs"]
    text = r.json()["choices"][0]["text"]
    assert text.startswith("Hello world")
    offsets = lp["text_offset"]
    assert offsets == sorted(offsets) and offsets[-1] < len(text)
    ends = offsets[1:] + [len(text)]
    pieces = [text[a:b] for a, b in zip(offsets, ends)]
    assert "".join(pieces) == text


def test_n_choices_of_several_prompts_are_numbered_prompt_index_times_n_plus_j(
    fake_url, served_model
):
    words = ["apple", "river", "stone"]
    prompts = [served_model.tokenizer.encode_text(w) for w in words]
    r = post(fake_url, {"prompt": prompts, "n": 2, "max_tokens": 2, "seed": 7, "echo": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(c["index"] for c in body["choices"]) == list(range(6))
    for choice in body["choices"]:
        assert choice["text"].startswith(words[choice["index"] // 2])
    assert body["usage"]["prompt_tokens"] == sum(map(len, prompts))
    assert body["usage"]["completion_tokens"] == 12


def test_logprobs_without_echo_cover_the_generated_tokens_including_the_end_of_text(
    fake_url, answer_ids
):
    choice = post(fake_url, {"prompt": [1, 2, 3], "max_tokens": 50, "logprobs": 2}).json()[
        "choices"
    ][0]
    lp = choice["logprobs"]
    assert choice["finish_reason"] == "stop"
    assert lp["token_logprobs"] == [generated_logprob(k) for k in range(len(answer_ids) + 1)]
    assert all(len(top) == 2 for top in lp["top_logprobs"])
    assert lp["text_offset"][0] == 0 and lp["text_offset"][-1] == len(choice["text"])


def test_impossible_logprobs_are_reported_as_vllms_floor_never_as_invalid_json():
    from ocx.adapters.serve.logprobs_format import legacy_logprobs, token_texts
    from ocx.harness.logprobs import TokenLogprob

    class Plain:  # any tokenizer without vocabulary internals: texts come from decode
        def decode(self, ids):
            return "".join(f"<{i}>" for i in ids)

    entries = [None, TokenLogprob(5, float("-inf"), 9, ((6, -0.1), (7, float("nan"))))]
    out = legacy_logprobs(token_texts(Plain()), [4, 5], entries, [0, 3], 2)
    assert out["token_logprobs"] == [None, -9999.0] and out["tokens"] == ["<4>", "<5>"]
    assert out["top_logprobs"][1] == {"<5>": -9999.0, "<6>": -0.1, "<7>": -9999.0}
    json.dumps(out, allow_nan=False)


def test_a_stream_sends_text_completion_chunks_whose_logprobs_add_up_to_the_whole(fake_url):
    request = {"prompt": [1, 415, 5565], "max_tokens": 10, "echo": True, "logprobs": 1}
    whole = post(fake_url, request).json()["choices"][0]
    events = []
    with httpx.stream(
        "POST",
        f"{fake_url}/v1/completions",
        timeout=60,
        json={
            "model": "tiny-chat",
            **request,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line.removeprefix("data: "))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    pieces = [c["choices"][0] for c in chunks if c["choices"]]
    assert "".join(p["text"] for p in pieces) == whole["text"]
    streamed = [v for p in pieces if p["logprobs"] for v in p["logprobs"]["token_logprobs"]]
    assert streamed == whole["logprobs"]["token_logprobs"]
    offsets = [v for p in pieces if p["logprobs"] for v in p["logprobs"]["text_offset"]]
    assert offsets == whole["logprobs"]["text_offset"]
    assert pieces[-1]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize(
    "body, param",
    [
        ({"prompt": "x", "logprobs": 21}, "logprobs"),
        ({"prompt": "x", "logprobs": 10**30}, "logprobs"),
        ({"prompt": "x", "logprobs": True}, "logprobs"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "max_tokens": -1}, "max_tokens"),
        ({"prompt": ["a", 1]}, "prompt"),
        ({"prompt": [[1, 2], 3]}, "prompt"),
        ({"prompt": [[1, 2], ["a"]]}, "prompt"),
        ({"prompt": [1, True]}, "prompt"),
        ({"prompt": [1, -5]}, "prompt"),
        ({"prompt": [[1], [10**9]]}, "prompt"),
        ({"prompt": [1, 2**70]}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": []}, "prompt"),
        ({"prompt": [[]]}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": [[1]] * 2000}, "prompt"),
        ({"prompt": [[1]] * 40, "n": 2}, "prompt"),
        ({"prompt": [1] * 100_000}, "prompt"),
        ({"prompt": "x", "suffix": "y"}, "suffix"),
        ({"prompt": "x", "stop": ["a"] * 17}, "stop"),
        ({"prompt": "x", "stop": [""]}, "stop"),
        ({"prompt": "x", "best_of": 3}, "best_of"),
        ({"prompt": "x", "n": 17}, "n"),
        ({"prompt": "x", "echo": "yes"}, "echo"),
    ],
)
def test_bad_completion_requests_are_400s_naming_the_field(fake_url, body, param):
    r = post(fake_url, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_more_stop_strings_than_chat_allows_are_served_as_lm_evals_until_lists_need(fake_url):
    r = post(
        fake_url,
        {
            "prompt": "x",
            "stop": ["Question:", "</s>", "<|im_end|>", "\n\n", " nice"],
            "max_tokens": 9,
        },
    )
    assert r.status_code == 200, r.text
    assert (
        r.json()["choices"][0]["text"] == " Paris is"
        and r.json()["choices"][0]["finish_reason"] == "stop"
    )


def test_a_missing_prompt_or_model_is_a_400_not_a_500(fake_url):
    r = httpx.post(f"{fake_url}/v1/completions", json={"model": "tiny-chat"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    r = httpx.post(f"{fake_url}/v1/completions", json={"prompt": "x", "model": "nope"}, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"


def test_a_client_leaving_mid_stream_frees_its_capacity(served_model, answer_ids):
    engine = LogprobEngine(answer_ids * 50, delay=0.02)
    with running_server(engine, served_model, max_pending=4) as url:
        body = {
            "model": "tiny-chat",
            "prompt": [[1, 2], [1, 3]],
            "n": 2,
            "max_tokens": 500,
            "logprobs": 1,
            "stream": True,
        }
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as r:
            lines = r.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))
            assert httpx.get(f"{url}/health").json()["pending"] == 4
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/health").json()["pending"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"{url}/health").json()["pending"] == 0
        while len(engine.ended) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(engine.ended) == sorted(engine.started) and len(engine.ended) == 4
        r = post(url, {"prompt": [[1, 2]] * 4, "max_tokens": 1})  # all four slots are free again
        assert r.status_code == 200, r.text


def test_an_engine_without_logprobs_refuses_them_with_a_400(served_model):
    from tests.serve.test_sampling_fields import _BasicEngine

    with running_server(_BasicEngine(served_model.stop_token_ids[0]), served_model) as url:
        r = post(url, {"prompt": "x", "logprobs": 1})
        assert r.status_code == 400 and r.json()["error"]["param"] == "logprobs"
        r = post(url, {"prompt": "x", "max_tokens": 3})
        assert r.status_code == 200, r.text


def test_a_prompt_filling_the_context_is_a_400_naming_the_prompt(fake_url, served_model):
    r = post(fake_url, {"prompt": [1] * served_model.context_length, "max_tokens": 1})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_an_engine_without_prompt_logprobs_refuses_echo_with_logprobs_naming_echo(
    served_model, answer_ids
):
    class GeneratedOnly(LogprobEngine):
        sampling_fields = frozenset(LogprobEngine.sampling_fields - {"prompt_logprobs"})

    with running_server(GeneratedOnly(answer_ids), served_model) as url:
        r = post(url, {"prompt": [1, 2], "echo": True, "logprobs": 1, "max_tokens": 1})
        assert r.status_code == 400 and r.json()["error"]["param"] == "echo", r.text
        r = post(url, {"prompt": [1, 2], "logprobs": 1, "max_tokens": 1})
        assert r.status_code == 200 and r.json()["choices"][0]["logprobs"]["token_logprobs"] == [
            -0.125
        ]


def test_the_request_log_records_completions_streamed_or_not(served_model, answer_ids):
    import logging

    records: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(json.loads(record.getMessage()))

    request_log = logging.getLogger("ocx.serve.test-completions-log")
    request_log.propagate, request_log.level = False, logging.INFO
    request_log.addHandler(Collect())
    with running_server(LogprobEngine(answer_ids), served_model, request_log=request_log) as url:
        post(url, {"prompt": [[1, 415], [1, 5565]], "max_tokens": 3})
        with httpx.stream(
            "POST",
            f"{url}/v1/completions",
            timeout=60,
            json={"model": "tiny-chat", "prompt": "Hi", "max_tokens": 3, "stream": True},
        ) as r:
            list(r.iter_lines())
    deadline = time.monotonic() + 10
    while len(records) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r["outputs"] for r in records] == [[ANSWER, ANSWER], [ANSWER]]
    assert records[0]["id"].startswith("cmpl-") and records[0]["usage"]["prompt_tokens"] == 4
