"""The transformers engine's dynamic batching, and the engine-independent text layer."""

from __future__ import annotations

import asyncio

import pytest

from ocx.adapters.serve.engine import SamplingSettings, Step
from ocx.adapters.serve.generation import ChoiceState, IncrementalDecoder, stream_choice
from tests.serve.conftest import hf_greedy

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_model(served_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(served_model.path).eval()


def _prompts(model):
    from ocx.harness.templates.encode import encode_prompt

    texts = ["Hi", "Tell me a long story about a dragon and a knight, please.", "2+2?"]
    return [
        encode_prompt(model.template, model.tokenizer, [{"role": "user", "content": t}])
        for t in texts
    ]


def _greedy(steps: int, eot: int) -> SamplingSettings:
    return SamplingSettings(max_tokens=steps, stop_token_ids=(eot,), temperature=0)


def test_batched_greedy_decoding_equals_transformers_generate_per_prompt(tiny_model, served_model):
    from ocx.adapters.serve.batching import Sequence, decode_step, merge, prefill, sample, select

    eot, steps = served_model.stop_token_ids[0], 8
    prompts = _prompts(served_model)
    expected = [hf_greedy(tiny_model, p, steps, eot) for p in prompts]
    # Rows 0 and 1 start together; row 2 joins after 3 steps; row 0 leaves after 5 tokens.
    rows = [Sequence.create(str(i), p, _greedy(steps, eot)) for i, p in enumerate(prompts)]
    batch, logits = prefill(tiny_model, rows[:2], eot)
    for t in range(steps - 1):
        for i, row in enumerate(batch.rows):
            row.append(sample(logits[i], row))
        if t == 4:
            batch = select(batch, [i for i, r in enumerate(batch.rows) if r.request_id != "0"])
        if t == 2:
            late, late_logits = prefill(tiny_model, [rows[2]], eot)
            rows[2].append(sample(late_logits[0], rows[2]))
            batch = merge(batch, late)
        batch, logits = decode_step(tiny_model, batch)
    assert rows[0].generated == expected[0][:5]
    assert rows[1].generated == expected[1][: len(rows[1].generated)]
    assert rows[2].generated == expected[2][: len(rows[2].generated)]
    assert len(rows[1].generated) == steps - 1 and len(rows[2].generated) >= 4


def test_top_p_keeps_only_the_nucleus_and_penalties_change_greedy_choice(served_model):
    from ocx.adapters.serve.batching import Sequence, sample

    logits = torch.tensor([4.0, 3.9, -5.0, -5.0])
    seq = Sequence.create(
        "x", [1], SamplingSettings(max_tokens=5, stop_token_ids=(99,), top_p=0.5, seed=0)
    )
    assert {sample(logits, seq) for _ in range(50)} == {0}
    penalised = Sequence.create(
        "y",
        [1],
        SamplingSettings(max_tokens=5, stop_token_ids=(99,), temperature=0, frequency_penalty=1.0),
    )
    penalised.append(0)
    assert sample(logits, penalised) == 1


def _drawn(logits, settings: SamplingSettings, history=(), draws=200) -> set[int]:
    from ocx.adapters.serve.batching import Sequence, sample

    seq = Sequence.create("x", [1], settings)
    for token in history:
        seq.append(token)
    return {sample(logits, seq) for _ in range(draws)}


def test_top_k_samples_only_among_the_k_likeliest_tokens():
    logits = torch.tensor([2.0, 1.9, 1.8, 1.7, 1.6])
    assert _drawn(logits, SamplingSettings(max_tokens=5, seed=0, temperature=1.0)) == {
        0,
        1,
        2,
        3,
        4,
    }
    assert _drawn(logits, SamplingSettings(max_tokens=5, seed=0, temperature=1.0, top_k=2)) == {
        0,
        1,
    }
    assert _drawn(
        logits, SamplingSettings(max_tokens=5, seed=0, temperature=1.0, top_k=2**31 - 1)
    ) == {0, 1, 2, 3, 4}


def test_min_p_drops_tokens_far_less_likely_than_the_top_one():
    # Probabilities ~ 0.49, 0.49, 0.018, 0.0003: min_p 0.1 keeps the first two only.
    logits = torch.tensor([5.0, 5.0, 1.7, -2.5])
    assert _drawn(logits, SamplingSettings(max_tokens=5, seed=1, temperature=1.0), draws=2000) >= {
        0,
        1,
        2,
    }
    assert _drawn(logits, SamplingSettings(max_tokens=5, seed=1, temperature=1.0, min_p=0.1)) == {
        0,
        1,
    }
    assert _drawn(logits, SamplingSettings(max_tokens=5, seed=1, temperature=1.0, min_p=1.0)) == {
        0,
        1,
    }


def test_repetition_penalty_counts_prompt_and_answer_tokens_and_changes_the_greedy_choice():
    from ocx.adapters.serve.batching import Sequence, sample

    logits = torch.tensor([3.0, 2.9, -1.0, -1.2])
    greedy = dict(max_tokens=5, temperature=0)
    assert sample(logits, Sequence.create("a", [1], SamplingSettings(**greedy))) == 0
    penalised = SamplingSettings(**greedy, repetition_penalty=1.2)
    assert (
        sample(logits, Sequence.create("b", [0], penalised)) == 1
    )  # 0 is in the prompt: 3.0 / 1.2 < 2.9
    answered = Sequence.create("c", [2], penalised)
    answered.append(0)
    assert sample(logits, answered) == 1  # 0 in the answer so far
    # A penalty below 1 favours what was seen: 2.9 / 0.5 > 3.0.
    assert (
        sample(
            logits, Sequence.create("d", [1], SamplingSettings(**greedy, repetition_penalty=0.5))
        )
        == 1
    )


def test_the_transformers_engine_declares_every_sampling_field_it_honours():
    from ocx.adapters.serve.hf_engine import TransformersEngine
    from ocx.harness.sampling import ALL_FIELDS, Sampling, honoured_fields

    assert honoured_fields(TransformersEngine) == ALL_FIELDS
    assert (
        Sampling(top_k=5, min_p=0.2, repetition_penalty=1.3).unsupported(
            honoured_fields(TransformersEngine)
        )
        == []
    )


class ScriptedEngine:
    """Yields fixed token IDs, one per step, to test the text layer without a model."""

    name = "scripted"

    def __init__(self, tokens, finish):
        self.tokens, self.finish, self.aborted = tokens, finish, []

    async def generate(self, request_id, prompt_ids, settings):
        for i, t in enumerate(self.tokens):
            last = i == len(self.tokens) - 1
            yield Step((t,), self.finish if last else None)

    async def abort(self, request_id):
        self.aborted.append(request_id)


def _run(engine, tokenizer, stops=(), eot=32000):
    state = ChoiceState(0)
    settings = SamplingSettings(max_tokens=100, stop_token_ids=(eot,))

    async def collect():
        deltas = stream_choice(engine, "r", [1], settings, tokenizer, stops, state)
        return [d.text async for d in deltas if d.text]

    return asyncio.run(collect()), state


def test_eot_token_is_counted_but_never_shown(served_model):
    tok = served_model.tokenizer
    ids = tok.encode_text("Hello there, friend")
    deltas, state = _run(ScriptedEngine([*ids, 32000], "stop"), tok)
    assert "".join(deltas) == state.text == "Hello there, friend"
    assert state.completion_tokens == len(ids) + 1 and state.finish_reason == "stop"


def test_stop_string_split_across_tokens_is_never_streamed_in_part(served_model):
    tok = served_model.tokenizer
    ids = tok.encode_text("one two three four five")
    engine = ScriptedEngine(ids, "length")
    deltas, state = _run(engine, tok, stops=("ree fo",))
    assert state.text == "".join(deltas) == "one two th"
    assert state.finish_reason == "stop" and engine.aborted == ["r"]
    assert not any("ree" in d for d in deltas)


def test_incremental_decoding_equals_whole_decoding_with_multibyte_characters(served_model):
    tok = served_model.tokenizer
    text = "Grüße, 世界! 🙂 ok  two  spaces"
    ids = tok.encode_text(text)
    decoder = IncrementalDecoder(tok)
    pieces = [decoder.push([i]) for i in ids[:-1]] + [decoder.push([ids[-1]], final=True)]
    assert "".join(pieces) == tok.decode(ids) == text
    assert all("\ufffd" not in p for p in pieces)


def test_engine_batches_concurrent_requests_into_shared_forward_passes(served_model):
    from ocx.adapters.serve.hf_engine import TransformersEngine

    eot = served_model.stop_token_ids[0]
    prompts = _prompts(served_model) * 3
    batch_sizes = []

    async def run():
        engine = TransformersEngine(served_model.path, pad_id=eot, max_batch_size=4)
        await engine.start()
        forward = engine.model.forward

        def counting_forward(*args, **kwargs):
            batch_sizes.append(kwargs["input_ids"].shape[0])
            return forward(*args, **kwargs)

        engine.model.forward = counting_forward
        try:

            async def one(i, p):
                return [
                    t
                    async for s in engine.generate(str(i), p, _greedy(10, eot))
                    for t in s.token_ids
                ]

            return await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
        finally:
            await engine.shutdown()

    outputs = asyncio.run(run())
    assert all(len(o) == 10 or o[-1] == eot for o in outputs)
    assert max(batch_sizes) == 4, batch_sizes  # never more than max_batch_size, and it fills up
    assert len(batch_sizes) < sum(len(o) for o in outputs) / 2, batch_sizes
    assert outputs[0] == outputs[3] == outputs[6]  # same prompt, greedy: batch-independent


def test_requests_arriving_during_a_batch_are_gathered_into_one_prefill_but_never_wait_long(
    served_model,
):
    from collections import deque

    from ocx.adapters.serve.hf_engine import _GATHER_STEPS, TransformersEngine

    engine = TransformersEngine(served_model.path, pad_id=0, max_batch_size=4)
    running = [object()] * 2  # a batch of 2 (only its length matters here)
    assert engine._admit_now(None, deque(["a"]))  # an idle engine admits a lone request at once
    assert not engine._admit_now(running, deque())
    # A lone arrival during a batch waits for company, for a bounded number of steps.
    waits = 0
    while not engine._admit_now(running, deque(["a"])):
        waits += 1
        assert waits <= _GATHER_STEPS
    assert waits == _GATHER_STEPS
    # Enough arrivals to fill the batch go in at once; a full batch admits nobody.
    assert engine._admit_now(running, deque(["a", "b"]))
    assert not any(
        engine._admit_now([object()] * 4, deque(["a"])) for _ in range(3 * _GATHER_STEPS)
    )
    # Once room opens, a request that has already waited is not held again.
    assert engine._admit_now(running, deque(["a"]))


def test_non_streaming_sequences_get_all_tokens_in_one_final_step(served_model):
    from ocx.adapters.serve.hf_engine import TransformersEngine

    eot = served_model.stop_token_ids[0]
    prompt = _prompts(served_model)[0]

    async def run():
        engine = TransformersEngine(served_model.path, pad_id=eot)
        await engine.start()
        try:
            whole = [
                s
                async for s in engine.generate(
                    "a",
                    prompt,
                    SamplingSettings(
                        max_tokens=6, stop_token_ids=(eot,), temperature=0, incremental=False
                    ),
                )
            ]
            streamed = [s async for s in engine.generate("b", prompt, _greedy(6, eot))]
            return whole, streamed
        finally:
            await engine.shutdown()

    whole, streamed = asyncio.run(run())
    assert len(whole) == 1 and whole[0].finish_reason == streamed[-1].finish_reason
    assert list(whole[0].token_ids) == [t for s in streamed for t in s.token_ids]
    assert len(streamed) == len(whole[0].token_ids)


def test_eot_generated_by_the_model_ends_the_turn(tiny_model, served_model, tmp_path):
    """Swap the lm_head rows of greedy's third token and the EOT: greedy must stop there."""
    from safetensors.torch import load_file, save_file

    from ocx.adapters.serve.hf_engine import TransformersEngine

    eot = served_model.stop_token_ids[0]
    prompt = _prompts(served_model)[0]
    greedy = hf_greedy(tiny_model, prompt, 6, eot)
    target = greedy[2]
    folder = tmp_path / "eot"
    folder.mkdir()
    for f in served_model.path.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    weights = load_file(folder / "model.safetensors")
    head = weights["lm_head.weight"]
    head[[target, eot]] = head[[eot, target]]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    cut = greedy.index(target)

    async def run():
        engine = TransformersEngine(folder, pad_id=eot)
        await engine.start()
        try:
            return [s async for s in engine.generate("a", prompt, _greedy(20, eot))]
        finally:
            await engine.shutdown()

    steps = asyncio.run(run())
    tokens = [t for s in steps for t in s.token_ids]
    assert tokens == greedy[:cut] + [eot] and steps[-1].finish_reason == "stop"


def test_top_k_1_and_min_p_1_sample_exactly_the_greedy_answer_through_the_server(server_url):
    import httpx

    def answer(**fields) -> str:
        body = {
            "model": "tiny-chat",
            "messages": [{"role": "user", "content": "Name a colour."}],
            "max_tokens": 12,
            **fields,
        }
        r = httpx.post(f"{server_url}/v1/chat/completions", json=body, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["message"]["content"]

    greedy = answer(temperature=0)
    sampled = [answer(temperature=1.0, seed=s) for s in (1, 2)]
    assert any(text != greedy for text in sampled)  # a random model's sampling wanders off greedy
    assert answer(temperature=1.0, seed=1, top_k=1) == greedy
    assert answer(temperature=1.0, seed=2, min_p=1.0) == greedy
