"""The evaluation runner: suites in, per-sample records and per-suite scores out.

For every sample of every suite: the suite's messages, the condition and the sampling settings
make a request whose cache key says everything that determines the answer. Cached answers are
reused; the rest go to the backend in one stream (all suites together, so a fast endpoint is
never idle between suites), and each answer is committed to the cache the moment it arrives.
Then each suite extracts and scores its answers. Accuracy is the mean of `score` over the
suite's samples; an unmatched answer counts as wrong and is reported as unmatched.

A suite whose scoring is slow (HumanEval runs every program in a sandbox) may offer
`score_many(extractions, samples, on_done=None) -> list` to score all its samples at once (in
parallel). Each result is a bool, or an object with `correct` (what counts; HumanEval's is the
HumanEval+ verdict) and `to_dict()` (the details kept in the sample's record as `check`);
`on_done(index, result)` is called as each finishes, for the progress bar.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

from ocx.benchmarks.base import DataSource, Sample, Suite, suite_data_sha256
from ocx.harness.backends import Backend, Request, Sampling
from ocx.harness.cache import ResponseCache, request_key


class RequestsFailedError(RuntimeError):
    """Some requests failed after every retry; the answered ones are cached for the next run."""


@dataclass(frozen=True)
class SampleRecord:
    suite: str
    id: str
    messages: list[dict]
    response: str
    answer: str | None
    matched: bool
    correct: bool
    gold: str
    cached: bool
    check: dict | None = None
    """How a `score_many` suite reached its verdict, e.g. HumanEval's base and plus results and
    the first failing input."""

    def to_dict(self) -> dict:
        record = {"suite": self.suite, "id": self.id, "messages": self.messages, "response": self.response,
                  "answer": self.answer, "matched": self.matched, "correct": self.correct, "gold": self.gold,
                  "cached": self.cached}
        if self.check is not None:
            record["check"] = self.check
        return record


@dataclass(frozen=True)
class SuiteSummary:
    name: str
    version: str
    source: str
    data_sha256: str
    sampling: dict
    n: int
    correct: int
    unmatched: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def unmatched_rate(self) -> float:
        return self.unmatched / self.n if self.n else 0.0

    def scores(self) -> dict:
        return {"accuracy": self.accuracy, "n": self.n, "correct": self.correct, "unmatched": self.unmatched,
                "unmatched_rate": self.unmatched_rate}


@dataclass
class EvalRun:
    """What a run produced: one summary per suite, one record per sample, request counts."""

    summaries: dict[str, SuiteSummary]
    records: list[SampleRecord]
    sent: int = 0
    cached: int = 0
    elapsed_s: float = 0.0
    settings: dict = field(default_factory=dict)


@dataclass
class _Planned:
    suite: Suite
    samples: list[Sample]
    sampling: Sampling
    keys: list[str]


def plan_suites(suites: Sequence[Suite], data: DataSource, *, limit: int | None, condition: str | None,
                overrides: dict, identity: dict) -> list[_Planned]:
    """Load every suite and compute each sample's cache key (no model work yet)."""
    planned = []
    for suite in suites:
        samples = suite.load(data, limit=limit)
        sampling = Sampling.for_suite(suite.generation, overrides)
        keys = [request_key(identity, suite.prompt(s), condition, sampling.as_dict()) for s in samples]
        planned.append(_Planned(suite, samples, sampling, keys))
    return planned


