"""`ocx serve --engine vllm` against vLLM's own OpenAI server, same checkpoint and requests.

Both servers up side by side (same tiny random Llama: hidden 128, 2 layers, head_dim 64,
since vLLM's CPU attention rejects head_dim 16; both `--enforce-eager`, max-model-len 2048),
measured in alternating order each round: 20 sequential requests x 16 tokens (latency at
concurrency 1) and 64 requests x 32 tokens at concurrency 16 (throughput). vLLM's server gets
`ignore_eos`; ocx stops at EOT, which a random model practically never emits (the token counts
show equal work). Needs vllm (vllm-cpu on CPU), which lives in its own venv:

    VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python -m tests.perf serve_vllm

ocx runs vLLM's own engine, so 1 is where a perfect wrapper would be; ocx's figures can come
out above it only through noise or a cheaper HTTP layer.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.perf.bench_serve import TINY, bodies, chat_load, server, tiny_checkpoint
from tests.perf.core import Context, Ratio, Skip

NAME = "serve_vllm"
TITLE = "Serving: ocx serve --engine vllm vs vLLM's OpenAI server"
LABELS = {
    "tokens_per_s_c16": "completion tokens/s at concurrency 16",
    "median_latency_ms_c1": "median latency at concurrency 1 (ms)",
}
RATIOS = [
    Ratio(
        "ocx / vLLM tokens/s at concurrency 16",
        "ocx.tokens_per_s_c16",
        "vllm.tokens_per_s_c16",
        target=0.95,
    ),
    Ratio(
        "ocx / vLLM median latency at concurrency 1",
        "ocx.median_latency_ms_c1",
        "vllm.median_latency_ms_c1",
        better="lower",
        target=1.15,
    ),
]
FULL = dict(latency_requests=20, latency_tokens=16, throughput_requests=64, throughput_tokens=32)
QUICK = dict(latency_requests=4, latency_tokens=4, throughput_requests=16, throughput_tokens=8)


def measure(url: str, sizes: dict, extra: dict) -> dict:
    latency = chat_load(
        url, bodies("tiny", sizes["latency_requests"], sizes["latency_tokens"], extra), 1
    )
    throughput = chat_load(
        url, bodies("tiny", sizes["throughput_requests"], sizes["throughput_tokens"], extra), 16
    )
    return {
        "tokens_per_s_c16": throughput["tokens_per_s"],
        "median_latency_ms_c1": latency["median_latency_ms"],
        "tokens_c16": throughput["tokens"],
    }


def variants(ctx: Context):
    if importlib.util.find_spec("vllm") is None:
        raise Skip(
            "vllm is not installed in this Python; run it from the vLLM venv: "
            "`VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python -m tests.perf serve_vllm` "
            "(.ci/run builds it)"
        )
    from tests.serve.conftest import free_port

    sizes = QUICK if ctx.quick else FULL
    ctx.settings.update(sizes, max_model_len=2048, enforce_eager=True)
    checkpoint, p1, p2 = tiny_checkpoint(ctx.work, **TINY), free_port(), free_port()
    vllm_cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(checkpoint),
        "--port",
        str(p1),
        "--host",
        "127.0.0.1",
        "--served-model-name",
        "tiny",
        "--max-model-len",
        "2048",
        "--enforce-eager",
        "--disable-uvicorn-access-log",
        "--disable-log-stats",
    ]
    ocx_cmd = [
        str(Path(sys.executable).parent / "ocx"),
        "serve",
        "--model",
        str(checkpoint),
        "--engine",
        "vllm",
        "--port",
        str(p2),
        "--served-model-name",
        "tiny",
        "--engine-arg",
        "enforce_eager=true",
        "--disable-log-requests",
    ]
    with server(vllm_cmd, p1) as vllm_url, server(ocx_cmd, p2) as ocx_url:
        yield {
            "vllm": lambda: measure(vllm_url, sizes, {"ignore_eos": True}),
            "ocx": lambda: measure(ocx_url, sizes, {}),
        }
