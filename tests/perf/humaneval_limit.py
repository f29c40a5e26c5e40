"""The physical limit of HumanEval+ scoring: the programs' own run time, nothing else.

Any scorer has to call every answer's entry point on every input until its first wrong output
(EvalPlus's ``fast_check``) and compare each output. This process does only that, with
``WORKERS`` forked processes, in ocx's order: no sandbox, no serialisation, no per-input time
limits, expected outputs already in memory (ocx's references, read and decoded before the clock
starts, and frozen out of the garbage collector's sight). Each answer runs in a fresh namespace
on its own copy of the inputs (unpickled), and outputs are judged with ocx's (EvalPlus's) rules
(:class:`ocx.benchmarks.humaneval_compare.PartJudge`).
Nothing here is safe to run on untrusted code: it is a yardstick for the benchmark's own
answers (tests/humaneval/evalplus_peer.py), which all end by themselves.

    python -m tests.perf.humaneval_limit DATA SAMPLES OUT WORKERS

writes ``{"programs_s": seconds, "programs_cpu_s": CPU seconds of the workers,
"verdicts": [[base, plus], ...]}`` to OUT.
"""

from __future__ import annotations

import gc
import io
import json
import multiprocessing
import pickle
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

_JOBS: list = []
_EXPECTED: dict = {}
_INPUTS: dict = {}


def _expected_outputs(problems: list[dict]) -> dict:
    """Each problem's expected outputs, decoded, from ocx's reference cache ($OCX_CACHE_DIR)."""
    from ocx.benchmarks.humaneval_exec import PARTS, compute_reference

    expected = {}
    for problem in problems:
        reference = compute_reference(problem)
        if reference.error:
            raise RuntimeError(f"reference for {problem['task_id']}: {reference.error}")
        expected[problem["task_id"]] = {
            p: [reference.outputs[p][i] for i in range(len(reference.outputs[p]))] for p in PARTS
        }
    return expected


def _score(index: int) -> list[str]:
    """One answer, both parts: "pass" or "fail" each (a wrong output or exception ends a part)."""
    from ocx.benchmarks.humaneval_compare import PartJudge

    code, problem = _JOBS[index]
    verdicts = []
    for part in ("base", "plus"):
        expected = _EXPECTED[problem["task_id"]][part]
        inputs = pickle.loads(
            _INPUTS[problem["task_id"]][part]
        )  # a fresh copy, made in C as ocx's json.loads
        judge = PartJudge(expected, inputs, problem.get("atol", 0) or 0, problem["entry_point"])
        verdict = "pass"
        try:
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                namespace = {"__name__": "__limit__"}
                exec(compile(code, "<answer>", "exec"), namespace)
                fn = namespace[problem["entry_point"]]
                for inp in inputs:
                    if not judge.take(fn(*inp)):
                        verdict = "fail"
                        break
        except BaseException:  # noqa: BLE001 - the answer's own failure
            verdict = "fail"
        verdicts.append(verdict)
    return verdicts


def main(data: Path, samples: Path, out: Path, workers: int) -> None:
    from tests.humaneval.evalplus_peer import ocx_jobs

    problems = [json.loads(line) for line in data.read_text().splitlines()]
    answers = [json.loads(line) for line in samples.read_text().splitlines()]
    _JOBS[:] = ocx_jobs(problems, answers)
    _EXPECTED.update(_expected_outputs(problems))
    _INPUTS.update(
        {
            p["task_id"]: {
                "base": pickle.dumps(p["base_input"]),
                "plus": pickle.dumps(p["plus_input"]),
            }
            for p in problems
        }
    )
    first: dict[str, int] = {}
    for index, (_, problem) in enumerate(_JOBS):
        first.setdefault(problem["task_id"], index)
    order = sorted(
        range(len(_JOBS)), key=lambda i: (first[_JOBS[i][1]["task_id"]], i)
    )  # as check_many
    gc.freeze()  # the expected outputs are never collected: no GC pass walks them
    start, cpu = time.perf_counter(), _children_cpu()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        verdicts = dict(zip(order, pool.imap(_score, order, chunksize=1)))
    seconds = time.perf_counter() - start  # the pool's workers have exited and been waited for
    out.write_text(
        json.dumps(
            {
                "programs_s": seconds,
                "programs_cpu_s": _children_cpu() - cpu,
                "verdicts": [verdicts[i] for i in range(len(_JOBS))],
            }
        )
    )


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
