"""Packed against padded training throughput, side by side, with the real trainer.

The same ShareGPT-like lengths (log-normal, median ~500 tokens, clipped at the context), the
same multipack batches, the same small random Llama, the real `run_training` (DeepSpeed
ZeRO-2, 1 process; fp32 on CPU, bf16 on GPU). Packed rows (`ocx_varlen_sdpa` on CPU,
flash-attention varlen on CUDA where installed) against one padded row per sequence
(`--no-packing`, stock attention). Rates exclude the first step (allocation, warm-up).

Physical limit: the padded run computes `padded positions` and the packed run `packed
positions` for the same tokens; where the work grows with positions (projections, MLP, LM
head: nearly all of it at these sizes) packing can gain at most their ratio. Attention grows
faster than linearly with a padded row, so a large model's gain can exceed it slightly.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.perf.core import Context, Ratio, shared_file

NAME = "train"
TITLE = "Training throughput, packed vs padded (CPU)"
LABELS = {
    "supervised_tokens_per_s": "supervised tokens/s",
    "tokens_per_s": "tokens/s",
    "positions": "positions computed (timed steps)",
    "tokens": "tokens (timed steps)",
    "first_loss": "first-step loss",
}
RATIOS = [
    Ratio(
        "packed / padded, supervised tokens/s",
        "packed.supervised_tokens_per_s",
        "padded.supervised_tokens_per_s",
        target=3.0,
        limit=("padded.positions", "packed.positions"),
        limit_note="padded / packed positions computed for the same tokens",
    )
]

FULL = dict(
    steps=5,
    batch_max_len=4096,
    context=2048,
    conversations=200,
    model=dict(
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=32002,
    ),
)
QUICK = dict(
    steps=3,
    batch_max_len=2048,
    context=1024,
    conversations=40,
    model=dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=32002,
    ),
)


def token_dataset(root: Path, conversations: int, context: int, vocab: int) -> Path:
    """Random token ids with ShareGPT-like lengths; the first 20-60% of each (the user turn) has
    weight 0."""
    import numpy as np

    from ocx.testing.conversations import sharegpt_like_lengths
    from tests.train.conftest import write_token_dataset

    rng = np.random.default_rng(0)
    rows = []
    for n in sharegpt_like_lengths(conversations, context, seed=0):
        prompt = int(n * rng.uniform(0.2, 0.6))
        rows.append((rng.integers(0, vocab, n).tolist(), [0.0] * prompt + [1.0] * (n - prompt)))
    return write_token_dataset(root / "data", rows)


def random_llama(root: Path, context: int, **model) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(max_position_embeddings=context, **model)).save_pretrained(
        root / "model"
    )
    return root / "model"


def train_once(data: Path, model: Path, work: Path, sizes: dict, packing: bool) -> dict:
    """One short real training run; rates over the steps after the first."""
    import dataclasses
    import json

    from ocx.adapters.train import TrainConfig, run_training
    from ocx.adapters.train.progress import read_metrics

    out = Path(tempfile.mkdtemp(dir=work, prefix="packed-" if packing else "padded-"))
    # The trainer ships the data's tokenizer with each checkpoint: the Mistral v1 vocabulary
    # (openchat_3.5 adds 2 tokens: 32002, the model's vocabulary size).
    tokenizer = {f.name for f in dataclasses.fields(TrainConfig)} & {"tokenizer"}
    extra = (
        {"tokenizer": str(shared_file("tokenizers/mistral-v1/tokenizer.model"))}
        if tokenizer
        else {}
    )
    run_training(
        TrainConfig(
            data=data,
            model=str(model),
            out=out / "run",
            epochs=1,
            lr=1e-4,
            batch_max_len=sizes["batch_max_len"],
            max_steps=sizes["steps"],
            packing=packing,
            gradient_checkpointing=False,
            progress=False,
            **extra,
        )
    )
    steps = read_metrics(out / "run")
    timed, seconds = steps[1:], steps[-1]["time"] - steps[0]["time"]
    attention = json.loads((out / "run" / "train.json").read_text())["attention"]
    return {
        "supervised_tokens_per_s": sum(r["supervised_tokens"] for r in timed) / seconds,
        "tokens_per_s": sum(r["tokens"] for r in timed) / seconds,
        "positions": sum(r["slots"] for r in timed),
        "tokens": sum(r["tokens"] for r in timed),
        "first_loss": steps[0]["loss"],
        "flash_attention": float(attention == "flash_attention_2"),
    }


def training_variants(ctx: Context, sizes: dict):
    """Prepare the data and model once; yield the packed and padded runs."""
    ctx.settings.update(
        {k: v for k, v in sizes.items() if k != "model"},
        **{f"model.{k}": v for k, v in sizes["model"].items()},
    )
    data = token_dataset(
        ctx.work, sizes["conversations"], sizes["context"], sizes["model"]["vocab_size"]
    )
    model = random_llama(ctx.work, sizes["context"], **sizes["model"])
    yield {
        "packed": lambda: train_once(data, model, ctx.work, sizes, packing=True),
        "padded": lambda: train_once(data, model, ctx.work, sizes, packing=False),
    }


def variants(ctx: Context):
    yield from training_variants(ctx, QUICK if ctx.quick else FULL)


def check(figures: dict, quick: bool) -> None:
    packed, padded = figures["packed.first_loss"], figures["padded.first_loss"]
    assert abs(packed - padded) <= 1e-4 * abs(padded), (
        f"first-step loss packed {packed} != padded {padded}: "
        "the two layouts no longer compute the same objective"
    )
    assert figures["packed.tokens"] == figures["padded.tokens"], (
        "packed and padded trained on different tokens"
    )
    assert figures["packed.positions"] < figures["padded.positions"], (
        "packing computed no fewer positions"
    )
