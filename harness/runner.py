"""The evaluation runner: suites in, per-sample records and per-suite scores out.

For every sample of every suite: the suite's messages, the condition and the sampling settings
make a request whose cache key says everything that determines the answer. Cached answers are
reused; the rest go to the backend in one stream (all suites together, so a fast endpoint is
never idle between suites), and answers are committed to the cache in small batches as they
arrive (see harness/cache.py: a killed run loses at most one batch).
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

import itertools
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

from ocx.benchmarks.base import DataSource, Sample, Suite
from ocx.harness.backends import Backend, Request
from ocx.harness.cache import ResponseCache
from ocx.harness.idle_work import IdleWork
from ocx.harness.plan import (  # noqa: F401 (plan_suites, completion_sampling: re-exported)
    PlanBuilder,
    PlannedSuite,
    completion_sampling,
    load_suites,
    plan_suites,
)


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
    cluster: str | None = None
    """The passage (or other group) this question shares with others, from the suite's
    `cluster_key`; what clustered standard errors and `ocx report`'s paired test group by."""

    def to_dict(self) -> dict:
        record = {
            "suite": self.suite,
            "id": self.id,
            "messages": self.messages,
            "response": self.response,
            "answer": self.answer,
            "matched": self.matched,
            "correct": self.correct,
            "gold": self.gold,
            "cached": self.cached,
        }
        if self.check is not None:
            record["check"] = self.check
        if self.completions is not None:
            record["completions"] = self.completions
        if self.cluster is not None:
            record["cluster"] = self.cluster
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
    intervals: dict = field(default_factory=dict)
    """Standard errors and 95% intervals: `stderr`, `ci95`, `ci_method` (and `clusters`) for
    accuracy, `pass@k_stderr`, `pass@k_ci95` for each pass@k (see harness/stats.py)."""

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
        scores = {
            "accuracy": self.accuracy,
            "n": self.n,
            "correct": self.correct,
            "unmatched": self.unmatched,
            "unmatched_rate": self.unmatched_rate,
        }
        if self.completions > 1:  # a single-completion summary stays exactly as it always was
            scores["completions"] = self.completions
        return {**scores, **self.intervals, **self.extra}


@dataclass
class EvalRun:
    """What a run produced: one summary per suite, one record per sample, request counts."""

    summaries: dict[str, SuiteSummary]
    records: list[SampleRecord]
    sent: int = 0
    cached: int = 0
    elapsed_s: float = 0.0
    settings: dict = field(default_factory=dict)


