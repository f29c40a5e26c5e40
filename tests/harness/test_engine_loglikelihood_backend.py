"""`EngineBackend.loglikelihood`: eval's log-likelihood requests go to the engine many at a time,
each answered once (result or error), and an engine that cannot score says so up front."""

from __future__ import annotations

import asyncio

import pytest

from ocx.harness.backends.engine_backend import EngineBackend, ScoringUnsupported
from ocx.harness.logprobs import Loglikelihood, LoglikelihoodRequest


class CountingEngine:
    """Scores a request as minus the sum of its continuation IDs; request 13 raises."""

    name = "counting"

    def __init__(self):
        self.in_flight = 0
        self.most_in_flight = 0

    async def start(self):
        pass

    async def shutdown(self):
        pass

    async def loglikelihood(self, request_id, context_ids, continuation_ids):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            if context_ids == [13]:
                raise ValueError("bad request 13")
            return Loglikelihood(
                -float(sum(continuation_ids)), True, tuple(-float(t) for t in continuation_ids)
            )
        finally:
            self.in_flight -= 1


def _requests(n):
    return (LoglikelihoodRequest(i, (i,), (i, 1)) for i in range(n))


def test_every_request_is_answered_once_with_at_most_max_in_flight_at_the_engine():
    engine = CountingEngine()
    backend = EngineBackend(engine, local=None, max_in_flight=5)
    results, errors = {}, {}
    try:
        backend.loglikelihood(_requests(40), results.__setitem__, errors.__setitem__)
    finally:
        backend.close()
    assert sorted(results) == [i for i in range(40) if i != 13]
    assert results[7] == Loglikelihood(-8.0, True, (-7.0, -1.0))
    assert list(errors) == [13] and "bad request 13" in str(errors[13])
    assert 1 < engine.most_in_flight <= 5


def test_an_engine_without_loglikelihood_is_refused_before_any_request_is_taken():
    class GenerateOnly:
        name = "generate-only"

    taken = []

    def requests():
        for r in _requests(3):
            taken.append(r.index)
            yield r

    backend = EngineBackend(GenerateOnly(), local=None)
    with pytest.raises(
        ScoringUnsupported, match="generate-only engine cannot score log-likelihoods"
    ):
        backend.loglikelihood(requests(), lambda *a: None, lambda *a: None)
    assert taken == []


def test_the_transformers_engine_scores_through_the_backend_as_a_forward_pass(
    tmp_path, mistral_tokenizer_file
):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    from ocx.adapters.hf.tiny import build_tiny_checkpoint
    from ocx.adapters.serve.hf_engine import TransformersEngine
    from ocx.harness.backends.local import LocalModel

    folder = build_tiny_checkpoint(tmp_path / "tiny", mistral_tokenizer_file, "openchat_3.5")
    local = LocalModel(folder, "openchat_3.5")
    question = tuple(local.tokenizer.encode_text("Question: 2 + 2 = ?\nAnswer:"))
    requests = [
        LoglikelihoodRequest(i, question, (option,))
        for i, option in enumerate((330, 365, 334, 384))
    ]
    requests.append(LoglikelihoodRequest(4, question, (330, 365, 334)))
    results = {}
    backend = EngineBackend(TransformersEngine(folder, pad_id=local.eot_id), local)
    try:
        backend.loglikelihood(
            requests, results.__setitem__, lambda i, e: pytest.fail(f"request {i}: {e}")
        )
    finally:
        backend.close()
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    for request in requests:
        tokens = list(request.context_ids + request.continuation_ids)
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([tokens[:-1]])).logits[0], dim=-1)
        tail = logprobs[-len(request.continuation_ids) :]
        expected = [float(tail[i, t]) for i, t in enumerate(request.continuation_ids)]
        assert list(results[request.index].token_logprobs) == pytest.approx(expected, abs=1e-4)
        assert results[request.index].logprob == pytest.approx(sum(expected), abs=1e-4)
