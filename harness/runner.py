"""The evaluation runner: suites in, per-sample records and per-suite scores out.

For every sample of every suite: the suite's messages, the condition and the sampling settings
make a request whose cache key says everything that determines the answer. Cached answers are
reused; the rest go to the backend in one stream (all suites together, so a fast endpoint is
never idle between suites), and each answer is committed to the cache the moment it arrives.
Then each suite extracts and scores its answers. Accuracy is the mean of `score` over the
suite's samples; an unmatched answer counts as wrong and is reported as unmatched.

With `completions=N` (`ocx eval --samples N`) every sample is asked N times, each a request of
its own (its completion index is in the cache key, and a user seed becomes seed + index), and
accuracy is the mean over all N x samples answers. A suite may offer
`scores_for_completions(correct_per_sample: list[list[bool]]) -> dict` for extra scores over
the N verdicts of each sample (HumanEval's unbiased pass@k).

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
from dataclasses import dataclass, field, replace

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
    completions: list[dict] | None = None
    """With N > 1 completions per sample: every completion's response, answer, matched, correct,
    cached (and check); the fields above are then the first completion's."""

    def to_dict(self) -> dict:
        record = {"suite": self.suite, "id": self.id, "messages": self.messages, "response": self.response,
                  "answer": self.answer, "matched": self.matched, "correct": self.correct, "gold": self.gold,
                  "cached": self.cached}
        if self.check is not None:
            record["check"] = self.check
        if self.completions is not None:
            record["completions"] = self.completions
        return record


@dataclass(frozen=True)
class SuiteSummary:
    name: str
    version: str
    source: str
    data_sha256: str
    sampling: dict
    n: int
    """Samples (problems); each was answered `completions` times."""
    correct: int
    """Correct answers, over all completions."""
    unmatched: int
    completions: int = 1
    extra: dict = field(default_factory=dict)
    """The suite's own scores over several completions per sample, e.g. {"pass@1": ..., "pass@10": ...}."""

    @property
    def answers(self) -> int:
        return self.n * self.completions

    @property
    def accuracy(self) -> float:
        return self.correct / self.answers if self.answers else 0.0

    @property
    def unmatched_rate(self) -> float:
        return self.unmatched / self.answers if self.answers else 0.0

    def scores(self) -> dict:
        scores = {"accuracy": self.accuracy, "n": self.n, "correct": self.correct, "unmatched": self.unmatched,
                  "unmatched_rate": self.unmatched_rate}
        if self.completions > 1:  # a single-completion summary stays exactly as it always was
            scores["completions"] = self.completions
        return {**scores, **self.extra}


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
    samplings: list[Sampling]
    """One per completion index: the suite's settings, the seed (if any) moved on by the index."""
    keys: list[list[str]]
    """keys[sample][completion]."""

    @property
    def sampling(self) -> Sampling:
        return self.samplings[0]

    def all_keys(self) -> list[str]:
        return [key for sample_keys in self.keys for key in sample_keys]


def completion_sampling(sampling: Sampling, completion: int) -> Sampling:
    """The settings for completion `completion`: seed + completion when a seed is set, so the N
    answers to one prompt are N draws rather than one draw N times."""
    if sampling.seed is None or completion == 0:
        return sampling
    return replace(sampling, seed=sampling.seed + completion)


def plan_suites(suites: Sequence[Suite], data: DataSource, *, limit: int | None, condition: str | None,
                overrides: dict, identity: dict, completions: int = 1) -> list[_Planned]:
    """Load every suite and compute each sample's cache keys, one per completion (no model work yet)."""
    planned = []
    for suite in suites:
        samples = suite.load(data, limit=limit)
        base = Sampling.for_suite(suite.generation, overrides)
        samplings = [completion_sampling(base, i) for i in range(completions)]
        keys = []
        for sample in samples:
            prompt = suite.prompt(sample)
            keys.append([request_key(identity, prompt, condition, samplings[i].as_dict(), completion=i)
                         for i in range(completions)])
        planned.append(_Planned(suite, samples, samplings, keys))
    return planned


