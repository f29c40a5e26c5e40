"""ocx's HTTP backend scoring log-likelihoods through ocx serve's `/v1/completions`: exact values
from a model-free engine, and a real transformers engine equal to a direct forward pass."""

from __future__ import annotations

import pytest

from ocx.harness.backends.openai_http import OpenAIBackend
from ocx.harness.logprobs import LoglikelihoodRequest
from tests.serve.conftest import running_server
from tests.serve.fake_logprobs import LogprobEngine, prompt_logprob


def _score(backend, requests):
    results, errors = {}, {}
    backend.loglikelihood(requests, results.__setitem__, errors.__setitem__)
    return results, errors


def test_each_request_gets_its_continuations_prompt_logprobs_from_the_server(served_model):
    requests = [
        LoglikelihoodRequest(i, tuple(range(1, 2 + i)), (40 + i, 50 + i, 60)) for i in range(6)
    ]
    with running_server(LogprobEngine([7, 8]), served_model) as url:
        results, errors = _score(OpenAIBackend(f"{url}/v1", "tiny-chat", concurrency=4), requests)
    assert errors == {}
    for r in requests:
        start = len(r.context_ids)
        expected = [prompt_logprob(k) for k in range(start, start + 3)]
        assert results[r.index].token_logprobs == tuple(expected)
        assert results[r.index].logprob == sum(expected) and results[r.index].is_greedy


def test_scores_through_the_transformers_engine_equal_a_direct_forward_pass(
    server_url, served_model
):
    import torch
    from transformers import AutoModelForCausalLM

    requests = [
        LoglikelihoodRequest(0, (1, 415, 5565, 302), (4843, 349)),
        LoglikelihoodRequest(1, (1, 22557), (28725, 1526, 28723)),
    ]
    results, errors = _score(
        OpenAIBackend(f"{server_url}/v1", "tiny-chat", concurrency=2), requests
    )
    assert errors == {}
    model = AutoModelForCausalLM.from_pretrained(served_model.path, dtype=torch.float32).eval()
    for r in requests:
        tokens = [*r.context_ids, *r.continuation_ids]
        with torch.no_grad():
            logsoftmax = torch.log_softmax(model(torch.tensor([tokens])).logits[0].float(), dim=-1)
        positions = range(len(r.context_ids), len(tokens))
        expected = [float(logsoftmax[k - 1, tokens[k]]) for k in positions]
        greedy = all(int(logsoftmax[k - 1].argmax()) == tokens[k] for k in positions)
        assert list(results[r.index].token_logprobs) == pytest.approx(expected, abs=1e-4)
        assert results[r.index].is_greedy == greedy
