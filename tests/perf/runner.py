"""Run benchmark modules round by round, interleaved, and collect figures, spreads and ratios.

Every benchmark prepares once (data, models, servers, peer venvs), then runs `repeats` rounds;
in each round every variant (ocx, its baseline, the limit) runs once, in an order that
alternates between rounds. The load average is read before and after each round, so a
reader can tell a quiet measurement from a busy one.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests.perf.core import Context, Skip, sane, spread, summarize_ratio

PERF_DIR = Path(__file__).resolve().parent
REPO = PERF_DIR.parent.parent


def discover() -> dict[str, object]:
    """NAME -> module for every tests/perf/bench_*.py, in file order."""
    modules = {}
    for path in sorted(PERF_DIR.glob("bench_*.py")):
        module = importlib.import_module(f"tests.perf.{path.stem}")
        name = getattr(module, "NAME", None)
        if name is None or not hasattr(module, "variants"):
            raise TypeError(
                f"{path}: a benchmark module needs NAME and variants(ctx) "
                "(see tests/perf/README.md)"
            )
        if name in modules:
            raise ValueError(f"{path}: NAME {name!r} is already used by {modules[name].__file__}")
        modules[name] = module
    return modules


def machine() -> dict:
    """Cores, CPU model, torch threads and versions: what a reader needs to compare figures."""
    info = {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(ImportError):
        import torch

        info.update(
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        )
    return info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def git_commit() -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", ".")),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_rounds(fns: dict, repeats: int, check, quick: bool, say) -> list[dict]:
    """`repeats` rounds of every variant, alternating the order; figures prefixed by variant."""
    rounds = []
    names = list(fns)
    for index in range(repeats):
        order = names if index % 2 == 0 else names[::-1]
        record = {"order": order, "load_before": load_average(), "figures": {}, "seconds": {}}
        for variant in order:
            start = time.perf_counter()
            figures = fns[variant]()
            record["seconds"][variant] = round(time.perf_counter() - start, 3)
            record["figures"].update({f"{variant}.{k}": v for k, v in figures.items()})
        record["load_after"] = load_average()
        bad = sane(record["figures"])
        if bad:
            raise AssertionError(
                f"round {index + 1}: figures no working benchmark gives: {', '.join(bad)}"
            )
        if check is not None:
            check(record["figures"], quick)
        rounds.append(record)
        say(
            f"  round {index + 1}/{repeats}: "
            f"load {record['load_before'][0]} -> {record['load_after'][0]}, "
            + ", ".join(f"{v} {s:.1f} s" for v, s in record["seconds"].items())
        )
    return rounds


def run_benchmark(module, quick: bool, repeats: int, build_peers: bool, say) -> dict:
    """One benchmark: prepare, rounds, summary. Never raises: a failure is recorded with its
    traceback."""
    out = {
        "title": getattr(module, "TITLE", module.NAME),
        "module": f"tests/perf/{Path(module.__file__).name}",
        "labels": getattr(module, "LABELS", {}),
        "gpu": getattr(module, "GPU", False),
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"ocx-bench-{module.NAME}-") as tmp:
        ctx = Context(quick=quick, work=Path(tmp), build_peers=build_peers)
        try:
            with contextlib.contextmanager(module.variants)(ctx) as fns:
                out["settings"] = ctx.settings
                rounds = run_rounds(fns, repeats, getattr(module, "check", None), quick, say)
        except Skip as exc:
            out.update(status="skipped", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            out.update(
                status="failed",
                reason=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
        else:
            out.update(status="ok", rounds=rounds, **summarize(module, rounds))
        out.update(skipped_variants=ctx.skipped, peers=ctx.peers, settings=ctx.settings)
    out["wall_s"] = round(time.perf_counter() - start, 1)
    return out


def summarize(module, rounds: list[dict]) -> dict:
    keys = list(dict.fromkeys(k for r in rounds for k in r["figures"]))
    figures = {k: spread([r["figures"][k] for r in rounds if k in r["figures"]]) for k in keys}
    per_round = [r["figures"] for r in rounds]
    ratios = [summarize_ratio(ratio, per_round) for ratio in getattr(module, "RATIOS", [])]
    loads = [x for r in rounds for x in (r["load_before"][0], r["load_after"][0])]
    return {
        "figures": figures,
        "ratios": ratios,
        "load_1min": {"min": min(loads), "max": max(loads)},
    }


def run(
    names: list[str], quick: bool, repeats: int, gpu: bool, build_peers: bool, say=print
) -> dict:
    modules = discover()
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise KeyError(unknown)
    chosen = names or [n for n, m in modules.items() if gpu or not getattr(m, "GPU", False)]
    result = {
        "command": " ".join(["python -m tests.perf", *sys.argv[1:]]),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "repeats": repeats,
        "machine": machine(),
        "git": git_commit(),
        "load_at_start": load_average(),
        "benchmarks": {},
    }
    for name in chosen:
        say(f"[{name}] {getattr(modules[name], 'TITLE', '')}")
        result["benchmarks"][name] = bench = run_benchmark(
            modules[name], quick, repeats, build_peers, say
        )
        say(
            f"  {bench['status']}{': ' + bench['reason'] if 'reason' in bench else ''} "
            f"({bench['wall_s']} s)"
        )
    result["load_at_end"] = load_average()
    return result
