"""Running HumanEval(+) programs: outputs made in sandboxes, verdicts reached here.

For each problem the canonical solution runs once, in a sandbox of its own, to give the
expected outputs and their times (EvalPlus's ``get_groundtruth``). Each candidate then runs
in a fresh sandbox that sees only its code and the inputs (never the expected outputs); it
writes its outputs and this process compares them (:mod:`ocx.benchmarks.humaneval_compare`).
As in EvalPlus 0.3.1, the base and the plus inputs are two runs (two forked processes), each
with per-input limits max(1 s, 4 x the reference's time) and a budget of
min(60 s, sum of those limits) + 2 s, separate from the reference's own time.

As EvalPlus's ``fast_check``, a run stops at its first wrong output: this process judges each
output as the stream arrives (:class:`~ocx.benchmarks.humaneval_compare.StreamParser`) and, at
the first wrong one, has the sandbox kill the run; a part that had not finished by then (the
plus part, when base went wrong) runs again in a fresh job. The sandbox only ever receives that
"stop": the expected outputs stay here, and the wrong output had already fixed the part's verdict.

``check_many`` scores many programs on a small thread pool, each thread running its programs
one after another in a reused sandbox of its own (:class:`ocx.harness.sandbox_worker.SandboxWorker`:
a fresh process, uid and folder per program, without paying a sandbox start each time). Each
problem's expected outputs are computed once per run, and kept on disk under
``$OCX_CACHE_DIR/humaneval-references`` keyed by the sha256 of everything that determines them
(the producer's source, the Python version, the code and the inputs), as EvalPlus keeps its
ground truth; ``OCX_HUMANEVAL_REFERENCE_CACHE=0`` turns that off.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from ocx.benchmarks.humaneval_compare import (
    ExpectedOutputs,
    Malformed,
    PartJudge,
    PartOutputs,
    StreamParser,
    judge_part,
    parse_stream,
    raw_outputs,
)
from ocx.harness.sandbox import SandboxLimits, SandboxRun, run_sandboxed
from ocx.harness.sandbox_worker import SandboxWorker

MIN_TIME_LIMIT = 1.0  # EvalPlus DEFAULT_MIN_TIME_LIMIT
TIME_FACTOR = 4.0  # EvalPlus DEFAULT_GT_TIME_LIMIT_FACTOR
RUN_TIMEOUT = 60.0  # EvalPlus EVALPLUS_TIMEOUT_PER_TASK (default)
REFERENCE_LIMITS = SandboxLimits(
    timeout_s=900.0, cpu_seconds=900, memory_bytes=8 << 30, output_bytes=2 << 30
)
CANDIDATE_MEMORY = 4 << 30  # EvalPlus's 4 GiB
PARTS = ("base", "plus")


@dataclass(frozen=True)
class CheckResult:
    """``base``/``plus``: EvalPlus's statuses "pass", "fail", "timeout", or "error" (the sandbox
    or the reference failed: nothing was compared)."""

    base: str
    plus: str
    failure: dict | None = None
    sandbox: str = "ok"
    wall_s: float = 0.0
    isolation: str = "namespace"
    task_id: str | None = None
    """The problem checked (groups a problem's completions for pass@k over the records' checks)."""

    @property
    def passed_base(self) -> bool:
        return self.base == "pass"

    @property
    def passed_plus(self) -> bool:
        """HumanEval+ counts a program correct only if it passes the base inputs too."""
        return self.base == "pass" and self.plus == "pass"

    @property
    def correct(self) -> bool:
        """What the eval runner counts: the HumanEval+ verdict, as OpenChat reports."""
        return self.passed_plus

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Reference:
    """A problem's expected outputs (``ExpectedOutputs``: the producer's bytes, decoded on use)
    and the reference's time per input, per part."""

    outputs: dict
    times: dict
    stream_bytes: int
    error: str | None = None
    part_json: dict = field(default_factory=dict, compare=False, repr=False)
    """Each part's spec for a candidate (inputs, limits, budget) as JSON, written once per problem
    and reused for each of its programs (``_candidate_parts``)."""


def _producer_source() -> str:
    return (
        resources.files("ocx.benchmarks").joinpath("humaneval_check.py").read_text(encoding="utf-8")
    )


def _inputs(problem: dict) -> dict:
    return {"base": problem["base_input"], "plus": problem.get("plus_input", [])}


