"""What an evaluation run produces: one record per sample (a line of samples.jsonl), one summary
per suite (its entry in results.json) and the run that holds them (harness/results.py writes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    """The suite's own scores over several completions per sample, e.g. {"pass@1": ...}."""
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
