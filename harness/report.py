"""Compare evaluation runs: a rich table with an average column, and a self-contained HTML report.

The HTML has one inline SVG bar chart per accuracy suite (one bar per run, its 95% interval as a
whisker) plus one for the average, and a section per judged suite (benchmarks/judged.py; for
MT-Bench, its 1-10 scores and a radar chart): no JavaScript, no external files, no network, so
it opens anywhere and can be mailed around. A run's average is the mean over the accuracy suites
it has, the same number in the table, the HTML and results.json; a judged score is never part of
it. Each run is one condition, so it is a per-condition average.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from ocx.harness.errors import InputError
from ocx.harness.report_charts import STYLE
from ocx.harness.results import averaged, load_results


@dataclass(frozen=True)
class RunColumn:
    """One run in the comparison: its label and accuracy (0-1) per accuracy suite."""

    label: str
    path: str
    scores: dict[str, float]
    unmatched: dict[str, float]
    document: dict = field(default_factory=dict, repr=False, compare=False)
    """The whole results.json, for charts that need more than accuracies (the MT-Bench radar)."""
    stderr: dict[str, float | None] = field(default_factory=dict)
    """Standard error per suite (results from before ocx recorded them have none)."""
    judged: dict[str, dict] = field(default_factory=dict)
    """Each judged suite's results.json entry (its own scale; not in `scores` or the average)."""

    def average(self, suites: list[str]) -> float | None:
        values = [self.scores[s] for s in suites if s in self.scores]
        return sum(values) / len(values) if values else None

    def interval(self, suite: str) -> tuple[float, float] | None:
        """The suite's 95% interval from results.json (None for results without one)."""
        return _pair(self.document.get("summary", {}).get(suite, {}).get("ci95"))

    def average_interval(self, suites: list[str]) -> tuple[float, float] | None:
        """results.json's interval of the average, when the run's average is over these suites
        (and is the average it recorded: older files averaged a judge's score in too)."""
        recorded, average = self.document.get("average"), self.average(suites)
        if isinstance(recorded, (int, float)) and average is not None:
            if abs(recorded - average) > 1e-9:
                return None
        return _pair(self.document.get("average_ci95")) if set(self.scores) == set(suites) else None


def _pair(value) -> tuple[float, float] | None:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) for v in value)
    )
    return tuple(value) if ok else None


def load_runs(paths: list[str | Path]) -> list[RunColumn]:
    """Read results files and label each run (model name, plus the folder where names repeat)."""
    documents, problems = [], []
    for path in paths:  # check every file before reporting, so all problems show at once
        try:
            documents.append(load_results(path))
        except InputError as exc:
            problems += exc.problems
    if problems:
        raise InputError(problems)
    names = [d.get("model_name") or Path(d["_path"]).parent.name for d in documents]
    runs = []
    for name, document in zip(names, documents):
        label = (
            name if names.count(name) == 1 else f"{name} ({Path(document['_path']).parent.name})"
        )
        summary = averaged(document["summary"])
        runs.append(
            RunColumn(
                label,
                document["_path"],
                {s: float(v["accuracy"]) for s, v in summary.items()},
                {s: float(v.get("unmatched_rate", 0.0)) for s, v in summary.items()},
                document,
                {s: v.get("stderr") for s, v in summary.items()},
                {s: v for s, v in document["summary"].items() if s not in summary},
            )
        )
    return runs


def suite_order(runs: list[RunColumn]) -> list[str]:
    order: list[str] = []
    for run in runs:
        order += [s for s in run.scores if s not in order]
    return order


def comparison_table(runs: list[RunColumn]):
    """Rows are runs, columns are accuracy suites then the average (in percent, ± the 95%
    half-width); below it, any judged suites' scores on their own scale."""
    from rich.table import Table

    from ocx.harness.results import plus_minus

    suites = suite_order(runs)
    table = Table(title="accuracy (%)", title_justify="left")
    table.add_column("run")
    for suite in suites:
        table.add_column(suite, justify="right")
    table.add_column("average", justify="right", style="bold")
    best = {s: max(r.scores.get(s, -1) for r in runs) for s in suites}
    for run in runs:
        cells = []
        for suite in suites:
            value = run.scores.get(suite)
            text = "–" if value is None else plus_minus(value, run.stderr.get(suite))
            cells.append(
                f"[green]{text}"
                if value is not None and len(runs) > 1 and value == best[suite]
                else text
            )
        average = run.average(suites)
        table.add_row(run.label, *cells, "–" if average is None else f"{100 * average:.2f}")
    judged = _judged_table(runs)
    if judged is None:
        return table
    from rich.console import Group

    return Group(table, judged)


def _judged(runs: list[RunColumn]) -> dict:
    """The judged suites any run has, by name, in first-seen order."""
    from ocx.benchmarks.judged import judged_suites_named

    return judged_suites_named(name for run in runs for name in run.judged)


