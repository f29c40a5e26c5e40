"""report.html of a recipe run: the per-epoch table, loss curves and one score chart per suite.

Static and self-contained (inline SVG, no JavaScript, no network): see harness/report_charts.py.
Every number comes from the report document (report.json), so the page, the JSON and the
terminal table agree; the loss curves come from train/metrics.jsonl.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from ocx.harness.report_charts import STYLE, Series, line_chart
from ocx.recipes.report import average_headers, cell_value, condition_label, score_columns


def _esc(value) -> str:
    return html.escape(str(value))


def _percent(value: float | None, interval=None) -> str:
    if value is None:
        return "–"
    text = f"{100 * value:.1f}"
    if interval:
        text += f' <span class="pm">[{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]</span>'
    return text


def _table(document: dict, link) -> str:
    columns, of = score_columns(document), average_headers(document)
    best, tied = document["best_epoch"], document["indistinguishable_from_best"]
    has_val = any(e.get("val_loss") is not None for e in document["epochs"])
    heads = (
        ["epoch", "checkpoint", "train loss"]
        + (["val loss"] if has_val else [])
        + [h for h, _ in columns]
    )
    rows = []
    for e in document["epochs"]:
        cells = [
            _esc(e["epoch"]),
            f"<code>{_esc(e['checkpoint'])}</code>",
            _loss(e.get("train_loss")),
        ]
        cells += [_loss(e.get("val_loss"))] if has_val else []
        for header, key in columns:
            interval = e["ci95"].get(key) if key else e.get("averages_ci95", {}).get(of[header])
            cells.append(_percent(cell_value(e, header, key, of), interval))
        mark = (
            '<span class="badge">best</span>'
            if e["epoch"] == best
            else (f"≈ best (p={tied[str(e['epoch'])]:.2f})" if str(e["epoch"]) in tied else "")
        )
        links = " ".join(
            f'<a href="{_esc(link(path))}">{_esc(c)}</a>' for c, path in e["results"].items()
        )
        row_class = ' class="best"' if e["epoch"] == best else ""
        rows.append(
            f"<tr{row_class}>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + f"<td>{mark}</td><td>{links}</td></tr>"
        )
    head = "".join(f"<th>{_esc(h)}</th>" for h in heads) + "<th></th><th>results</th>"
    return f'<div class="wide"><table>\n<tr>{head}</tr>\n' + "\n".join(rows) + "\n</table></div>"


def _loss(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _loss_chart(metrics: list[dict]) -> str:
    steps = [
        m
        for m in metrics
        if m.get("kind", "step") == "step" and isinstance(m.get("step"), (int, float))
    ]
    vals = [
        m for m in metrics if m.get("kind") == "val" and isinstance(m.get("step"), (int, float))
    ]
    series = [Series("train loss", [(m["step"], m.get("loss")) for m in steps], markers=False)]
    if vals:
        series.append(
            Series("validation loss", [(m["step"], m.get("val_loss")) for m in vals], dashed=True)
        )
    ends = [
        (m["step"], f"end of epoch {m.get('epoch')} (train/epoch_{m.get('epoch')})")
        for m in metrics
        if m.get("kind") == "epoch" and isinstance(m.get("step"), (int, float))
    ]
    return line_chart(
        "loss",
        series,
        x_label="optimizer step (dotted lines: epoch ends)",
        y_label="loss",
        x_lines=ends,
    )


def _score_charts(document: dict) -> list[str]:
    epochs = document["epochs"]
    xs = [e["epoch"] for e in epochs]
    names = {e["epoch"]: str(e["epoch"]) for e in epochs}
    best = document["best_epoch"]
    marker = (best, f"best: epoch {best}") if best is not None else None
    # Every score chart: accuracy in percent over the checkpoint epochs, the best one marked.
    axes = dict(
        x_label="epoch (checkpoint train/epoch_N)",
        y_label="accuracy (%)",
        percent=True,
        x_ticks=xs,
        x_names=names,
        y_range=(0, 100),
        marker=marker,
    )
    suites = list(dict.fromkeys(k.rpartition(" [")[0] for e in epochs for k in e["scores"]))
    charts = []
    labels = [condition_label(c) for c in document["conditions"]]
    average = [
        Series(
            c,
            [(e["epoch"], e["averages"].get(c)) for e in epochs],
            [
                (e["epoch"], *e["averages_ci95"][c])
                for e in epochs
                if c in e.get("averages_ci95", {})
            ],
        )
        for c in labels
    ]
    charts.append(line_chart("average over suites, per condition", average, **axes))
    for suite in suites:
        series = []
        for c in labels:
            key = f"{suite} [{c}]"
            series.append(
                Series(
                    c,
                    [(e["epoch"], e["scores"].get(key)) for e in epochs],
                    [(e["epoch"], *e["ci95"][key]) for e in epochs if key in e["ci95"]],
                )
            )
        title = f"{suite}: accuracy per condition (band: 95% interval)"
        charts.append(line_chart(title, series, **axes))
    return charts


def _summary(document: dict) -> str:
    best = document["best_epoch"]
    if best is None:
        return "<p>No epoch evaluated yet.</p>"
    entry = next(e for e in document["epochs"] if e["epoch"] == best)
    first = condition_label(document["conditions"][0])
    text = (
        f"<p><b>Best epoch: {best}</b> (checkpoint <code>{_esc(entry['checkpoint'])}</code>), "
        f"average {100 * entry['averages'][first]:.1f}% under condition {_esc(first)}."
    )
    tied = document["indistinguishable_from_best"]
    if tied:
        text += (
            " Statistically indistinguishable from it (paired bootstrap, p &ge; 0.05): epoch "
            + ", ".join(f"{_esc(e)} (p={p:.2f})" for e, p in tied.items())
            + "."
        )
    return text + "</p>"


def recipe_html(document: dict, metrics: list[dict], links_from: Path, output: Path) -> str:
    """The page; result links are relative to `links_from` (the page's folder)."""

    def link(path: str) -> str:
        return os.path.relpath(Path(output) / path, links_from)

    title = f"ocx recipe {document['recipe']}"
    conditions = ", ".join(condition_label(c) for c in document["conditions"])
    about = (
        f"model type {_esc(document.get('model_type'))}; conditions {_esc(conditions)} "
        f"(the first picks the best epoch); recipe file <code>{_esc(document.get('file'))}</code>"
    )
    charts = [_loss_chart(metrics), *_score_charts(document)]
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n<h1>{_esc(title)}</h1>\n"
        f'<p class="muted">{about}</p>\n'
        + _summary(document)
        + '\n<p class="muted">Accuracy in percent, [95% interval]. Epoch N is the checkpoint '
        "<code>train/epoch_N</code>. <i>average [c]</i> is the mean over the suites under "
        "condition c.</p>\n"
        + _table(document, link)
        + '\n<div class="charts">\n'
        + "\n".join(f"<div>{c}</div>" for c in charts)
        + "\n</div>\n</body></html>\n"
    )
