"""End to end with the real transformers engine: `/v1/completions` echo + logprobs equal a direct
forward pass, and chat logprobs describe the greedy tokens the server generated."""

from __future__ import annotations

import httpx
import pytest

from tests.serve.test_completions import lm_eval_parse

PROMPTS = [[1, 415, 5565, 302, 4843, 349], [1, 22557, 28725, 1526]]


@pytest.fixture(scope="module")
def reference(served_model):
    """Per-position log-softmax from one plain transformers forward pass per prompt."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(served_model.path, dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for prompt in PROMPTS:
            logits = model(torch.tensor([prompt])).logits[0].float()
            out.append(torch.log_softmax(logits, dim=-1))
    return out


def test_echoed_prompt_logprobs_equal_a_direct_forward_pass(server_url, reference):
    r = httpx.post(
        f"{server_url}/v1/completions",
        timeout=120,
        json={
            "model": "tiny-chat",
            "prompt": PROMPTS,
            "max_tokens": 1,
            "logprobs": 1,
            "echo": True,
            "temperature": 0,
            "seed": 1234,
        },
    )
    assert r.status_code == 200, r.text
    choices = sorted(r.json()["choices"], key=lambda c: c["index"])
    for choice, prompt, logsoftmax in zip(choices, PROMPTS, reference):
        values = choice["logprobs"]["token_logprobs"]
        assert len(values) == len(prompt) + 1 and values[0] is None
        expected = [float(logsoftmax[k - 1, prompt[k]]) for k in range(1, len(prompt))]
        assert values[1 : len(prompt)] == pytest.approx(expected, abs=1e-4)
        assert values[-1] == pytest.approx(
            float(logsoftmax[-1].max()), abs=1e-4
        )  # greedy: the likeliest
        total, greedy = lm_eval_parse(choice, 2)
        assert total == pytest.approx(sum(expected[1:]), abs=1e-4)
        ranks_first = [float(logsoftmax[k - 1].max()) for k in range(2, len(prompt))]
        assert greedy == all(abs(e - m) < 1e-6 for e, m in zip(expected[1:], ranks_first))


def test_chat_logprobs_report_each_greedy_token_as_its_own_likeliest(server_url):
    r = httpx.post(
        f"{server_url}/v1/chat/completions",
        timeout=120,
        json={
            "model": "tiny-chat",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 8,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 3,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    content = body["choices"][0]["logprobs"]["content"]
    shown = body["usage"]["completion_tokens"] - (body["choices"][0]["finish_reason"] == "stop")
    assert len(content) == shown
    for entry in content:
        assert len(entry["top_logprobs"]) == 3
        assert entry["logprob"] == pytest.approx(entry["top_logprobs"][0]["logprob"], abs=1e-6)
        assert entry["logprob"] <= 0


def test_the_openai_sdk_reads_both_logprob_shapes(client):
    completion = client.completions.create(
        model="tiny-chat", prompt=PROMPTS[0], max_tokens=2, echo=True, logprobs=2, temperature=0
    )
    logprobs = completion.choices[0].logprobs
    assert logprobs.token_logprobs[0] is None and len(logprobs.tokens) == len(PROMPTS[0]) + 2
    assert all(isinstance(o, int) for o in logprobs.text_offset)
    chat = client.chat.completions.create(
        model="tiny-chat",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=3,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    content = chat.choices[0].logprobs.content
    assert content and all(len(c.top_logprobs) == 2 and isinstance(c.bytes, list) for c in content)
