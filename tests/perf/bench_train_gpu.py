"""Packed against padded training on a CUDA GPU: flash-attention varlen against padded rows.

The CPU benchmark (bench_train.py) at a size a GPU makes sense of: a random Llama with hidden
1024, 8 layers, vocabulary 32000, context 4096, 16,384 tokens per packed row, 10 steps, bf16,
DeepSpeed ZeRO-2 on one GPU. The trainer picks flash-attention 2 for packed rows where
`flash_attn` is installed (the `packed.flash_attention` figure says whether it did), else
ocx's per-sequence SDPA. Run with `python -m tests.perf --gpu train_gpu`.
"""

from __future__ import annotations

from tests.perf import bench_train
from tests.perf.bench_train import check, training_variants  # noqa: F401 - same invariants as on CPU
from tests.perf.core import Context, cuda_device_name

NAME = "train_gpu"
TITLE = "Training throughput on GPU, packed (flash-attention) vs padded"
GPU = True
# The CPU benchmark's figures and ratio, and whether flash-attention ran.
LABELS = {**bench_train.LABELS, "flash_attention": "flash-attention used (1 = yes)"}
RATIOS = bench_train.RATIOS
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
    ctx.settings["gpu"] = cuda_device_name()
    yield from training_variants(ctx, QUICK if ctx.quick else FULL)
