"""The transformers serve engine's dynamic batching: throughput at concurrency 16 against 1.

One `ocx serve --engine transformers --max-batch-size 16` server on a tiny random Llama
(hidden 128, 2 layers, Mistral v1 vocabulary, openchat_3.5), greedy, non-streaming, loopback.
The same requests are sent one at a time (`c1`) and 16 at a time (`c16`); waiting requests
join the running batch, so each decode step is one forward pass for all of them.

The helpers here (`chat_load`, `bodies`, `tiny_checkpoint`) are shared by the other serving
benchmarks (bench_serve_vllm.py, bench_serve_gpu.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.perf.core import Context, Ratio, Skip, shared_file

NAME = "serve_transformers"
TITLE = "Serving: transformers engine, concurrency 16 vs 1"
LABELS = {
    "tokens_per_s": "completion tokens/s",
    "median_latency_ms": "median latency (ms)",
    "tokens": "completion tokens",
}
RATIOS = [
    Ratio("tokens/s at concurrency 16 / at 1", "c16.tokens_per_s", "c1.tokens_per_s", target=2.0)
]
TINY = dict(hidden_size=128, intermediate_size=256, num_attention_heads=2, num_key_value_heads=1)
FULL = dict(requests=32, max_tokens=32)
QUICK = dict(requests=16, max_tokens=8)


def bodies(model: str, count: int, max_tokens: int, extra: dict | None = None) -> list[dict]:
    return [
        {
            "model": model,
            "messages": [{"role": "user", "content": f"Question {i}: tell me about serving."}],
            "max_tokens": max_tokens,
            "temperature": 0,
            **(extra or {}),
        }
        for i in range(count)
    ]


async def _load(url: str, requests: list[dict], concurrency: int, outputs: list | None) -> dict:
    import httpx

    queue, latencies, tokens = list(reversed(list(enumerate(requests)))), [], 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal tokens
        while queue:
            i, body = queue.pop()
            start = time.perf_counter()
            r = await client.post("/v1/chat/completions", json=body)
            latencies.append(time.perf_counter() - start)
            r.raise_for_status()
            answer = r.json()
            tokens += answer["usage"]["completion_tokens"]
            if outputs is not None:
                outputs[i] = (
                    answer["choices"][0]["message"]["content"],
                    answer["usage"]["completion_tokens"],
                )

    async with httpx.AsyncClient(
        base_url=url, timeout=300, limits=httpx.Limits(max_connections=concurrency)
    ) as client:
        (
            await client.post("/v1/chat/completions", json={**requests[0], "max_tokens": 2})
        ).raise_for_status()
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {
        "tokens_per_s": tokens / wall,
        "median_latency_ms": statistics.median(latencies) * 1000,
        "tokens": tokens,
    }


def chat_load(
    url: str, requests: list[dict], concurrency: int, outputs: list | None = None
) -> dict:
    """Send `requests` with `concurrency` clients: completion tokens/s, median latency, tokens.

    `outputs`, when given (a list as long as `requests`), receives each answer's
    (text, completion tokens) at its request's index.
    """
    return asyncio.run(_load(url, requests, concurrency, outputs))


def tiny_checkpoint(work: Path, **config) -> Path:
    from ocx.adapters.hf.tiny import build_tiny_checkpoint

    tokenizer = shared_file("tokenizers/mistral-v1/tokenizer.model")
    return build_tiny_checkpoint(work / "tiny", tokenizer, "openchat_3.5", **config)


def server(cmd: list[str], port: int, pids: list[int] | None = None):
    try:
        from tests.serve.conftest import server_process
    except (
        BaseException
    ) as exc:  # pytest.importorskip raises Skipped (a BaseException) without fastapi
        raise Skip(f"the serve extra is not installed: {exc}") from None
    return server_process(cmd, port, start_timeout=400, pids=pids)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far, all its threads (Linux /proc)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def servers(*commands: tuple[list[str], int], pids: list[list[int]] | None = None):
    """Start several servers at once (their start-ups overlap); yields their URLs in order.

    `pids`, when given (one empty list per command), receives each server's process id.
    """
    pids = pids or [None] * len(commands)
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(len(commands)) as pool:
        # Each start registers its own clean-up as soon as it is up, so a failing start
        # still stops the servers that did start.
        started = [
            pool.submit(stack.enter_context, server(cmd, port, out))
            for (cmd, port), out in zip(commands, pids, strict=True)
        ]
        urls = [future.result() for future in started]
        yield urls


def transformers_variants(ctx: Context, sizes: dict, model: dict):
    from tests.serve.conftest import free_port

    ctx.settings.update(sizes, max_batch_size=16, **{f"model.{k}": v for k, v in model.items()})
    checkpoint, port = tiny_checkpoint(ctx.work, **model), free_port()
    cmd = [
        str(Path(sys.executable).parent / "ocx"),
        "serve",
        "--model",
        str(checkpoint),
        "--engine",
        "transformers",
        "--port",
        str(port),
        "--served-model-name",
        "tiny",
        "--max-batch-size",
        "16",
        "--disable-log-requests",
    ]
    with server(cmd, port) as url:
        requests = bodies("tiny", sizes["requests"], sizes["max_tokens"])
        yield {
            "c1": lambda: chat_load(url, requests, 1),
            "c16": lambda: chat_load(url, requests, 16),
        }


def variants(ctx: Context):
    yield from transformers_variants(ctx, QUICK if ctx.quick else FULL, TINY)