def _produce(
    program: str,
    code: str,
    problem: dict,
    parts: list[dict],
    mode: str,
    limits: SandboxLimits,
    isolation: str,
    worker=None,
    watch=None,
) -> SandboxRun:
    """Run the producer on ``parts`` (specs; one written already as JSON has it under "json")."""
    head = json.dumps(
        {
            "code": code,
            "entry_point": problem["entry_point"],
            "mode": mode,
            "own_pid_namespace": isolation == "namespace",
        }
    )
    specs = ",".join(p["json"] if "json" in p else json.dumps(p) for p in parts)
    payload = f'{head[:-1]}, "parts": [{specs}]}}'.encode()
    if worker is not None:
        return worker.run(program, payload, limits, watch=watch)
    return run_sandboxed(program, payload, limits=limits, isolation=isolation, watch=watch)


def _reference_cache(program: str, code: str, inputs: dict) -> Path | None:
    """Where this reference's output stream is kept (None when the cache is turned off)."""
    if os.environ.get("OCX_HUMANEVAL_REFERENCE_CACHE", "1") == "0":
        return None
    from ocx.benchmarks.data import cache_dir

    key = json.dumps([program, sys.version, code, inputs], sort_keys=True).encode("utf-8")
    return cache_dir() / "humaneval-references" / f"{hashlib.sha256(key).hexdigest()}.jsonl"


