"""Peak memory of the loss step: full-vocabulary logits (OpenChat) against ocx's chunked loss.

The LM head plus cross-entropy, forward and backward, at vocabulary 128,256 (Llama 3),
hidden size 2048, half the tokens supervised. OpenChat computes the logits of every token over
the whole vocabulary in bf16 (`full_bf16`); `full_fp32` is the same in fp32; ocx computes fp32
logits of supervised tokens only, 512 at a time (`chunked_fp32`). Each measurement runs in its
own process; peak = max RSS after the step minus RSS before it (MiB), so the figure is a
lower bound of what the step allocates (freed-then-reused pages are not counted twice).

The chunked loss stays flat as the batch grows (its fixed cost is the fp32 head gradient,
vocabulary x hidden), while full-vocabulary logits grow with tokens x vocabulary.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.perf.core import Context, Ratio

NAME = "loss_memory"
TITLE = "Loss step peak memory: full-vocabulary logits vs chunked supervised-only"
LABELS = {"peak_mib": "extra peak RSS (MiB)", "loss_per_weight": "loss per unit weight"}
RATIOS = [
    Ratio(
        "full fp32 / chunked fp32 peak, large batch",
        "full_fp32_large.peak_mib",
        "chunked_fp32_large.peak_mib",
        target=2.0,
    ),
    Ratio(
        "chunked fp32 peak, large / small batch",
        "chunked_fp32_large.peak_mib",
        "chunked_fp32_small.peak_mib",
        better="lower",
        target=1.5,
        limit=1.0,
        limit_note="1: no growth with the batch",
    ),
]

SCRIPT = r"""
import resource, sys, torch
from ocx.adapters.train.loss import full_logits_loss_sum, supervised_loss_sum
variant, n, hidden, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
dtype = torch.bfloat16 if variant == "full_bf16" else torch.float32
g = torch.Generator().manual_seed(0)
h = (torch.randn(n, hidden, generator=g) * 0.02).to(dtype).requires_grad_()
w = (torch.randn(vocab, hidden, generator=g) * 0.02).to(dtype).requires_grad_()
y = torch.randint(0, vocab, (n,), generator=g)
wt = (torch.arange(n) % 2).float()
# gradient buffers exist in training anyway
w.grad = torch.zeros_like(w)
h.grad = torch.zeros_like(h)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if variant == "chunked_fp32":
    loss, _ = supervised_loss_sum(h, w, y, wt)  # default chunk size
else:
    loss = full_logits_loss_sum(h, w, y, wt.to(dtype))
loss.backward()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(float(loss) / float(wt.sum()), (peak - before) / 1024)
"""

FULL = dict(small=4096, large=8192, hidden=2048, vocab=128256)
# Quick sizes stay tiny: bf16 matmuls without native bf16 support crawl on CPU.
QUICK = dict(small=256, large=512, hidden=128, vocab=8000)


def measure(variant: str, tokens: int, hidden: int, vocab: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, variant, str(tokens), str(hidden), str(vocab)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"{variant} at {tokens} tokens failed: {done.stderr[-1500:]}")
    loss, peak = map(float, done.stdout.split())
    return {"peak_mib": peak, "loss_per_weight": loss}


def variants(ctx: Context):
    sizes = QUICK if ctx.quick else FULL
    ctx.settings.update(
        tokens_small=sizes["small"],
        tokens_large=sizes["large"],
        hidden=sizes["hidden"],
        vocabulary=sizes["vocab"],
        supervised="every second token",
        chunk=512,
    )
    # Full size measures fp32 only: a bf16 matmul of 8192 x 2048 x 128,256 takes over 10 minutes on
    # a CPU without native bf16 (OpenChat's bf16 logits are half the fp32 size: see the docs).
    runs = [
        ("full_fp32", "small"),
        ("chunked_fp32", "small"),
        ("full_fp32", "large"),
        ("chunked_fp32", "large"),
    ]
    if ctx.quick:
        runs.insert(0, ("full_bf16", "small"))
    yield {
        f"{v}_{size}": (
            lambda v=v, size=size: measure(v, sizes[size], sizes["hidden"], sizes["vocab"])
        )
        for v, size in runs
    }


def check(figures: dict, quick: bool) -> None:
    full, chunked = (
        figures["full_fp32_small.loss_per_weight"],
        figures["chunked_fp32_small.loss_per_weight"],
    )
    assert abs(full - chunked) <= 1e-4 * abs(full), (
        f"chunked loss {chunked} != full-vocabulary loss {full}"
    )
