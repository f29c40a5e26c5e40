"""Trainer benchmarks on CPU (run: `pytest tests/perf/bench_train.py -m perf -s`).

1. Throughput, packed vs padded, side by side in one run: the same ShareGPT-like length
   distribution (log-normal, median ~500 tokens, clipped at 2048), the same multipack
   batches (4096 tokens per step), the same small random Llama, the real `run_training`
   (DeepSpeed ZeRO-2, 1 process, fp32). Supervised tokens per second, excluding the first step.
2. Peak memory of the loss step (LM head + cross-entropy, forward and backward) at vocabulary
   128,256 (Llama 3), 4096 tokens of which half supervised, hidden size 2048: OpenChat's
   full-vocabulary logits in bf16 and in fp32 against ocx's chunked supervised-only fp32 loss.
   Each variant runs in its own process; peak = max RSS after the step minus RSS before it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.train.conftest import write_token_dataset

pytestmark = pytest.mark.perf

STEPS, BATCH_MAX_LEN, CONTEXT, N_CONVERSATIONS = 5, 4096, 2048, 200
MODEL = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=4, vocab_size=32000, max_position_embeddings=CONTEXT)

MEMORY_SCRIPT = r"""
import resource, sys, torch
from ocx.adapters.train.loss import full_logits_loss_sum, supervised_loss_sum
variant, n, hidden, vocab = sys.argv[1], int(sys.argv[2]), 2048, 128256
dtype = torch.bfloat16 if variant == "full_bf16" else torch.float32
g = torch.Generator().manual_seed(0)
h = (torch.randn(n, hidden, generator=g) * 0.02).to(dtype).requires_grad_()
w = (torch.randn(vocab, hidden, generator=g) * 0.02).to(dtype).requires_grad_()
y = torch.randint(0, vocab, (n,), generator=g)
wt = (torch.arange(n) % 2).float()
w.grad = torch.zeros_like(w); h.grad = torch.zeros_like(h)   # gradient buffers exist in training anyway
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if variant == "chunked_fp32":
    loss, _ = supervised_loss_sum(h, w, y, wt)  # default chunk size
else:
    loss = full_logits_loss_sum(h, w, y, wt.to(dtype))
loss.backward()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(float(loss) / float(wt.sum()), (peak - before) / 1024)
"""


def _dataset(root: Path) -> Path:
    import numpy as np

    from ocx.harness.data.synthetic import sharegpt_like_lengths

    rng = np.random.default_rng(0)
    rows = []
    for n in sharegpt_like_lengths(N_CONVERSATIONS, CONTEXT, seed=0):
        prompt = int(n * rng.uniform(0.2, 0.6))  # user turns carry weight 0
        rows.append((rng.integers(0, MODEL["vocab_size"], n).tolist(), [0.0] * prompt + [1.0] * (n - prompt)))
    return write_token_dataset(root / "data", rows)


def _model(root: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**MODEL)).save_pretrained(root / "model")
    return root / "model"


def _throughput(data: Path, model: Path, out: Path, packing: bool) -> dict:
    from ocx.adapters.train import TrainConfig, run_training
    from ocx.adapters.train.progress import read_metrics

    run_training(TrainConfig(data=data, model=str(model), out=out, epochs=1, batch_max_len=BATCH_MAX_LEN, lr=1e-4,
                             max_steps=STEPS, packing=packing, gradient_checkpointing=False, progress=False))
    m = read_metrics(out)
    seconds = m[-1]["time"] - m[0]["time"]
    return {"steps": len(m), "supervised_tokens_per_s": sum(r["supervised_tokens"] for r in m[1:]) / seconds,
            "tokens_per_s": sum(r["tokens"] for r in m[1:]) / seconds,
            "computed_positions": sum(r["slots"] for r in m), "real_tokens": sum(r["tokens"] for r in m),
            "first_loss": m[0]["loss"]}


def test_packed_training_throughput_against_padded_on_cpu():
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data, model = _dataset(root), _model(root)
        packed = _throughput(data, model, root / "packed", packing=True)
        padded = _throughput(data, model, root / "padded", packing=False)
    speedup = packed["supervised_tokens_per_s"] / padded["supervised_tokens_per_s"]
    print(json.dumps({"torch_threads": __import__("torch").get_num_threads(), "packed": packed, "padded": padded,
                      "speedup": round(speedup, 2)}, indent=2))
    assert packed["first_loss"] == pytest.approx(padded["first_loss"], rel=1e-4)  # same batches, same loss
    assert speedup >= 3.0


def test_peak_memory_of_the_loss_step_full_vocabulary_against_chunked_supervised_only():
    results = {}
    for variant, tokens in (("full_bf16", 4096), ("full_fp32", 4096), ("chunked_fp32", 4096),
                            ("full_bf16", 8192), ("chunked_fp32", 8192)):
        proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, variant, str(tokens)], capture_output=True,
                              text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "2"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        loss, peak_mb = map(float, proc.stdout.split())
        results[f"{variant}@{tokens}"] = {"loss_per_weight": round(loss, 4), "peak_extra_mb": round(peak_mb)}
    print(json.dumps(results, indent=2))
    assert results["chunked_fp32@4096"]["loss_per_weight"] == pytest.approx(
        results["full_fp32@4096"]["loss_per_weight"], rel=1e-4)
    # The chunked loss does not grow with the batch; the full-vocabulary logits do.
    assert results["chunked_fp32@8192"]["peak_extra_mb"] < 1.5 * results["chunked_fp32@4096"]["peak_extra_mb"]
    assert results["chunked_fp32@8192"]["peak_extra_mb"] < results["full_bf16@8192"]["peak_extra_mb"] / 2