def _store(path: Path, stream: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.partial")
    partial.write_bytes(stream)
    os.replace(partial, path)  # never a half-written entry


def compute_reference(
    problem: dict, *, isolation: str = "namespace", program: str | None = None, worker=None
) -> Reference:
    """Run the canonical solution on every input (no per-input limit, as EvalPlus), or read
    its output stream from the disk cache."""
    inputs = _inputs(problem)
    program = program or _producer_source()
    code = problem["prompt"] + problem["canonical_solution"]
    cached = _reference_cache(program, code, inputs)
    if cached is not None and cached.is_file():
        reference = _parse_reference(cached.read_bytes(), inputs, "ok", "", checked=True)
        if reference.error is None:
            return reference
    parts = [
        {
            "name": p,
            "inputs": inputs[p],
            "limits": None,
            "budget": REFERENCE_LIMITS.timeout_s,
            "copy_inputs": True,
            "times": True,  # a candidate's outputs go without theirs: only these are used
        }
        for p in PARTS
    ]
    run = _produce(program, code, problem, parts, "reference", REFERENCE_LIMITS, isolation, worker)
    reference = _parse_reference(run.stdout, inputs, run.status, run.stderr)
    if reference.error is None and cached is not None:
        _store(cached, run.stdout)
    return reference


def _parse_reference(
    stdout: bytes, inputs: dict, status: str, stderr: str, checked: bool = False
) -> Reference:
    """A fresh stream is parsed in full (every value decoded); one from the cache (``checked``:
    parsed in full before it was stored) is only split into each value's bytes."""
    try:
        decoded = {} if checked else {p.name: p for p in parse_stream(stdout, list(PARTS))}
        got = raw_outputs(stdout, list(PARTS))
    except Malformed as exc:
        return Reference({}, {}, 0, f"reference output unreadable: {exc}")
    for part in PARTS:
        if part not in got or got[part].error or len(got[part].outputs) != len(inputs[part]):
            why = (
                got[part].error
                if part in got and got[part].error
                else f"sandbox {status}: {stderr[-300:]}"
            )
            return Reference({}, {}, 0, f"reference failed on {part}: {why}")
    outputs = {
        p: ExpectedOutputs(got[p].outputs, decoded[p].outputs if p in decoded else None)
        for p in PARTS
    }
    return Reference(outputs, {p: got[p].times for p in PARTS}, len(stdout))


def time_limits(reference_times: list[float]) -> tuple[list[float], float]:
    """EvalPlus's per-input limits and the run's budget: ``join(min(60, sum) + 1 + 1)``."""
    limits = [max(MIN_TIME_LIMIT, TIME_FACTOR * t) for t in reference_times]
    return limits, min(RUN_TIMEOUT, sum(limits)) + 2.0


def _candidate_parts(problem: dict, reference: Reference) -> dict[str, dict]:
    """Each part's spec for a candidate run, with its JSON under ``"json"`` (written once per
    problem and kept with its reference: some problems' inputs are megabytes)."""
    inputs, specs = _inputs(problem), {}
    for part in PARTS:
        kept = reference.part_json.get(part)
        if kept is None or kept["inputs"] is not inputs[part]:  # another problem's inputs
            limits, budget = time_limits(reference.times[part])
            spec = {"name": part, "inputs": inputs[part], "limits": limits, "budget": budget}
            kept = reference.part_json[part] = {**spec, "json": json.dumps(spec)}
        specs[part] = kept
    return specs


def check_with_reference(
    code: str,
    problem: dict,
    reference: Reference,
    *,
    isolation: str = "namespace",
    program: str | None = None,
    worker=None,
) -> CheckResult:
    """Run ``code`` on the base and plus inputs in a fresh sandbox and judge its outputs here."""
    task = problem.get("task_id")
    if reference.error:
        return CheckResult(
            "error",
            "error",
            {"part": "reference", "input": None, "error": reference.error},
            "not run",
            0.0,
            isolation,
            task,
        )
    inputs = _inputs(problem)
    specs = _candidate_parts(problem, reference)
    try:
        found, runs = _run_candidate(
            code, problem, reference, specs, isolation, program or _producer_source(), worker
        )
    except _MalformedRun as exc:  # stray or forged bytes on the channel: the sample fails
        failure = {"part": "stream", "input": None, "error": f"malformed output: {exc.error}"[:300]}
        return CheckResult("fail", "fail", failure, exc.run.status, exc.wall_s, isolation, task)
    statuses, failure = {}, None
    for part in PARTS:
        got = found.get(part, PartOutputs(part))
        statuses[part], why = judge_part(
            got,
            reference.outputs[part],
            inputs[part],
            problem.get("atol", 0) or 0,
            problem["entry_point"],
        )
        if why is not None and failure is None:
            failure = {"part": part, **why}
    over = [r for r in runs if r.status == "output_limit"]
    if failure is not None and over:
        failure["error"] = f"output over {_candidate_limits([], reference).output_bytes} bytes"
    return CheckResult(
        statuses["base"],
        statuses["plus"],
        failure,
        runs[-1].status,
        round(sum(r.wall_s for r in runs), 4),
        isolation,
        task,
    )


class _MalformedRun(Exception):
    def __init__(self, error: Malformed, run: SandboxRun, wall_s: float) -> None:
        self.error, self.run, self.wall_s = error, run, wall_s


def _candidate_limits(parts: list[dict], reference: Reference) -> SandboxLimits:
    total = 5.0 + sum(part["budget"] for part in parts)
    return SandboxLimits(
        timeout_s=total,
        cpu_seconds=math.ceil(total) + 1,
        memory_bytes=CANDIDATE_MEMORY,
        output_bytes=2 * reference.stream_bytes + (8 << 20),
    )


def _run_candidate(
    code: str,
    problem: dict,
    reference: Reference,
    specs: dict,
    isolation: str,
    program: str,
    worker,
) -> tuple[dict[str, PartOutputs], list[SandboxRun]]:
    """Each part's outputs, judged as they stream; a run stopped at a wrong output leaves the
    parts it had not finished to a fresh run. Raises ``_MalformedRun``."""
    same_bytes = (
        None
        if problem["entry_point"] == "find_zero"
        else {p: reference.outputs[p].raw for p in PARTS}
    )
    atol = problem.get("atol", 0) or 0
    found: dict[str, PartOutputs] = {}
    runs: list[SandboxRun] = []
    todo = list(PARTS)
    while todo:
        judges = {
            p: PartJudge(reference.outputs[p], specs[p]["inputs"], atol, problem["entry_point"])
            for p in todo
        }
        parser = StreamParser(todo, same_bytes, judges)
        parts = [specs[p] for p in todo]
        runs.append(
            _produce(
                program,
                code,
                problem,
                parts,
                "candidate",
                _candidate_limits(parts, reference),
                isolation,
                worker,
                parser.feed,
            )
        )
        try:
            got = {p.name: p for p in parser.close()}
        except Malformed as exc:
            raise _MalformedRun(exc, runs[-1], round(sum(r.wall_s for r in runs), 4)) from None
        settled = (
            set(got)
            if runs[-1].status != "stopped"
            else {name for name, p in got.items() if p.ended is not None or name == parser.wrong}
        )
        found.update({name: got[name] for name in settled})
        if not settled:  # cannot happen (a stop names its wrong part); never loop on it
            break
        todo = [p for p in todo if p not in settled]
        if runs[-1].status != "stopped":
            break
    return found, runs


def check_program(code: str, problem: dict, *, isolation: str = "namespace") -> CheckResult:
    """Expected outputs for ``problem``, then ``code`` checked against them (two sandboxes).

    ``problem`` holds ``prompt``, ``canonical_solution``, ``entry_point``, ``base_input``,
    ``plus_input`` and ``atol`` (the fields of EvalPlus's HumanEval+ records).
    """
    return check_with_reference(
        code, problem, compute_reference(problem, isolation=isolation), isolation=isolation
    )


class _References:
    """Each problem's expected outputs, computed once, dropped after the last program that
    needs them."""

    def __init__(self, keys: list[str], isolation: str, program: str) -> None:
        self._isolation, self._program = isolation, program
        self._left = {k: keys.count(k) for k in set(keys)}
        self._locks = {k: threading.Lock() for k in self._left}
        self._values: dict[str, Reference] = {}
        self._guard = threading.Lock()

    def get(self, key: str, problem: dict, worker=None) -> Reference:
        with self._locks[key]:
            if key not in self._values:
                self._values[key] = compute_reference(
                    problem, isolation=self._isolation, program=self._program, worker=worker
                )
            return self._values[key]

    def done(self, key: str) -> None:
        with self._guard:
            self._left[key] -= 1
            if self._left[key] == 0:
                self._values.pop(key, None)


def _problem_key(problem: dict) -> str:
    solution = problem["prompt"] + problem["canonical_solution"]
    return f"{problem.get('task_id')}\0{problem['entry_point']}\0{solution}"


def check_many(
    jobs: Sequence[tuple[str, dict]],
    *,
    workers: int = 2,
    isolation: str = "namespace",
    on_done: Callable[[int, CheckResult], None] | None = None,
) -> list[CheckResult]:
    """``check_program`` for every ``(code, problem)``, ``workers`` sandboxes at a time, in input
    order."""
    program = _producer_source()
    keys = [_problem_key(problem) for _, problem in jobs]
    references = _References(keys, isolation, program)
    first = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    order = sorted(
        range(len(jobs)), key=lambda i: (first[keys[i]], i)
    )  # one problem's programs together
    results: list[CheckResult | None] = [None] * len(jobs)
    local, started, lock = threading.local(), [], threading.Lock()

    def worker() -> SandboxWorker | None:
        if isolation != "namespace":
            return None  # process mode: one plain process per program, no zygote
        if not hasattr(local, "worker"):
            local.worker = SandboxWorker(isolation)
            with lock:
                started.append(local.worker)
        return local.worker

    def one(index: int) -> None:
        code, problem = jobs[index]
        try:
            reference = references.get(keys[index], problem, worker())
            results[index] = check_with_reference(
                code, problem, reference, isolation=isolation, program=program, worker=worker()
            )
        finally:
            references.done(keys[index])
        if on_done is not None:
            on_done(index, results[index])

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(one, order))
            # Closed while the threads that started them live: a sandbox dies with its thread
            # (--die-with-parent); this lets each exit by itself.
            for started_worker in started:
                started_worker.close()
    finally:
        for started_worker in started:
            started_worker.close()
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


