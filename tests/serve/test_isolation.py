"""A failure inside the engine fails only the sequence that caused it; every other user goes on."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.serve.conftest import running_server, transformers_engine

POISON_SEED = 666
POISON_WORD = "zebra"


def _request(i: int, **fields) -> dict:
    return {
        "model": "tiny-chat",
        "messages": [{"role": "user", "content": f"user {i}: hello there"}],
        "max_tokens": 16,
        "seed": i,
        **fields,
    }


async def _stream(c: httpx.AsyncClient, body: dict) -> list[dict]:
    events = []
    async with c.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line.removeprefix("data: ")))
    return events


def _finished(events: list[dict]) -> bool:
    return any(e.get("choices") and e["choices"][0]["finish_reason"] for e in events) and not any(
        "error" in e for e in events
    )


def _run_with_neighbours(
    url: str, poisoned: dict
) -> tuple[list[list[dict]], list[dict], httpx.Response]:
    """Three normal streams, the poisoned request streamed and not, all at once."""

    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            normal = [asyncio.ensure_future(_stream(c, _request(i))) for i in range(3)]
            bad_stream = asyncio.ensure_future(_stream(c, poisoned))
            bad_whole = await c.post("/v1/chat/completions", json=poisoned)
            return await asyncio.gather(*normal), await bad_stream, bad_whole

    return asyncio.run(run())


def _assert_generation_failed(error: dict) -> None:
    assert error["type"] == "server_error" and error["code"] == "generation_failed"
    assert "poisoned" not in error["message"], "internal detail leaked to the client"


@pytest.fixture
def engine_server(served_model):
    engine = transformers_engine(served_model, max_batch_size=16)
    with running_server(engine, served_model) as url:
        yield engine, url


def test_a_sequence_whose_sampling_raises_fails_alone(engine_server, monkeypatch):
    from ocx.adapters.serve import batching

    sample = batching.sample

    def poisoned_sample(logits, seq):
        if seq.settings.seed == POISON_SEED:
            raise RuntimeError("poisoned sampler")
        return sample(logits, seq)

    monkeypatch.setattr(batching, "sample", poisoned_sample)
    engine, url = engine_server
    normal, bad_stream, bad_whole = _run_with_neighbours(url, _request(POISON_SEED))
    assert all(_finished(events) for events in normal)
    _assert_generation_failed(bad_stream[-1]["error"])
    assert bad_whole.status_code == 500
    _assert_generation_failed(bad_whole.json()["error"])
    assert httpx.get(f"{url}/health").json()["pending"] == 0


def test_a_prompt_whose_forward_pass_raises_fails_alone_even_when_batched_with_others(
    engine_server, served_model
):
    engine, url = engine_server
    poison_ids = set(served_model.tokenizer.encode_text(POISON_WORD))
    forward = engine.model.forward

    def poisoned_forward(*args, input_ids=None, **kwargs):
        if (
            poison_ids & set(input_ids.flatten().tolist()) and input_ids.shape[1] > 1
        ):  # prefill only
            raise RuntimeError("poisoned forward")
        return forward(*args, input_ids=input_ids, **kwargs)

    engine.model.forward = poisoned_forward
    poisoned = _request(7, messages=[{"role": "user", "content": f"a {POISON_WORD} " * 3}])
    normal, bad_stream, bad_whole = _run_with_neighbours(url, poisoned)
    assert all(_finished(events) for events in normal)
    _assert_generation_failed(bad_stream[-1]["error"])
    _assert_generation_failed(bad_whole.json()["error"])
    assert httpx.get(f"{url}/health").json()["pending"] == 0
    assert engine.active_sequences == 0


def test_seeds_at_the_int64_limits_wrap_per_choice_and_are_reproducible(engine_server):
    _, url = engine_server
    body = _request(0, seed=2**63 - 1, n=2, max_tokens=6)
    first = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).json()
    again = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).json()
    assert [c["message"]["content"] for c in first["choices"]] == [
        c["message"]["content"] for c in again["choices"]
    ]
    # Choice 1 used seed 2**63 - 1 + 1, wrapped to -2**63: the same as asking for that seed alone.
    alone = httpx.post(
        f"{url}/v1/chat/completions", json={**body, "seed": -(2**63), "n": 1}, timeout=60
    ).json()
    assert alone["choices"][0]["message"]["content"] == first["choices"][1]["message"]["content"]
