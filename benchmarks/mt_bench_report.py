"""MT-Bench results for people: a rich table (category x turn), its headline score, and its
section of ``ocx report``'s HTML (scores and an inline SVG radar chart)."""

from __future__ import annotations

import html
import math

from ocx.harness.errors import InputProblem
from ocx.harness.stats import Z95

_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948")


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def table_rows(scores: dict) -> list[list[str]]:
    """The table's rows as text: category, turn 1, turn 2, average; then "overall".

    ``scores`` is ``results.json``'s ``summary["mt_bench"]`` (``MTBenchSummary.scores()``).
    """
    rows = [
        [c, _fmt(v["turn1"]), _fmt(v["turn2"]), _fmt(v["average"])]
        for c, v in scores["categories"].items()
    ]
    rows.append(["overall", _fmt(scores["turn1"]), _fmt(scores["turn2"]), _fmt(scores["score"])])
    return rows


def mt_bench_table(scores: dict, title: str | None = None):
    """A rich table of MT-Bench scores (1-10); the caption counts unparseable judgments."""
    from rich.table import Table

    caption = (
        f"{scores['n']} judged turns, {scores['unmatched']} unparseable judgments (not scored)"
    )
    if scores.get("score_ci95"):
        low, high = scores["score_ci95"]
        caption += (
            f"; overall {_fmt(scores['score'])} ± {Z95 * scores['score_stderr']:.2f}, 95% interval "
            f"[{low:.2f}, {high:.2f}] (bootstrap over {scores.get('questions', '?')} questions)"
        )
    table = Table(
        title=title or "MT-Bench (1-10)",
        title_justify="left",
        caption=caption,
        caption_justify="left",
    )
    for column, justify in (
        ("category", "left"),
        ("turn 1", "right"),
        ("turn 2", "right"),
        ("average", "right"),
    ):
        table.add_column(column, justify=justify)
    rows = table_rows(scores)
    for row in rows[:-1]:
        table.add_row(*row)
    table.add_section()
    table.add_row(*[f"[bold]{cell}" for cell in rows[-1]])
    return table


def radar_svg(series: list[tuple[str, dict[str, float | None]]], size: int = 360) -> str:
    """An SVG radar chart, 0-10 on every axis: one polygon per (label, {category: score}).

    Axes are the categories of the first series, in its order (MT-Bench's usual order); a
    missing score is drawn at 0 and shown as "–" in the tooltip.
    """
    if not series:
        return ""
    categories = list(series[0][1])
    center, radius = size / 2, size / 2 - 60
    legend = 18 * len(series) + 10

    def point(i: int, value: float) -> tuple[float, float]:
        angle = -math.pi / 2 + 2 * math.pi * i / len(categories)
        return center + radius * value / 10 * math.cos(
            angle
        ), center + radius * value / 10 * math.sin(angle)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + legend}" '
        f'role="img" aria-label="MT-Bench radar chart">'
    ]
    for ring in (2, 4, 6, 8, 10):
        ring_points = " ".join(
            f"{x:.1f},{y:.1f}" for x, y in (point(i, ring) for i in range(len(categories)))
        )
        parts.append(f'<polygon points="{ring_points}" fill="none" stroke="#ddd"/>')
    for i, category in enumerate(categories):
        x, y = point(i, 10)
        lx, ly = point(i, 11.5)
        parts.append(f'<line x1="{center}" y1="{center}" x2="{x:.1f}" y2="{y:.1f}" stroke="#ccc"/>')
        parts.append(
            f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle">{html.escape(category)}</text>'
        )
    for k, (label, scores) in enumerate(series):
        color = _PALETTE[k % len(_PALETTE)]
        pts = " ".join(
            f"{x:.1f},{y:.1f}"
            for x, y in (point(i, scores.get(c) or 0.0) for i, c in enumerate(categories))
        )
        tip = ", ".join(f"{c} {_fmt(scores.get(c))}" for c in categories)
        parts.append(
            f'<polygon points="{pts}" fill="{color}" fill-opacity="0.15" stroke="{color}" '
            'stroke-width="2">'
            f"<title>{html.escape(label)}: {html.escape(tip)}</title></polygon>"
        )
        parts.append(
            f'<rect x="10" y="{size + 18 * k}" width="12" height="12" fill="{color}"/>'
            f'<text x="28" y="{size + 18 * k + 11}">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def radar_from_results(documents: list[tuple[str, dict]]) -> str:
    """The radar for ``ocx report``: one polygon (category averages) per document with MT-Bench."""
    series = [
        (label, {c: v["average"] for c, v in doc["summary"]["mt_bench"]["categories"].items()})
        for label, doc in documents
        if "categories" in doc.get("summary", {}).get("mt_bench", {})
    ]
    return radar_svg(series)


def headline(scores: dict) -> str:
    """The overall score (1-10) with its 95% half-width when recorded, e.g. "7.12 ± 0.31"."""
    score, stderr = scores.get("score"), scores.get("score_stderr")
    if not isinstance(score, (int, float)):
        return "–"
    return f"{score:.2f}" if stderr is None else f"{score:.2f} ± {Z95 * stderr:.2f}"


def results_problems(path: str, scores: dict) -> list[InputProblem]:
    """MT-Bench category averages feed the report's radar chart: each must be a number."""
    if not isinstance(scores, dict) or "categories" not in scores:
        return []
    categories = scores["categories"]
    if not isinstance(categories, dict):
        return [InputProblem(path, None, "summary.mt_bench.categories", "not an object")]
    return [
        InputProblem(
            path, None, f"summary.mt_bench.categories.{name}.average", "missing or not a number"
        )
        for name, value in categories.items()
        if not isinstance(value, dict) or not isinstance(value.get("average"), (int, float))
    ]


def report_section(documents: list[tuple[str, dict]]) -> str:
    """``ocx report``'s MT-Bench section: each run's score and the radar chart ("" when no run
    has MT-Bench)."""
    runs = [(label, doc["summary"]["mt_bench"]) for label, doc in documents if _has(doc)]
    if not runs:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(headline(scores))}</td></tr>"
        for label, scores in runs
    )
    svg = radar_from_results(documents)
    return (
        '<h2>MT-Bench</h2>\n<p class="muted">Judged 1-10, ± the 95% interval\'s half-width; '
        "not part of the accuracy average. The radar shows each category's average over both "
        "turns.</p>\n"
        f"<table><tr><th>run</th><th>score (1-10)</th></tr>{rows}</table>\n"
        + (f"<div>{svg}</div>\n" if svg else "")
    )


def _has(document: dict) -> bool:
    summary = document.get("summary")
    return isinstance(summary, dict) and isinstance(summary.get("mt_bench"), dict)
