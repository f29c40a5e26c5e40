"""vLLM's log-probabilities through `VLLMEngine` equal transformers' forward pass on the same model:
generated-token logprobs (with ranks and alternatives), prompt logprobs and log-likelihoods.

Run in the vLLM environment: `VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python -m pytest
tests/serve/test_engine_logprobs_vllm.py -m vllm`. vLLM spawns processes, so the engine runs in
a child process (this file run as a script) that writes what it saw as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOL = 1e-4
PROMPTS = [[1, 400, 500, 600, 700, 800, 900], [1, 4000, 4100]]
PAIRS = [
    ([1, 400, 500, 600], [700]),
    ([1, 400, 500, 600], [701]),
    ([1, 30, 40], [50, 60, 70, 80]),
    ([1] + list(range(2000, 2040)), [3000, 3001]),
]


async def _collect(folder: str) -> dict:
    from ocx.adapters.serve.vllm_engine import VLLMEngine
    from ocx.harness.sampling import Sampling

    engine = VLLMEngine(
        folder,
        context_length=256,
        engine_args={"dtype": "float32", "enforce_eager": True, "max_num_seqs": 8},
    )
    await engine.start()
    try:

        async def steps(i, prompt, incremental):
            sampling = Sampling(
                temperature=0, max_tokens=4, logprobs=3, prompt_logprobs=2, incremental=incremental
            )
            return [s async for s in engine.generate(f"g{i}", prompt, sampling)]

        generated = await asyncio.gather(
            *(steps(i, p, i % 2 == 0) for i, p in enumerate(PROMPTS * 2))
        )
        scores = await asyncio.gather(
            *(engine.loglikelihood(f"s{i}", c, x) for i, (c, x) in enumerate(PAIRS))
        )
    finally:
        await engine.shutdown()

    def entry(e):
        return None if e is None else [e.token_id, e.logprob, e.rank, [list(t) for t in e.top]]

    return {
        "generated": [
            [
                {
                    "tokens": list(s.token_ids),
                    "logprobs": [entry(e) for e in s.logprobs],
                    "prompt_logprobs": None
                    if s.prompt_logprobs is None
                    else [entry(e) for e in s.prompt_logprobs],
                }
                for s in run
            ]
            for run in generated
        ],
        "scores": [s.to_dict() for s in scores],
    }


@pytest.fixture(scope="module")
def vllm_run(tmp_path_factory, mistral_tokenizer_file):
    pytest.importorskip("vllm")
    from tests.serve.conftest import vllm_tiny_checkpoint

    folder = vllm_tiny_checkpoint(
        tmp_path_factory.mktemp("vllm-lp") / "tiny", mistral_tokenizer_file
    )
    out = folder.parent / "vllm.json"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    done = subprocess.run(
        [sys.executable, __file__, str(folder), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return folder, json.loads(out.read_text())


def _logprobs(folder: Path, tokens: list[int]):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([tokens])).logits[0].float(), dim=-1)


def _assert_entry(entry, row, token: int, top: int):
    token_id, logprob, rank, alternatives = entry
    assert token_id == token
    assert logprob == pytest.approx(float(row[token]), abs=TOL)
    assert rank == int((row >= row[token]).sum())
    best = row.topk(top)
    assert [t for t, _ in alternatives] == best.indices.tolist()
    assert [v for _, v in alternatives] == pytest.approx(best.values.tolist(), abs=TOL)


@pytest.mark.vllm
def test_vllm_generated_and_prompt_logprobs_equal_the_transformers_forward_pass(vllm_run):
    folder, seen = vllm_run
    for prompt, run in zip(PROMPTS * 2, seen["generated"]):
        tokens = [t for step in run for t in step["tokens"]]
        entries = [e for step in run for e in step["logprobs"]]
        assert len(entries) == len(tokens) == 4
        row = _logprobs(folder, prompt + tokens[:-1])
        for i, (entry, token) in enumerate(zip(entries, tokens)):
            _assert_entry(entry, row[len(prompt) - 1 + i], token, 3)
            assert entry[2] == 1  # greedy
        first = run[0]["prompt_logprobs"]
        assert first[0] is None and len(first) == len(prompt)
        for position, entry in enumerate(first[1:]):
            _assert_entry(entry, row[position], prompt[position + 1], 2)
        assert all(step["prompt_logprobs"] is None for step in run[1:])


@pytest.mark.vllm
def test_vllm_loglikelihoods_equal_the_transformers_forward_pass(vllm_run):
    folder, seen = vllm_run
    for (context, continuation), score in zip(PAIRS, seen["scores"]):
        row = _logprobs(folder, context + continuation)[len(context) - 1 : -1]
        expected = [float(row[i, t]) for i, t in enumerate(continuation)]
        assert score["token_logprobs"] == pytest.approx(expected, abs=TOL)
        assert score["logprob"] == pytest.approx(sum(expected), abs=TOL)
        assert score["is_greedy"] == all(
            int(row[i].argmax()) == t for i, t in enumerate(continuation)
        )


if __name__ == "__main__":
    result = asyncio.run(_collect(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(result))