def _judged_table(runs: list[RunColumn]):
    """One column per judged suite (its title says the scale), one row per run; None if none."""
    from rich.table import Table

    judged = _judged(runs)
    if not judged:
        return None
    table = Table(title="judged (not averaged)", title_justify="left")
    table.add_column("run")
    for suite in judged.values():
        table.add_column(suite.title, justify="right")
    for run in runs:
        cells = [
            suite.headline(run.judged[name]) if name in run.judged else "–"
            for name, suite in judged.items()
        ]
        table.add_row(run.label, *cells)
    return table


def paired_comparisons(runs: list[RunColumn]) -> list[tuple[RunColumn, list, object]]:
    """Each run after the first against the first, on shared items: (run, per-suite comparisons,
    average comparison); (run, None, None) when either run has no readable samples.jsonl."""
    from ocx.harness.compare import compare_average, compare_runs, read_item_scores, samples_path

    def items(run: RunColumn):
        try:
            return read_item_scores(samples_path(run.document))
        except InputError:
            return None

    base = items(runs[0])
    out = []
    for run in runs[1:]:
        other = items(run) if base is not None else None
        if other is None:
            out.append((run, None, None))
            continue
        suites = [s for s in suite_order([runs[0], run]) if s in runs[0].scores and s in run.scores]
        out.append((run, compare_runs(base, other), compare_average(base, other, suites)))
    return out


def paired_table(runs: list[RunColumn]):
    """Every later run against the first: difference in points, its 95% interval, p, and a mark
    for significant differences (p < 0.05), per suite and for the average."""
    from rich.table import Table

    table = Table(
        title=f"paired tests against {runs[0].label} (shared items)",
        title_justify="left",
        caption="* p < 0.05: the difference is unlikely to be noise. McNemar exact for 0/1 "
        "verdicts, else paired bootstrap (clusters resampled whole)",
        caption_justify="left",
    )
    for column, justify in (
        ("run", "left"),
        ("suite", "left"),
        ("Δ points", "right"),
        ("95% interval", "right"),
        ("p", "right"),
        ("test", "left"),
        ("items", "right"),
    ):
        table.add_column(column, justify=justify)
    for run, comparisons, average in paired_comparisons(runs):
        if comparisons is None:
            table.add_row(run.label, "–", "–", "–", "–", "no samples.jsonl to pair", "–")
            continue
        rows = [(c.suite, c.test, c.only_a + c.only_b) for c in comparisons]
        rows.append(("average", average, 0))
        for suite, test, unshared in rows:
            if test is None:
                table.add_row(run.label, suite, "–", "–", "–", "no shared items", "0")
                continue
            mark = " *" if test.significant else ""
            interval = (
                f"[{100 * test.ci95[0]:+.2f}, {100 * test.ci95[1]:+.2f}]" if test.ci95 else "–"
            )
            items = f"{test.n}" + (f" (+{unshared} unshared)" if unshared else "")
            style = "bold" if test.significant else None
            table.add_row(
                run.label,
                suite,
                f"{100 * test.difference:+.2f}{mark}",
                interval,
                f"{test.p_value:.3g}",
                test.test,
                items,
                style=style,
            )
        table.add_section()
    return table


def _judged_sections(runs: list[RunColumn]) -> str:
    """Each judged suite's own HTML section (MT-Bench: scores and radar chart)."""
    documents = [(r.label, r.document) for r in runs]
    return "".join(suite.report_html(documents) for suite in _judged(runs).values())


def html_report(runs: list[RunColumn], title: str = "ocx evaluation report") -> str:
    from ocx.harness.report_charts import bar_chart
    from ocx.harness.results import plus_minus

    suites = suite_order(runs)
    head = "".join(f"<th>{html.escape(s)}</th>" for s in [*suites, "average"])
    rows = []
    for run in runs:
        cells = [
            "–"
            if s not in run.scores
            else html.escape(plus_minus(run.scores[s], run.stderr.get(s)))
            for s in suites
        ]
        average = run.average(suites)
        cells.append("–" if average is None else f"{100 * average:.2f}")
        rows.append(
            f"<tr><td>{html.escape(run.label)}</td>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    labels = [r.label for r in runs]
    charts = [
        bar_chart(
            "average",
            labels,
            [r.average(suites) for r in runs],
            [r.average_interval(suites) for r in runs],
        )
    ]
    charts += [
        bar_chart(s, labels, [r.scores.get(s) for r in runs], [r.interval(s) for r in runs])
        for s in suites
    ]
    judged = _judged_sections(runs)
    sources = "".join(
        f"<li>{html.escape(r.label)}: <code>{html.escape(r.path)}</code></li>" for r in runs
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        '<p class="muted">Accuracy in percent, ± the 95% interval\'s half-width (bars: the '
        "interval as a whisker); the average is the mean over the accuracy suites each run "
        "has.</p>\n"
        f"<table><tr><th>run</th>{head}</tr>\n" + "\n".join(rows) + "</table>\n"
        '<div class="charts">\n'
        + "\n".join(f"<div>{c}</div>" for c in charts)
        + "\n</div>\n"
        + judged
        + f"<h2>Results files</h2><ul>{sources}</ul>\n</body></html>\n"
    )
