"""Paired comparison of two evaluation runs on the items both answered (`ocx report A B`).

Two runs of the same suite answer the same questions, so their difference is measured far more
precisely by pairing item with item than by comparing two independent intervals: most items are
right (or wrong) in both runs and carry no information about the difference. Per suite:

* 0/1 verdicts on independent items: McNemar's exact test (harness/stats.py), which looks only at
  the items the runs disagree on;
* clustered items (questions sharing a passage), several completions per item, MT-Bench
  ratings: a paired bootstrap over items (whole clusters when the suite records them).

Items are matched by their `id` in each run's samples.jsonl; items only one run has are left out
and counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ocx.harness.errors import InputError, InputProblem
from ocx.harness.stats import PairedTest, paired_bootstrap, paired_test


@dataclass(frozen=True)
class ItemScores:
    """One suite of one run: score per item id (0-1) and each item's cluster (or None)."""

    scores: dict[str, float]
    clusters: dict[str, str | None]


@dataclass(frozen=True)
class SuiteComparison:
    suite: str
    test: PairedTest | None
    """None when no item is shared."""
    only_a: int
    only_b: int


def _item_score(record: dict) -> float | None:
    """A record's score in [0, 1]: its verdict, the mean over its completions, or rating / 10."""
    if "rating" in record:  # an MT-Bench turn
        return None if record["rating"] is None else float(record["rating"]) / 10
    if record.get("completions"):
        verdicts = [bool(c.get("correct")) for c in record["completions"]]
        return sum(verdicts) / len(verdicts)
    return 1.0 if record.get("correct") else 0.0


def read_item_scores(samples_path: str | Path) -> dict[str, ItemScores]:
    """Per suite, each item's score from a samples.jsonl; MT-Bench turns are pooled per question
    (the unit the two turns share), unparseable judgments left out."""
    path = Path(samples_path)
    pooled: dict[str, dict[str, list[float]]] = {}
    clusters: dict[str, dict[str, str | None]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(
            InputProblem(str(path), None, None, "no samples file: the paired test needs it")
        ) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            suite, item = record["suite"], record["id"]
        except (ValueError, KeyError, TypeError):
            raise InputError(
                InputProblem(str(path), number, "suite/id", "not a sample record")
            ) from None
        if "question_id" in record:
            item = f"{suite}/{record['question_id']}"
        score = _item_score(record)
        pooled.setdefault(suite, {}).setdefault(item, [])
        clusters.setdefault(suite, {})[item] = record.get("cluster")
        if score is not None:
            pooled[suite][item].append(score)
    return {
        suite: ItemScores({i: sum(v) / len(v) for i, v in items.items() if v}, clusters[suite])
        for suite, items in pooled.items()
    }


def compare_suite(suite: str, a: ItemScores, b: ItemScores) -> SuiteComparison:
    shared = [item for item in a.scores if item in b.scores]
    only_a, only_b = len(a.scores) - len(shared), len(b.scores) - len(shared)
    if not shared:
        return SuiteComparison(suite, None, only_a, only_b)
    clusters = [a.clusters.get(i) or b.clusters.get(i) or i for i in shared]
    has_clusters = any(a.clusters.get(i) or b.clusters.get(i) for i in shared)
    test = paired_test(
        [a.scores[i] for i in shared],
        [b.scores[i] for i in shared],
        clusters if has_clusters else None,
    )
    return SuiteComparison(suite, test, only_a, only_b)


def compare_runs(a: dict[str, ItemScores], b: dict[str, ItemScores]) -> list[SuiteComparison]:
    """One comparison per suite both runs have, in run A's order."""
    return [compare_suite(suite, a[suite], b[suite]) for suite in a if suite in b]


def compare_average(
    a: dict[str, ItemScores], b: dict[str, ItemScores], suites: list[str]
) -> PairedTest | None:
    """The paired bootstrap of the difference in the mean over `suites` (each suite weighs the
    same, as in the reported average), resampling items within each suite."""
    strata = []
    for suite in suites:
        if suite not in a or suite not in b:
            return None
        shared = [i for i in a[suite].scores if i in b[suite].scores]
        if not shared:
            return None
        clusters = [a[suite].clusters.get(i) or i for i in shared]
        strata.append(
            ([a[suite].scores[i] for i in shared], [b[suite].scores[i] for i in shared], clusters)
        )
    return paired_bootstrap(strata) if strata else None


def samples_path(results_document: dict) -> Path:
    """Where a loaded results.json's samples.jsonl is."""
    return Path(results_document["_path"]).parent / results_document.get(
        "samples_file", "samples.jsonl"
    )
