"""The transformers engine's log-likelihood scoring equals a direct forward pass (full log-softmax),
however the requests are batched, merged, truncated or split."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import threading

import pytest

from tests.serve.conftest import transformers_engine

TOL = 1e-4


class EngineThread:
    """An engine started on an event loop in a thread, called from the test's thread."""

    def __init__(self, engine):
        self.engine = engine
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(engine.start())

    def call(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def score_all(self, pairs: list[tuple[list[int], list[int]]]) -> list:
        """Every pair submitted at once; each result, or the exception it raised."""

        async def run():
            calls = [self.engine.loglikelihood(f"r{i}", c, x) for i, (c, x) in enumerate(pairs)]
            return await asyncio.gather(*calls, return_exceptions=True)

        return self.call(run())

    def close(self):
        self.call(self.engine.shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@contextlib.contextmanager
def running(engine):
    runner = EngineThread(engine)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_checkpoint).eval()


@pytest.fixture(scope="module")
def engine(served_model):
    with running(
        transformers_engine(served_model, max_batch_size=8, score_token_budget=256)
    ) as runner:
        yield runner


@functools.lru_cache(maxsize=256)
def _forward(model, tokens: tuple[int, ...], last: int):
    import torch

    with torch.no_grad():
        return torch.log_softmax(
            model(torch.tensor([tokens]), logits_to_keep=last).logits[0].float(), dim=-1
        )


def full_logprobs(model, tokens: list[int], last: int = 0):
    """log_softmax over the whole vocabulary at each of the `last` positions (0: all) of one
    unpadded forward pass of `tokens` alone."""
    return _forward(model, tuple(tokens), last)


def reference(model, context: list[int], continuation: list[int], max_positions: int = 2048):
    """lm-eval's `hf` model on one request: the last max_positions + 1 tokens, the last one dropped;
    a continuation longer than max_positions in disjoint windows from the end."""
    tokens = context + continuation
    values: list[float] = []
    greedy: list[bool] = []
    end = len(tokens)
    while end > len(context):
        window = tokens[max(0, end - 1 - max_positions) : end]
        scored = min(end - len(context), len(window) - 1)
        logprobs = full_logprobs(model, window[:-1], scored)
        targets = window[-scored:]
        values[:0] = [float(logprobs[i, t]) for i, t in enumerate(targets)]
        greedy[:0] = [int(logprobs[i].argmax()) == t for i, t in enumerate(targets)]
        end -= scored
    return sum(values), all(greedy), values


def assert_matches(result, expected):
    logprob, is_greedy, values = expected
    assert result.logprob == pytest.approx(logprob, abs=TOL)
    assert list(result.token_logprobs) == pytest.approx(values, abs=TOL)
    assert result.is_greedy == is_greedy


def greedy_continuation(model, context: list[int], length: int) -> list[int]:
    tokens = list(context)
    for _ in range(length):
        tokens.append(int(full_logprobs(model, tokens, 1)[-1].argmax()))
    return tokens[len(context) :]


def test_option_loglikelihoods_equal_a_direct_forward_pass_in_mixed_batches(engine, model):
    rng = random.Random(0)
    pairs = []
    for length in (3, 17, 40, 9, 64):  # questions of mixed lengths, four one-token options each
        question = [rng.randrange(100, 30000) for _ in range(length)]
        pairs += [(question, [option]) for option in (330, 365, 334, 384)]
        pairs.append((question, greedy_continuation(model, question, 1)))  # the greedy option
    for _ in range(6):  # multi-token continuations, some sharing a context
        context = [rng.randrange(100, 30000) for _ in range(rng.randrange(1, 50))]
        pairs.append((context, [rng.randrange(100, 30000) for _ in range(rng.randrange(2, 9))]))
        pairs.append((context, greedy_continuation(model, context, 4)))
    results = engine.score_all(pairs)
    for (context, continuation), result in zip(pairs, results):
        assert not isinstance(result, BaseException), result
        assert_matches(result, reference(model, context, continuation))
    assert sum(r.is_greedy for r in results) == 11


def test_an_input_longer_than_the_context_limit_keeps_its_last_tokens_as_lm_eval_does(
    served_model, model
):
    rng = random.Random(1)
    pairs = [
        (
            [rng.randrange(100, 30000) for _ in range(n)],
            [rng.randrange(100, 30000) for _ in range(k)],
        )
        for n, k in ((40, 3), (12, 1), (11, 2), (5, 12))
    ]
    with running(transformers_engine(served_model, max_positions=12)) as short:
        results = short.score_all(pairs)
    for (context, continuation), result in zip(pairs, results):
        assert_matches(result, reference(model, context, continuation, max_positions=12))


def test_a_continuation_longer_than_the_context_limit_is_scored_whole_in_windows(
    served_model, model
):
    rng = random.Random(2)
    context = [rng.randrange(100, 30000) for _ in range(7)]
    continuation = [rng.randrange(100, 30000) for _ in range(30)]
    with running(transformers_engine(served_model, max_positions=8)) as short:
        [result] = short.score_all([(context, continuation)])
    assert len(result.token_logprobs) == 30
    assert_matches(result, reference(model, context, continuation, max_positions=8))


def test_scoring_requests_with_bad_input_fail_alone_with_a_clear_error(engine, model):
    good = ([400, 500, 600], [700])
    results = engine.score_all([good, ([1, 2], [10**9]), ([], [5]), ([5], []), ([-1], [5]), good])
    assert_matches(results[0], reference(model, *good))
    assert results[5] == results[0]
    assert isinstance(results[1], ValueError) and "1000000000" in str(results[1])
    assert isinstance(results[2], ValueError) and "context is empty" in str(results[2])
    assert isinstance(results[3], ValueError) and "continuation is empty" in str(results[3])
    assert isinstance(results[4], ValueError) and "-1" in str(results[4])


def test_a_scoring_request_whose_forward_pass_raises_fails_alone(engine, model, monkeypatch):
    from ocx.adapters.serve import scoring
    from ocx.adapters.serve.engine import SequenceFailed

    forward = scoring.forward
    poison = 31337

    def poisoned_forward(model_, rows, pad_id):
        if any(poison in row.input_ids for row in rows):
            raise RuntimeError("poisoned forward pass")
        return forward(model_, rows, pad_id)

    monkeypatch.setattr(scoring, "forward", poisoned_forward)
    pairs = [([11, 12, 13, i], [20 + i]) for i in range(7)]
    pairs.insert(3, ([11, poison, 13], [21, 22]))
    results = engine.score_all(pairs)
    assert isinstance(results[3], SequenceFailed) and "poisoned" not in str(results[3])
    for (context, continuation), result in zip(pairs[:3] + pairs[4:], results[:3] + results[4:]):
        assert_matches(result, reference(model, context, continuation))


def test_scoring_and_generation_share_the_worker_and_both_finish(engine, model):
    from ocx.harness.sampling import Sampling

    async def run():
        async def generated(i):
            return [
                s.token_ids
                async for s in engine.engine.generate(
                    f"g{i}", [100 + i, 200, 300], Sampling(max_tokens=6)
                )
            ]

        gen = [asyncio.ensure_future(generated(i)) for i in range(3)]
        scores = [
            engine.engine.loglikelihood(f"s{i}", [50 + i, 60, 70], [80, 90]) for i in range(40)
        ]
        return await asyncio.gather(*gen), await asyncio.gather(*scores)

    steps, scores = engine.call(run())
    assert all(sum(len(t) for t in s) == 6 for s in steps)
    assert_matches(scores[7], reference(model, [57, 60, 70], [80, 90]))
