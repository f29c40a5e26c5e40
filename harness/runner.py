"""The evaluation runner: suites in, per-sample records and per-suite scores out.

For every sample of every suite: the suite's messages, the condition and the sampling settings
make a request whose cache key says everything that determines the answer. Requests go through
the cached request loop every driver shares (harness/cached_requests.py): cached answers are
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

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext

from ocx.benchmarks.base import DataSource, Sample, Suite, SuiteHooks
from ocx.harness.backends import Backend, Request
from ocx.harness.cache import ResponseCache
from ocx.harness.cached_requests import (  # noqa: F401 (RequestsFailedError: re-exported)
    CachedRequests,
    RequestsFailedError,
)
from ocx.harness.idle_work import IdleWork
from ocx.harness.plan import (  # noqa: F401 (plan_suites, completion_sampling: re-exported)
    PlanBuilder,
    PlannedSuite,
    completion_sampling,
    load_suites,
    plan_suites,
)
from ocx.harness.run_records import EvalRun, SampleRecord, SuiteSummary


class Runner:
    """Runs suites against a backend with a response cache; `progress`: a rich Progress or None."""

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
        idle = IdleWork(planned, self.matcher)
        loop = CachedRequests(self.cache, self.progress, idle.on_answer)
        sent = self._generate(builders, loop)  # every answer received is on disk after this
        summaries, records = {}, []
        for index, p in enumerate(planned):
            summary, suite_records = self._score(index, p, loop.answers, loop.cached, idle)
            summaries[p.suite.name] = summary
            records += suite_records
        settings = {"model": identity, "condition": self.condition, "matcher": self.matcher}
        if self.completions > 1:
            settings["samples"] = self.completions
        return EvalRun(
            summaries,
            records,
            sent=sent,
            cached=len(loop.cached),
            elapsed_s=time.perf_counter() - start,
            settings=settings,
        )

    def _generate(self, builders: list[PlanBuilder], loop: CachedRequests) -> int:
        """Plan every sample and ask for every answer through the cached request loop
        `loop` (harness/cached_requests.py); returns how many requests were sent. Each answer
        goes to the loop's `on_answer` as it arrives (the runner's idle-time extraction).

        A backend that pulls its requests one at a time (`pulls_requests`, the HTTP client) gets
        them lazily: samples are planned a span at a time as it asks, so the first requests are
        in flight while the rest are still being keyed. Others get the whole list."""
        planned = [b.planned for b in builders]
        tasks = self._progress_tasks(planned)
        rows = self._request_rows(planned)
        pulls = getattr(self.backend, "pulls_requests", False)
        # The prompt's JSON, made for its cache key, rides along for a backend that sends it as is.
        with_json = getattr(self.backend, "takes_messages_json", False)

        def spans(builder: PlanBuilder) -> Iterator[range]:
            # Small spans keep the event loop free: while a span is planned no answer is read and
            # no connection gets its next request (spans of 64 instead of 16 stalled all 64
            # connections every 64 requests: 1.47x instead of 1.35x ideal on the benchmark).
            size = 16 if pulls else len(builder.planned.samples)
            while not builder.done:
                yield builder.extend(size)

        def pending() -> Iterator[Request]:
            for suite_index, (builder, task) in enumerate(zip(builders, tasks)):
                p = builder.planned
                for span in spans(builder):
                    loop.lookup(k for j in span for k in p.keys[j])
                    for j in span:
                        for completion, key in enumerate(p.keys[j]):
                            owner = (suite_index, j, completion)
                            index = loop.add(key, task, owner, rows[suite_index, completion])
                            if index is not None:
                                yield Request(
                                    index,
                                    tuple(p.prompts[j]),
                                    self.condition,
                                    p.samplings[completion],
                                    builder.prompt_json[j] if with_json else None,
                                )

        sent = loop.send(self.backend.generate, pending(), pulls=pulls)
        for builder in builders:  # every sample planned (keys, data hash) even if none was sent
            builder.extend(len(builder.planned.samples))
        return sent

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
        hooks = SuiteHooks.of(p.suite)
        verdicts_per_sample = [[c["correct"] for c in completions] for completions in per_sample]
        if n > 1 and hooks.scores_for_completions is not None:
            extra = hooks.scores_for_completions(verdicts_per_sample)
        if hooks.scores_for_checks is not None:  # e.g. IFBench's strict/loose levels
            extra = {**extra, **hooks.scores_for_checks([c.get("check") for c in scored])}
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
        score_many = SuiteHooks.of(p.suite).score_many
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
    key = SuiteHooks.of(suite).cluster_key
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