class Runner:
    """Runs suites against a backend with a response cache; `progress` is a rich Progress or None."""

    def __init__(self, backend: Backend, cache: ResponseCache, *, condition: str | None = None,
                 matcher: str = "ocx", overrides: dict | None = None, progress=None, completions: int = 1):
        if completions < 1:
            raise ValueError(f"completions must be at least 1, got {completions}")
        self.completions = completions
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
                              identity=identity, completions=self.completions)
        answers = self.cache.get_many(k for p in planned for k in p.all_keys())
        cached_keys = set(answers)
        sent = self._generate(planned, answers)
        summaries, records = {}, []
        for p in planned:
            summary, suite_records = self._score(p, answers, cached_keys)
            summaries[p.suite.name] = summary
            records += suite_records
        settings = {"model": identity, "condition": self.condition, "matcher": self.matcher}
        if self.completions > 1:
            settings["samples"] = self.completions
        return EvalRun(summaries, records, sent=sent, cached=len(cached_keys), elapsed_s=time.perf_counter() - start,
                       settings=settings)

    def _generate(self, planned: list[_Planned], answers: dict[str, str]) -> int:
        """Send every uncached request; returns how many were sent."""
        tasks = self._progress_tasks(planned, answers)
        requests: list[Request] = []
        owners: list[tuple[str, int, list[int]]] = []  # request index -> (key, completion, progress tasks)
        seen: dict[str, int] = {}
        for p, task in zip(planned, tasks):
            for sample, sample_keys in zip(p.samples, p.keys):
                for completion, key in enumerate(sample_keys):
                    if key in answers:
                        continue
                    if key in seen:  # the same prompt twice (duplicates in the data): ask once
                        owners[seen[key]][2].append(task)
                        continue
                    seen[key] = len(requests)
                    owners.append((key, completion, [task]))
                    requests.append(Request(len(requests), tuple(p.suite.prompt(sample)), self.condition,
                                            p.samplings[completion]))
        errors: list[tuple[int, BaseException]] = []

        def on_result(index: int, text: str) -> None:
            key, completion, owner_tasks = owners[index]
            # The prompt itself is in samples.jsonl; a small row keeps each commit cheap (~0.1 ms).
            row = {"condition": self.condition, "sampling": requests[index].sampling.as_dict()}
            if completion:
                row["completion"] = completion
            self.cache.put(key, text, row)
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
            keys = p.all_keys()
            done = sum(k in answers for k in keys)
            tasks.append(self.progress.add_task(p.suite.name, total=len(keys), completed=done))
        return tasks

    def _advance(self, task: int | None) -> None:
        if task is not None:
            self.progress.advance(task)

    def _score(self, p: _Planned, answers: dict[str, str], cached_keys: set[str]):
        """Extract and score every completion; one record per sample holds its N completions."""
        n = self.completions
        keys = p.all_keys()
        samples = [sample for sample in p.samples for _ in range(n)]  # one per answer, in key order
        extractions = [p.suite.extract(answers[key], sample, self.matcher) for key, sample in zip(keys, samples)]
        verdicts = self._verdicts(p, extractions, samples)
        scored = []
        for key, extraction, (correct, check) in zip(keys, extractions, verdicts):
            one = {"response": answers[key], "answer": extraction.answer, "matched": extraction.matched,
                   "correct": correct, "cached": key in cached_keys}
            scored.append(one if check is None else {**one, "check": check})
        per_sample = [scored[j * n:(j + 1) * n] for j in range(len(p.samples))]
        records = [self._record(p, sample, completions) for sample, completions in zip(p.samples, per_sample)]
        extra = {}
        scores_for_completions = getattr(p.suite, "scores_for_completions", None)
        if n > 1 and scores_for_completions is not None:
            extra = scores_for_completions([[c["correct"] for c in completions] for completions in per_sample])
        summary = SuiteSummary(p.suite.name, p.suite.version, p.suite.source, suite_data_sha256(p.samples),
                               p.sampling.as_dict(), len(p.samples), sum(c for c, _ in verdicts),
                               sum(not e.matched for e in extractions), n, extra)
        return summary, records

    def _record(self, p: _Planned, sample: Sample, completions: list[dict]) -> SampleRecord:
        first = completions[0]
        return SampleRecord(p.suite.name, sample.id, p.suite.prompt(sample), first["response"], first["answer"],
                            first["matched"], first["correct"], sample.gold, first["cached"], first.get("check"),
                            completions if len(completions) > 1 else None)

    def _verdicts(self, p: _Planned, extractions: list, samples: list[Sample]) -> list[tuple[bool, dict | None]]:
        """(correct, check details) per answer: `score_many` when the suite has it, else `score`."""
        score_many = getattr(p.suite, "score_many", None)
        if score_many is None:
            return [(bool(p.suite.score(e, s)), None) for e, s in zip(extractions, samples)]
        if self.progress is None:
            results = score_many(extractions, samples)
        else:
            task = self.progress.add_task(f"{p.suite.name} checks", total=len(samples))
            results = score_many(extractions, samples, on_done=lambda index, result: self._advance(task))
        return [(bool(r), None) if isinstance(r, bool) else (bool(r.correct), r.to_dict()) for r in results]


def make_progress(console=None, enabled: bool = True):
    """A rich Progress with one bar per suite (or a no-op context when disabled)."""
    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)
