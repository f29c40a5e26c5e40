"""Packed against padded training on a CUDA GPU: flash-attention varlen against padded rows.

The CPU benchmark (bench_train.py) at a size a GPU makes sense of: a random Llama with hidden
1024, 8 layers, vocabulary 32000, context 4096, 16,384 tokens per packed row, 10 steps, bf16,
DeepSpeed ZeRO-2 on one GPU. The trainer picks flash-attention 2 for packed rows where
`flash_attn` is installed (the `packed.flash_attention` figure says whether it did), else
ocx's per-sequence SDPA. Run with `python -m tests.perf --gpu train_gpu`.
"""

from __future__ import annotations

from tests.perf.bench_train import check, training_variants  # noqa: F401 - same invariants as on CPU
from tests.perf.core import Context, Ratio, Skip

NAME = "train_gpu"
TITLE = "Training throughput on GPU, packed (flash-attention) vs padded"
GPU = True
LABELS = {
    "supervised_tokens_per_s": "supervised tokens/s",
    "tokens_per_s": "tokens/s",
    "positions": "positions computed (timed steps)",
    "tokens": "tokens (timed steps)",
    "first_loss": "first-step loss",
    "flash_attention": "flash-attention used (1 = yes)",
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
    steps=10,
    batch_max_len=16384,
    context=4096,
    conversations=2000,
    model=dict(
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
        vocab_size=32000,
    ),
)
QUICK = dict(
    steps=3,
    batch_max_len=4096,
    context=2048,
    conversations=100,
    model=dict(
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=32000,
    ),
)


def variants(ctx: Context):
    import torch

    if not torch.cuda.is_available():
        raise Skip("no CUDA device (torch.cuda.is_available() is False)")
    ctx.settings["gpu"] = torch.cuda.get_device_name(0)
    yield from training_variants(ctx, QUICK if ctx.quick else FULL)
