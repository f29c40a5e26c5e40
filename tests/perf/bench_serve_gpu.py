"""The transformers serve engine on a CUDA GPU: throughput at concurrency 16 against 1.

bench_serve.py's measurement with a model a GPU makes sense of (hidden 1024, 8 layers, bf16),
64 requests x 64 tokens. It runs only where the engine can place the model on the GPU (its
constructor takes `device`); until then it says so instead of timing the CPU under a GPU label.
Run with `python -m tests.perf --gpu serve_gpu`.
"""

from __future__ import annotations

import inspect

from tests.perf.core import Context, Ratio, Skip, cuda_device_name

NAME = "serve_gpu"
TITLE = "Serving on GPU: transformers engine, concurrency 16 vs 1"
GPU = True
LABELS = {
    "tokens_per_s": "completion tokens/s",
    "median_latency_ms": "median latency (ms)",
    "tokens": "completion tokens",
}
RATIOS = [
    Ratio("tokens/s at concurrency 16 / at 1", "c16.tokens_per_s", "c1.tokens_per_s", target=4.0)
]
MODEL = dict(
    hidden_size=1024,
    intermediate_size=2816,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=8,
)


def variants(ctx: Context):
    gpu = cuda_device_name()
    from ocx.adapters.serve.hf_engine import TransformersEngine

    if "device" not in inspect.signature(TransformersEngine.__init__).parameters:
        raise Skip("the transformers engine has no device option yet (it always loads on the CPU)")
    from tests.perf.bench_serve import transformers_variants

    ctx.settings["gpu"] = gpu
    sizes = dict(requests=16, max_tokens=8) if ctx.quick else dict(requests=64, max_tokens=64)
    yield from transformers_variants(ctx, sizes, MODEL)
