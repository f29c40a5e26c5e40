"""Generated-token and prompt log-probabilities from the transformers engine equal a direct
forward pass, ride on the Steps of the rows that ask, and cost nothing to rows that don't."""

from __future__ import annotations

import asyncio

import pytest

from tests.serve.conftest import transformers_engine
from tests.serve.test_engine_loglikelihood import TOL, full_logprobs, running

PROMPTS = [[1, 400, 500, 600, 700, 800, 900], [1, 222], [1, 4000, 4100, 4200, 4300]]


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_checkpoint).eval()


@pytest.fixture(scope="module")
def engine(served_model):
    with running(transformers_engine(served_model, max_batch_size=8)) as runner:
        yield runner


def generate_all(engine, jobs: list[tuple[list[int], object]]) -> list[list]:
    """Every (prompt, sampling) at once, so they share prefill and decode passes; their Steps."""

    async def steps(i, prompt, sampling):
        return [s async for s in engine.engine.generate(f"lp{i}", prompt, sampling)]

    async def run():
        return await asyncio.gather(*(steps(i, p, s) for i, (p, s) in enumerate(jobs)))

    return engine.call(run())


def assert_token_logprob(entry, logprobs_row, token: int, top: int):
    """One TokenLogprob against the full log-softmax row of the forward pass."""
    assert entry.token_id == token
    assert entry.logprob == pytest.approx(float(logprobs_row[token]), abs=TOL)
    assert entry.rank == int((logprobs_row >= logprobs_row[token]).sum())
    best = logprobs_row.topk(top)
    assert [t for t, _ in entry.top] == best.indices.tolist()
    assert [v for _, v in entry.top] == pytest.approx(best.values.tolist(), abs=TOL)


@pytest.mark.parametrize("incremental", [True, False])
def test_generated_token_logprobs_equal_the_forward_pass_and_greedy_has_rank_one(
    engine, model, incremental
):
    from ocx.harness.sampling import Sampling

    asking = Sampling(temperature=0, max_tokens=5, logprobs=3, incremental=incremental)
    quiet = Sampling(temperature=0, max_tokens=5, incremental=incremental)
    results = generate_all(
        engine, [(PROMPTS[0], asking), (PROMPTS[1], quiet), (PROMPTS[2], asking)]
    )
    for prompt, steps in ((PROMPTS[0], results[0]), (PROMPTS[2], results[2])):
        tokens = [t for s in steps for t in s.token_ids]
        entries = [e for s in steps for e in s.logprobs]
        assert len(entries) == len(tokens) == 5
        logprobs = full_logprobs(model, prompt + tokens[:-1], len(tokens))
        for i, (entry, token) in enumerate(zip(entries, tokens)):
            assert_token_logprob(entry, logprobs[i], token, 3)
            assert entry.rank == 1 and entry.top[0][0] == token
    assert all(s.logprobs is None and s.prompt_logprobs is None for s in results[1])


def test_logprobs_are_the_raw_distribution_whatever_the_sampling_settings(engine, model):
    from ocx.harness.sampling import Sampling

    hot = Sampling(
        temperature=1.7,
        top_p=0.5,
        top_k=7,
        repetition_penalty=1.3,
        presence_penalty=0.5,
        max_tokens=4,
        seed=3,
        logprobs=0,
    )
    [steps] = generate_all(engine, [(PROMPTS[0], hot)])
    tokens = [t for s in steps for t in s.token_ids]
    logprobs = full_logprobs(model, PROMPTS[0] + tokens[:-1], len(tokens))
    for i, (entry, token) in enumerate(zip([e for s in steps for e in s.logprobs], tokens)):
        assert entry.top == ()
        assert entry.logprob == pytest.approx(float(logprobs[i, token]), abs=TOL)
        assert entry.rank == int((logprobs[i] >= logprobs[i, token]).sum())


@pytest.mark.parametrize("incremental", [True, False])
def test_prompt_logprobs_come_on_the_first_step_and_equal_the_forward_pass(
    engine, model, incremental
):
    from ocx.harness.sampling import Sampling

    asking = Sampling(temperature=0, max_tokens=3, prompt_logprobs=2, incremental=incremental)
    quiet = Sampling(temperature=0, max_tokens=3, incremental=incremental)
    # Mixed lengths in one prefill: the left padding must not shift any row's positions.
    results = generate_all(
        engine, [(PROMPTS[0], asking), (PROMPTS[1], asking), (PROMPTS[2], quiet)]
    )
    for prompt, steps in zip(PROMPTS[:2], results[:2]):
        first = steps[0].prompt_logprobs
        assert len(first) == len(prompt) and first[0] is None
        logprobs = full_logprobs(model, prompt)
        for position, entry in enumerate(first[1:]):
            assert_token_logprob(entry, logprobs[position], prompt[position + 1], 2)
        assert all(s.prompt_logprobs is None for s in steps[1:])
        assert all(s.logprobs is None for s in steps)
    assert all(s.prompt_logprobs is None for s in results[2])


def test_a_row_that_asks_for_nothing_gets_the_same_tokens_either_way(engine):
    from ocx.harness.sampling import Sampling

    plain = Sampling(temperature=0.9, max_tokens=6, seed=11)
    asking = Sampling(temperature=0.9, max_tokens=6, seed=11, logprobs=5, prompt_logprobs=1)
    a, b = generate_all(engine, [(PROMPTS[0], plain), (PROMPTS[0], asking)])
    assert [s.token_ids for s in a] == [s.token_ids for s in b]


def test_a_one_token_prompt_has_one_empty_prompt_logprob(served_model):
    from ocx.harness.sampling import Sampling

    with running(transformers_engine(served_model)) as engine:
        [steps] = generate_all(
            engine, [([1], Sampling(max_tokens=1, prompt_logprobs=0, logprobs=0))]
        )
    assert steps[0].prompt_logprobs == (None,) and len(steps[0].logprobs) == 1


def test_only_rows_that_ask_for_prompt_logprobs_get_logits_at_every_position(engine, monkeypatch):
    from ocx.harness.sampling import Sampling

    model = engine.engine.model
    passes = []
    forward = model.forward

    def recording_forward(*args, **kwargs):
        passes.append((kwargs["input_ids"].shape[0], kwargs.get("logits_to_keep")))
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", recording_forward)
    quiet = Sampling(temperature=0, max_tokens=2)
    asking = Sampling(temperature=0, max_tokens=2, prompt_logprobs=1)
    results = generate_all(engine, [(PROMPTS[0], quiet), (PROMPTS[1], asking), (PROMPTS[2], quiet)])
    assert results[1][0].prompt_logprobs is not None
    every_position = [rows for rows, keep in passes if keep == 0]
    assert every_position == [
        1
    ]  # the asking row alone; the quiet ones had only their last position