class Runner:
    """Runs suites against a backend with a response cache; `progress` is a rich Progress or None."""

    def __init__(
        self,
        backend: Backend,
        cache: ResponseCache,
        *,
        condition: str | None = None,
        matcher: str = "ocx",
        overrides: dict | None = None,
        progress=None,
        completions: int = 1,
        system_prompt: str | None = None,
    ):
        if completions < 1:
            raise ValueError(f"completions must be at least 1, got {completions}")
        self.completions = completions
        self.backend = backend
        self.cache = cache
        self.condition = condition
        self.matcher = matcher
        self.overrides = dict(overrides or {})
        self.progress = progress
        self.system_prompt = system_prompt

    def run(
        self, suites: Sequence[Suite], data: DataSource, *, limit: int | None = None
    ) -> EvalRun:
        start = time.perf_counter()
        identity = self.backend.identity()
        builders = load_suites(
            suites,
            data,
            limit=limit,
            condition=self.condition,
            overrides=self.overrides,
            identity=identity,
            completions=self.completions,
            system_prompt=self.system_prompt,
        )
        planned = [b.planned for b in builders]
        answers: dict[str, str] = {}
        cached_keys: set[str] = set()
        idle = IdleWork(planned, self.matcher)
        try:
            sent = self._generate(builders, answers, cached_keys, idle)
        finally:
            self.cache.flush()  # every answer received is on disk before scoring (which may fail)
        summaries, records = {}, []
        for index, p in enumerate(planned):
            summary, suite_records = self._score(index, p, answers, cached_keys, idle)
            summaries[p.suite.name] = summary
            records += suite_records
        settings = {"model": identity, "condition": self.condition, "matcher": self.matcher}
        if self.completions > 1:
            settings["samples"] = self.completions
        return EvalRun(
            summaries,
            records,
            sent=sent,
            cached=len(cached_keys),
            elapsed_s=time.perf_counter() - start,
            settings=settings,
        )

    def _generate(
        self,
        builders: list[PlanBuilder],
        answers: dict[str, str],
        cached_keys: set[str],
        idle: IdleWork,
    ) -> int:
        """Plan every sample, look its keys up in the cache and send the uncached requests;
        returns how many were sent. Each answer is cached and extracted as it arrives (`idle`:
        work done while the other requests are in flight).

        A backend that pulls its requests one at a time (`pulls_requests`, the HTTP client) gets
        them lazily: samples are planned a span at a time as it asks, so the first requests are
        in flight while the rest are still being keyed. Others get the whole list."""
        planned = [b.planned for b in builders]
        tasks = self._progress_tasks(planned)
        # request index -> (key, progress tasks, (suite index, sample index, completion) per owner)
        owners: list[tuple[str, list[int | None], list[tuple[int, int, int]]]] = []
        request_rows: list[str] = []
        rows = self._request_rows(planned)
        seen: dict[str, int] = {}
        pulls = getattr(self.backend, "pulls_requests", False)
        # The prompt's JSON, made for its cache key, rides along for a backend that sends it as is.
        with_json = getattr(self.backend, "takes_messages_json", False)

        def spans(builder: PlanBuilder) -> Iterator[range]:
            # Small spans keep the event loop free: planning one takes a few ms, less than an answer.
            size = 64 if pulls else len(builder.planned.samples)
            while not builder.done:
                yield builder.extend(size)

        def pending() -> Iterator[Request]:
            for suite_index, (builder, task) in enumerate(zip(builders, tasks)):
                p = builder.planned
                for span in spans(builder):
                    found = self.cache.get_many(k for j in span for k in p.keys[j])
                    if seen:  # a key sent earlier in this run (a duplicate) is not a cached answer
                        found = {k: v for k, v in found.items() if k not in seen}
                    answers.update(found)
                    cached_keys.update(found)
                    for j in span:
                        for completion, key in enumerate(p.keys[j]):
                            if key in cached_keys:
                                self._advance(task)
                                continue
                            owner = (suite_index, j, completion)
                            if (
                                key in seen
                            ):  # the same prompt twice (duplicates in the data): ask once
                                if key in answers:  # already answered: extracted when scored
                                    self._advance(task)
                                    continue
                                owners[seen[key]][1].append(task)
                                owners[seen[key]][2].append(owner)
                                continue
                            seen[key] = len(owners)
                            owners.append((key, [task], [owner]))
                            request_rows.append(rows[suite_index, completion])
                            yield Request(
                                len(owners) - 1,
                                tuple(p.prompts[j]),
                                self.condition,
                                p.samplings[completion],
                                builder.prompt_json[j] if with_json else None,
                            )

        errors: list[tuple[int, BaseException]] = []

        def on_result(index: int, text: str) -> None:
            key, owner_tasks, answer_owners = owners[index]
            self.cache.put(key, text, request_json=request_rows[index])
            answers[key] = text
            for task in owner_tasks:
                self._advance(task)
            idle.on_answer(answer_owners, text)

        def on_error(index: int, exc: BaseException) -> None:
            errors.append((index, exc))

        requests = pending()
        if not pulls:
            requests = list(requests)
        first = next(iter(requests), None)  # nothing to send (all cached): no backend work at all
        if first is not None:
            self.backend.generate(
                itertools.chain([first], requests) if pulls else requests, on_result, on_error
            )
            left = (
                list(requests) if pulls else []
            )  # a backend that stopped pulling early: send the rest too
            if left:
                self.backend.generate(left, on_result, on_error)
        for builder in builders:  # every sample planned (keys, data hash) even if none was sent
            builder.extend(len(builder.planned.samples))
        if errors:
            first_errors = "; ".join(f"{type(e).__name__}: {e}" for _, e in errors[:3])
            raise RequestsFailedError(
                f"{len(errors)} of {len(owners)} requests failed ({first_errors}); "
                f"the {len(owners) - len(errors)} answered are cached: run again to retry"
            )
        return len(owners)

    def _request_rows(self, planned: list[PlannedSuite]) -> dict[tuple[int, int], str]:
        """The cache's `request` column per (suite, completion), serialized once per setting rather
        than per answer (the prompt itself is in samples.jsonl; a small row keeps commits cheap)."""
        rows = {}
        for suite_index, p in enumerate(planned):
            for completion, sampling in enumerate(p.samplings):
                row = {"condition": self.condition, "sampling": sampling.as_dict()}
                if completion:
                    row["completion"] = completion
                rows[suite_index, completion] = json.dumps(row, ensure_ascii=False)
        return rows

    def _progress_tasks(self, planned: list[PlannedSuite]) -> list[int | None]:
        if self.progress is None:
            return [None] * len(planned)
        return [
            self.progress.add_task(p.suite.name, total=len(p.samples) * len(p.samplings))
            for p in planned
        ]

    def _advance(self, task: int | None) -> None:
        if task is not None:
            self.progress.advance(task)

    def _score(
        self,
        index: int,
        p: PlannedSuite,
        answers: dict[str, str],
        cached_keys: set[str],
        idle: IdleWork,
    ):
        """Extract and score every completion; one record per sample holds its N completions."""
        n = self.completions
        keys = p.all_keys()
        samples = [sample for sample in p.samples for _ in range(n)]  # one per answer, in key order
        extractions = [
            idle.extraction(index, i // n, i % n, answers[key]) for i, key in enumerate(keys)
        ]
        verdicts = self._verdicts(p, extractions, samples)
        scored = []
        for key, extraction, (correct, check) in zip(keys, extractions, verdicts):
            one = {
                "response": answers[key],
                "answer": extraction.answer,
                "matched": extraction.matched,
                "correct": correct,
                "cached": key in cached_keys,
            }
            scored.append(one if check is None else {**one, "check": check})
        per_sample = [scored[j * n : (j + 1) * n] for j in range(len(p.samples))]
        clusters = cluster_keys(p.suite, p.samples)
        records = [
            self._record(p, j, completions, cluster)
            for j, (completions, cluster) in enumerate(
                zip(per_sample, clusters or [None] * len(p.samples))
            )
        ]
        extra = {}
        scores_for_completions = getattr(p.suite, "scores_for_completions", None)
        verdicts_per_sample = [[c["correct"] for c in completions] for completions in per_sample]
        if n > 1 and scores_for_completions is not None:
            extra = scores_for_completions(verdicts_per_sample)
        scores_for_checks = getattr(
            p.suite, "scores_for_checks", None
        )  # e.g. IFBench's strict/loose levels
        if scores_for_checks is not None:
            extra = {**extra, **scores_for_checks([c.get("check") for c in scored])}
        summary = SuiteSummary(
            p.suite.name,
            p.suite.version,
            p.suite.source,
            p.data_sha256,
            p.sampling.as_dict(),
            len(p.samples),
            sum(c for c, _ in verdicts),
            sum(not e.matched for e in extractions),
            n,
            extra,
            suite_intervals(verdicts_per_sample, clusters, extra),
        )
        return summary, records

    def _record(
        self, p: PlannedSuite, j: int, completions: list[dict], cluster: str | None
    ) -> SampleRecord:
        first, sample = completions[0], p.samples[j]
        return SampleRecord(
            p.suite.name,
            sample.id,
            p.prompts[j],
            first["response"],
            first["answer"],
            first["matched"],
            first["correct"],
            sample.gold,
            first["cached"],
            first.get("check"),
            completions if len(completions) > 1 else None,
            cluster,
        )

    def _verdicts(
        self, p: PlannedSuite, extractions: list, samples: list[Sample]
    ) -> list[tuple[bool, dict | None]]:
        """(correct, check details) per answer: `score_many` when the suite has it, else `score`."""
        score_many = getattr(p.suite, "score_many", None)
        if score_many is None:
            return [(bool(p.suite.score(e, s)), None) for e, s in zip(extractions, samples)]
        if self.progress is None:
            results = score_many(extractions, samples)
        else:
            task = self.progress.add_task(f"{p.suite.name} checks", total=len(samples))
            results = score_many(
                extractions, samples, on_done=lambda index, result: self._advance(task)
            )
        return [
            (bool(r), None) if isinstance(r, bool) else (bool(r.correct), r.to_dict())
            for r in results
        ]


def cluster_keys(suite: Suite, samples: list[Sample]) -> list[str] | None:
    """Each sample's cluster (the passage it shares with other questions), from the suite's
    optional `cluster_key(sample) -> str | None`; None when the suite has no such hook."""
    key = getattr(suite, "cluster_key", None)
    if key is None:
        return None
    return [key(sample) or sample.id for sample in samples]


def suite_intervals(
    verdicts_per_sample: list[list[bool]], clusters: list[str] | None, extra: dict
) -> dict:
    """stderr and ci95 for accuracy (clustered by passage, and by sample when it has several
    completions) and for each pass@k (bootstrap over problems)."""
    from ocx.harness.stats import accuracy_interval, bootstrap_ratio

    if not verdicts_per_sample:
        return {}
    groups = clusters or [str(j) for j in range(len(verdicts_per_sample))]
    values = [float(v) for verdicts in verdicts_per_sample for v in verdicts]
    answer_groups = [g for g, verdicts in zip(groups, verdicts_per_sample) for _ in verdicts]
    several = any(len(v) > 1 for v in verdicts_per_sample)
    intervals = accuracy_interval(values, answer_groups if clusters or several else None).as_dict()
    for name in extra:
        if name.startswith("pass@"):
            from ocx.benchmarks.humaneval_exec import pass_at_k

            k = int(name.removeprefix("pass@"))
            estimates = [pass_at_k(len(v), sum(v), k) for v in verdicts_per_sample]
            intervals.update(
                bootstrap_ratio([[e] for e in estimates], lo=0.0, hi=1.0).as_dict(f"{name}_")
            )
    return intervals


def make_progress(console=None, enabled: bool = True):
    """A rich Progress with one bar per suite (or a no-op context when disabled)."""
    if not enabled:
        return nullcontext(None)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
