"""EvalPlus 0.3.1's own code, in its own cached venv, offline.

The peer for HumanEval+ parity and speed.

Used by tests/humaneval/test_evalplus_parity.py (every verdict must agree) and
tests/perf/bench_humaneval.py (time to score the same samples at the same parallelism).

* :func:`evalplus_python` builds the venv once (``evalplus==0.3.1`` without its pins, plus what
  ``evalplus.evaluate`` imports) under ``$OCX_CACHE_DIR`` (default ``~/.cache/ocx``) and
  reuses it; it raises :class:`EvalPlusUnavailable` where pip cannot build it.
* :func:`problems_from` turns ocx's HumanEval samples into EvalPlus's HumanEval+ records,
  which :func:`write_jsonl` writes for ``HUMANEVAL_OVERRIDE_PATH``.
* :func:`answers` gives three answers per problem: the canonical solution as a completion, a
  broken one (wrong values, an exception part-way through a run, or floats off by 1e-9, which
  pass only through EvalPlus's tolerance rules) and the canonical solution reformatted as a
  whole program; :func:`ocx_jobs` gives ocx the same programs EvalPlus runs.
* :func:`run_evalplus` runs ``python -m evalplus.evaluate`` on them and returns its results.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("OCX_CACHE_DIR", Path.home() / ".cache" / "ocx"))
VENV = CACHE / "evalplus-0.3.1-venv"
DEPS = [
    "numpy",
    "psutil",
    "termcolor",
    "tqdm",
    "appdirs",
    "wget",
    "tempdir",
    "multipledispatch",
    "fire",
    "rich",
    "tree-sitter>=0.22",
    "tree-sitter-python>=0.21",
]
# evalplus.data imports the `datasets` hub client at module level; offline it is never called.
DATASETS_STUB = (
    'def load_dataset(*args, **kwargs):\n    raise RuntimeError("offline: not used by evaluate")\n'
)
FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "atol")
PERTURB = """

def _perturb(r):
    if isinstance(r, bool):
        return not r
    if isinstance(r, int):
        return r + 1
    if isinstance(r, str):
        return r + "x"
    if isinstance(r, list):
        return r[::-1] + [None]
    return None
"""
NUDGE = """

def _perturb(r):
    if isinstance(r, float):
        return r + 1e-9
    if isinstance(r, list) and r and all(isinstance(x, float) for x in r):
        return [x + 1e-9 for x in r]
    return r
"""
FAIL_LATER = """

_calls = [0]

def _perturb(r):
    _calls[0] += 1
    if _calls[0] > 2:
        raise ValueError("third call")
    return r
"""


class EvalPlusUnavailable(RuntimeError):
    """The EvalPlus venv could not be built here (no PyPI?); the message says why."""


def evalplus_python() -> Path:
    """The python of the cached EvalPlus 0.3.1 venv, built on first use."""
    python = VENV / "bin" / "python"
    if python.exists():
        return python
    partial = VENV.with_name(f"{VENV.name}.partial-{os.getpid()}")
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(partial)], check=True, capture_output=True
        )
        pip = [
            str(partial / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
        ]
        subprocess.run(
            [*pip, "--no-deps", "evalplus==0.3.1"], check=True, capture_output=True, timeout=600
        )
        subprocess.run([*pip, *DEPS], check=True, capture_output=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise EvalPlusUnavailable(
            f"evalplus 0.3.1 could not be installed with pip (no PyPI?): {exc}"
        ) from None
    partial.rename(VENV)  # only a complete venv gets the name a rerun looks for
    return python


def problems_from(samples, plus_inputs: int | None = None) -> list[dict]:
    """EvalPlus's HumanEval+ records from ocx's HumanEval samples, plus inputs cut to the first
    ``plus_inputs`` per problem (None: all)."""
    problems = []
    for s in samples:
        record = {k: s.meta[k] for k in FIELDS}
        problems.append(
            {**record, "plus_input": s.meta["plus_input"][:plus_inputs], "contract": "", "test": ""}
        )
    return problems


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def broken(problem: dict, index: int) -> str:
    """A completion (prompt + completion is the program) that is wrong in one of three ways."""
    entry, body = problem["entry_point"], problem["canonical_solution"]
    helper = (PERTURB, NUDGE, FAIL_LATER)[index % 3]
    return (
        f"{body}\n{helper}\n_original_{entry} = {entry}\n\ndef {entry}(*args):\n"
        f"    return _perturb(_original_{entry}(*args))\n"
    )


def answers(problems: list[dict]) -> list[dict]:
    """EvalPlus sample records, three per problem in this order: canonical, broken, reformatted."""
    samples = []
    for index, p in enumerate(problems):
        reformatted = ast.unparse(ast.parse(p["prompt"] + p["canonical_solution"]))
        samples += [
            {"task_id": p["task_id"], "completion": p["canonical_solution"]},
            {"task_id": p["task_id"], "completion": broken(p, index)},
            {"task_id": p["task_id"], "solution": reformatted},
        ]
    return samples


def ocx_jobs(problems: list[dict], samples: list[dict]) -> list[tuple[str, dict]]:
    """(program, problem) for ocx: the program EvalPlus runs (solution, or prompt + completion)."""
    by_id = {p["task_id"]: p for p in problems}
    return [
        (s.get("solution") or by_id[s["task_id"]]["prompt"] + s["completion"], by_id[s["task_id"]])
        for s in samples
    ]


def evalplus_env(data: Path, work: Path, cache: Path) -> dict:
    """EvalPlus offline: local data, the `datasets` stub, its ground-truth cache in ``cache``."""
    stubs = work / "stubs"
    stubs.mkdir(exist_ok=True)
    (stubs / "datasets.py").write_text(DATASETS_STUB)
    return {
        **os.environ,
        "HUMANEVAL_OVERRIDE_PATH": str(data),
        "PYTHONPATH": str(stubs),
        "XDG_CACHE_HOME": str(cache),
    }


def run_evalplus(
    python: Path,
    data: Path,
    samples: Path,
    work: Path,
    *,
    parallel: int = 2,
    cache: Path | None = None,
    timeout: float = 3600,
) -> dict:
    """``evalplus.evaluate`` on ``samples`` (ground truth cached under ``cache``); its results."""
    env = evalplus_env(data, work, cache or CACHE / "evalplus-parity-cache")
    cmd = [
        str(python),
        "-m",
        "evalplus.evaluate",
        "--dataset",
        "humaneval",
        "--samples",
        str(samples),
        "--parallel",
        str(parallel),
        "--i-just-wanna-run",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"evalplus.evaluate exited {done.returncode}: {done.stderr[-3000:]}")
    return json.loads(samples.with_name(samples.stem + "_eval_results.json").read_text())
