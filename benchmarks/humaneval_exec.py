"""Running HumanEval(+) programs: one sandboxed process per program, several at once.

``check_program`` runs ``humaneval_check.py`` in :func:`ocx.harness.sandbox.run_in_sandbox`
and turns how the process ended into a :class:`CheckResult`. ``check_many`` runs a list of
them on a small thread pool (each thread just waits on its own child process).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources

from ocx.harness.sandbox import SandboxLimits, run_in_sandbox

MIN_TIME_LIMIT = 1.0  # EvalPlus DEFAULT_MIN_TIME_LIMIT
TIME_FACTOR = 4.0  # EvalPlus DEFAULT_GT_TIME_LIMIT_FACTOR
DEFAULT_LIMITS = SandboxLimits(
    # EvalPlus allows 60 s per task; the reference runs in the same process here, so twice that.
    timeout_s=120.0, cpu_seconds=120, memory_bytes=4 << 30,  # EvalPlus's 4 GiB
    max_processes=32, file_bytes=16 << 20, disk_bytes=64 << 20,
)


@dataclass(frozen=True)
class CheckResult:
    """``base``/``plus``: "pass", "fail", "timeout" (per input or whole run), "error" (the checker
    itself died, e.g. killed for memory) or "not run"."""

    base: str
    plus: str
    failure: dict | None = None
    sandbox: str = "ok"
    wall_s: float = 0.0

    @property
    def passed_base(self) -> bool:
        return self.base == "pass"

    @property
    def passed_plus(self) -> bool:
        """HumanEval+ counts a program correct only if it passes the base inputs too."""
        return self.base == "pass" and self.plus == "pass"

    @property
    def correct(self) -> bool:
        """What the eval runner counts (``score_many``): the HumanEval+ verdict, as OpenChat reports."""
        return self.passed_plus

    def to_dict(self) -> dict:
        return asdict(self)


def _checker_source() -> str:
    return resources.files("ocx.benchmarks").joinpath("humaneval_check.py").read_text(encoding="utf-8")


def check_program(code: str, problem: dict, *, limits: SandboxLimits = DEFAULT_LIMITS,
                  isolation: str = "auto", checker: str | None = None) -> CheckResult:
    """Run ``code`` against one problem's base and plus inputs in a fresh sandbox.

    ``problem`` holds ``prompt``, ``canonical_solution``, ``entry_point``, ``base_input``,
    ``plus_input`` and ``atol`` (the fields of EvalPlus's HumanEval+ records).
    """
    payload = {
        "code": code, "reference": problem["prompt"] + problem["canonical_solution"],
        "entry_point": problem["entry_point"], "base_input": problem["base_input"],
        "plus_input": problem.get("plus_input", []), "atol": problem.get("atol", 0) or 0,
        "min_time_limit": MIN_TIME_LIMIT, "time_factor": TIME_FACTOR,
    }
    run = run_in_sandbox(checker or _checker_source(), json.dumps(payload).encode("utf-8"), limits=limits,
                         isolation=isolation)
    reported = run.result if isinstance(run.result, dict) else {}
    base, plus = reported.get("base", "not run"), reported.get("plus", "not run")
    failure = reported.get("failure")
    if run.status != "ok" or base == "not run":
        # The process ended early: the part it was in did not pass (a killed base run is a
        # timeout or an error, never a pass).
        ended = {"timeout": "timeout", "killed": "error", "error": "error", "ok": "error"}[run.status]
        if base in ("not run",):
            base = ended
        if plus in ("not run",):
            plus = ended if base == "pass" else "fail"
        failure = failure or {"part": "process", "input": None,
                              "error": f"sandbox {run.status} (exit {run.returncode}) {run.stderr[-300:]}".strip()}
    return CheckResult(base, plus, failure, run.status, run.wall_s)


def check_many(jobs: Sequence[tuple[str, dict]], *, workers: int = 2, limits: SandboxLimits = DEFAULT_LIMITS,
               isolation: str = "auto", on_done: Callable[[int, CheckResult], None] | None = None) -> list[CheckResult]:
    """``check_program`` for every ``(code, problem)``, ``workers`` at a time, in input order."""
    checker = _checker_source()
    results: list[CheckResult | None] = [None] * len(jobs)

    def one(index: int) -> None:
        code, problem = jobs[index]
        results[index] = check_program(code, problem, limits=limits, isolation=isolation, checker=checker)
        if on_done is not None:
            on_done(index, results[index])

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, range(len(jobs))))
    return results  # type: ignore[return-value]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al., 2021, eq. 1):
    1 - C(n-c, k) / C(n, k), computed as a product to stay exact for large n."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k_summary(correct_by_task: dict[str, list[bool]], ks: Sequence[int] = (1, 10, 100)) -> dict[str, float]:
    """Mean pass@k over problems for every k that every problem has enough samples for."""
    if not correct_by_task:
        return {}
    counts = [(len(v), sum(v)) for v in correct_by_task.values()]
    n_min = min(n for n, _ in counts)
    return {f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) for k in ks if k <= n_min}