class Runner:
    """Runs suites against a backend with a response cache; `progress` is a rich Progress or None."""

    def __init__(self, backend: Backend, cache: ResponseCache, *, condition: str | None = None,
                 matcher: str = "ocx", overrides: dict | None = None, progress=None):
        self.backend = backend
        self.cache = cache
        self.condition = condition
        self.matcher = matcher
        self.overrides = dict(overrides or {})
        self.progress = progress

    def run(self, suites: Sequence[Suite], data: DataSource, *, limit: int | None = None) -> EvalRun:
        start = time.perf_counter()
        identity = self.backend.identity()
        planned = plan_suites(suites, data, limit=limit, condition=self.condition, overrides=self.overrides,
                              identity=identity)
        answers = self.cache.get_many(k for p in planned for k in p.keys)
        cached_keys = set(answers)
        sent = self._generate(planned, answers)
        summaries, records = {}, []
        for p in planned:
            summary, suite_records = self._score(p, answers, cached_keys)
            summaries[p.suite.name] = summary
            records += suite_records
        return EvalRun(summaries, records, sent=sent, cached=len(cached_keys), elapsed_s=time.perf_counter() - start,
                       settings={"model": identity, "condition": self.condition, "matcher": self.matcher})

    def _generate(self, planned: list[_Planned], answers: dict[str, str]) -> int:
        """Send every uncached request; returns how many were sent."""
        tasks = self._progress_tasks(planned, answers)
        requests: list[Request] = []
        owners: list[tuple[str, list[int]]] = []  # request index -> (key, progress tasks to advance)
        seen: dict[str, int] = {}
        for p, task in zip(planned, tasks):
            for sample, key in zip(p.samples, p.keys):
                if key in answers:
                    continue
                if key in seen:  # the same prompt twice (duplicates in the data): ask once
                    owners[seen[key]][1].append(task)
                    continue
                seen[key] = len(requests)
                owners.append((key, [task]))
                requests.append(Request(len(requests), tuple(p.suite.prompt(sample)), self.condition, p.sampling))
        errors: list[tuple[int, BaseException]] = []

        def on_result(index: int, text: str) -> None:
            key, owner_tasks = owners[index]
            # The prompt itself is in samples.jsonl; a small row keeps each commit cheap (~0.1 ms).
            self.cache.put(key, text, {"condition": self.condition, "sampling": requests[index].sampling.as_dict()})
            answers[key] = text
            for task in owner_tasks:
                self._advance(task)

        if requests:
            self.backend.generate(requests, on_result, lambda index, exc: errors.append((index, exc)))
        if errors:
            first = "; ".join(f"{type(e).__name__}: {e}" for _, e in errors[:3])
            raise RequestsFailedError(f"{len(errors)} of {len(requests)} requests failed ({first}); "
                                      f"the {len(requests) - len(errors)} answered are cached: run again to retry")
        return len(requests)

    def _progress_tasks(self, planned: list[_Planned], answers: dict[str, str]) -> list[int | None]:
        if self.progress is None:
            return [None] * len(planned)
        tasks = []
        for p in planned:
            done = sum(k in answers for k in p.keys)
            tasks.append(self.progress.add_task(p.suite.name, total=len(p.keys), completed=done))
        return tasks

    def _advance(self, task: int | None) -> None:
        if task is not None:
            self.progress.advance(task)

    def _score(self, p: _Planned, answers: dict[str, str], cached_keys: set[str]):
        responses = [answers[key] for key in p.keys]
        extractions = [p.suite.extract(r, sample, self.matcher) for r, sample in zip(responses, p.samples)]
        verdicts = self._verdicts(p, extractions)
        records = []
        for sample, key, response, extraction, (correct, check) in zip(p.samples, p.keys, responses, extractions,
                                                                         verdicts):
            records.append(SampleRecord(p.suite.name, sample.id, p.suite.prompt(sample), response, extraction.answer,
                                        extraction.matched, correct, sample.gold, key in cached_keys, check))
        summary = SuiteSummary(p.suite.name, p.suite.version, p.suite.source, suite_data_sha256(p.samples),
                               p.sampling.as_dict(), len(p.samples), sum(r.correct for r in records),
                               sum(not e.matched for e in extractions))
        return summary, records

    def _verdicts(self, p: _Planned, extractions: list) -> list[tuple[bool, dict | None]]:
        """(correct, check details) per sample: `score_many` when the suite has it, else `score`."""
        score_many = getattr(p.suite, "score_many", None)
        if score_many is None:
            return [(bool(p.suite.score(e, s)), None) for e, s in zip(extractions, p.samples)]
        if self.progress is None:
            results = score_many(extractions, p.samples)
        else:
            task = self.progress.add_task(f"{p.suite.name} checks", total=len(p.samples))
            results = score_many(extractions, p.samples, on_done=lambda index, result: self._advance(task))
        return [(bool(r), None) if isinstance(r, bool) else (bool(r.correct), r.to_dict()) for r in results]

def make_progress(console=None, enabled: bool = True):
    """A rich Progress with one bar per suite (or a no-op context when disabled)."""
    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)