def pass_at_k_summary(
    correct_by_task: dict[str, list[bool]], ks: Sequence[int] = (1, 10, 100)
) -> dict[str, float]:
    """Mean pass@k over problems for every k that every problem has enough samples for."""
    if not correct_by_task:
        return {}
    counts = [(len(v), sum(v)) for v in correct_by_task.values()]
    n_min = min(n for n, _ in counts)
    return {
        f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
        for k in ks
        if k <= n_min
    }


def base_plus_scores(checks: Sequence[dict], ks: Sequence[int] = (1, 10, 100)) -> dict:
    """EvalPlus's two summaries from check records (``CheckResult.to_dict()``): pass@k on the
    base inputs (HumanEval) and on base + plus (HumanEval+), each with its bootstrap interval
    over problems. A problem's completions are grouped by ``task_id``."""
    from ocx.harness.stats import bootstrap_ratio

    by_task: dict[str, list[dict]] = {}
    for check in checks:
        by_task.setdefault(str(check.get("task_id")), []).append(check)
    scores: dict = {}
    for name, passed in (
        ("base", lambda c: c["base"] == "pass"),
        ("plus", lambda c: c["base"] == "pass" and c["plus"] == "pass"),
    ):
        verdicts = {task: [passed(c) for c in group] for task, group in by_task.items()}
        for key, value in pass_at_k_summary(verdicts, ks).items():
            k = int(key.removeprefix("pass@"))
            estimates = [[pass_at_k(len(v), sum(v), k)] for v in verdicts.values()]
            scores[f"{name}_{key}"] = value
            scores.update(bootstrap_ratio(estimates, lo=0.0, hi=1.0).as_dict(f"{name}_{key}_"))
    return scores
