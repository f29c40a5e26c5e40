"""Start-up: `ocx --help` against the bare interpreter start it cannot beat.

`ocx --help` must import no torch, transformers, vllm, deepspeed, pyarrow or openai
(tests/foundation/test_cli_and_imports.py checks every command's `--help`); this measures what
that leaves. Each round starts every command `runs` times in a fresh process
(`subprocess.run`) and reports the median wall time. Physical limit: `python -c pass`, the
interpreter start every Python command pays.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from tests.perf.core import Context, Ratio

NAME = "startup"
TITLE = "Start-up: ocx --help vs python -c pass"
LABELS = {"median_ms": "median wall time (ms)"}
RATIOS = [
    Ratio(
        "`ocx --help` / `python -c pass`",
        "ocx_help.median_ms",
        "python.median_ms",
        better="lower",
        limit=1.0,
        limit_note="1: interpreter start only",
    ),
    Ratio(
        "`ocx templates --help` / `python -c pass`",
        "ocx_templates_help.median_ms",
        "python.median_ms",
        better="lower",
        limit=1.0,
        limit_note="1: interpreter start only",
    ),
]
COMMANDS = {
    "python": ["-c", "pass"],
    "ocx_help": ["-m", "ocx.cli", "--help"],
    "ocx_templates_help": ["-m", "ocx.cli", "templates", "--help"],
}


def median_start(args: list[str], runs: int) -> dict:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return {"median_ms": statistics.median(times) * 1000}


def variants(ctx: Context):
    runs = 3 if ctx.quick else 15
    ctx.settings.update(
        runs_per_round=runs, commands="; ".join(f"python {' '.join(a)}" for a in COMMANDS.values())
    )
    yield {name: (lambda args=args: median_start(args, runs)) for name, args in COMMANDS.items()}
