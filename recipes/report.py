"""A recipe's report: one document (report.json) that the terminal table and report.html render.

Conventions, the same in the JSON, the table, the HTML and the console:
- Epochs are numbered as the checkpoint folders: epoch 0 is `train/epoch_0`, evaluated into
  `eval/epoch_0/condition_<i>/`.
- The average is per condition: the mean of that condition's suite accuracies, one column per
  condition. The best epoch is the one with the highest average under the first condition
  (ties go to the earlier epoch); epochs a paired bootstrap cannot tell apart from it are listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ocx.harness.atomic import atomic_write_text

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
FORMAT = 2
"""report.json format: 2 numbers epochs from 0 as the checkpoint folders (1 did from 1)."""


@dataclass
class EpochRow:
    epoch: int
    """The checkpoint folder's number: train/epoch_<epoch>."""
    loss: float | None
    """Mean training loss over the epoch's optimizer steps."""
    scores: dict[str, float] = field(default_factory=dict)
    """Accuracy (0-1) per "suite [condition]" column."""
    average: float | None = None
    """The first condition's average: the number the best epoch is chosen by."""
    val_loss: float | None = None
    """Validation loss at the end of the epoch (None without a validation set)."""
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """95% interval per "suite [condition]" column, where results.json has one."""
    averages: dict[str, float] = field(default_factory=dict)
    """Per condition: the mean over the suites evaluated under it."""
    average_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per condition: the 95% interval of that mean."""


def column(suite: str, condition: str) -> str:
    return f"{suite} [{condition_label(condition)}]"


def condition_label(condition: str) -> str:
    return condition or "no condition"


def eval_dir(output: Path, epoch: int, index: int) -> Path:
    return Path(output) / "eval" / f"epoch_{epoch}" / f"condition_{index}"


def checkpoint_name(epoch: int) -> str:
    return f"train/epoch_{epoch}"


# --- reading what a run left on disk ----------------------------------------------------------


def read_metrics(train_dir: Path) -> list[dict]:
    """Every line of train/metrics.jsonl (none when training has not written it yet)."""
    path = Path(train_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill: the steps before it still count
            continue
    return [r for r in records if isinstance(r, dict)]


def epoch_losses(metrics: list[dict], epoch: int) -> tuple[float | None, float | None]:
    """(mean training loss over the epoch's steps, validation loss at the epoch's end)."""
    losses = [
        m["loss"]
        for m in metrics
        if m.get("kind", "step") == "step"
        and m.get("epoch") == epoch
        and isinstance(m.get("loss"), (int, float))
    ]
    val = [
        m.get("val_loss")
        for m in metrics
        if m.get("epoch") == epoch
        and (m.get("kind") == "epoch" or (m.get("kind") == "val" and m.get("epoch_end")))
    ]
    val = [v for v in val if isinstance(v, (int, float))]
    return (sum(losses) / len(losses) if losses else None), (val[-1] if val else None)


def read_epoch_row(
    output: Path, conditions: list[str], epoch: int, metrics: list[dict]
) -> EpochRow | None:
    """The row of an epoch from its results.json files (None until every condition has one)."""
    from ocx.harness.errors import InputError
    from ocx.harness.results import load_results

    scores, intervals, averages, average_intervals = {}, {}, {}, {}
    for i, condition in enumerate(conditions):
        try:
            document = load_results(eval_dir(output, epoch, i))
        except InputError:
            return None
        summary = document["summary"]
        for suite, values in summary.items():
            scores[column(suite, condition)] = float(values["accuracy"])
            if _pair(values.get("ci95")):
                intervals[column(suite, condition)] = tuple(values["ci95"])
        if summary:
            averages[condition] = sum(float(v["accuracy"]) for v in summary.values()) / len(summary)
        if _pair(document.get("average_ci95")):
            average_intervals[condition] = tuple(document["average_ci95"])
    loss, val_loss = epoch_losses(metrics, epoch)
    return EpochRow(
        epoch,
        loss,
        scores,
        averages.get(conditions[0]),
        val_loss,
        intervals,
        averages,
        average_intervals,
    )


def _pair(value) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) for v in value)
    )


def recorded_rows(output: Path, conditions: list[str]) -> list[EpochRow]:
    """Every fully evaluated epoch of a recipe output folder, in order (for `ocx report RUN`)."""
    metrics = read_metrics(Path(output) / "train")
    numbers = sorted(
        int(p.name.removeprefix("epoch_"))
        for p in (Path(output) / "eval").glob("epoch_*")
        if p.name.removeprefix("epoch_").isdigit()
    )
    rows = [read_epoch_row(output, conditions, n, metrics) for n in numbers]
    return [r for r in rows if r is not None]


# --- choosing the best epoch ------------------------------------------------------------------


def best_epoch(rows: list[EpochRow]) -> EpochRow | None:
    scored = [r for r in rows if r.average is not None]
    return max(scored, key=lambda r: (r.average, -r.epoch)) if scored else None


def tied_with_best(
    output: Path, conditions: list[str], rows: list[EpochRow], best: EpochRow | None
) -> dict[int, float]:
    """Epochs whose first-condition average is not significantly below the best's: epoch -> p
    (paired bootstrap over the items both answered, each suite weighing the same; p >= 0.05)."""
    from ocx.harness.compare import compare_average, read_item_scores
    from ocx.harness.errors import InputError

    def items(row: EpochRow):
        return read_item_scores(eval_dir(output, row.epoch, 0) / "samples.jsonl")

    if best is None:
        return {}
    first = condition_label(conditions[0])
    suites = [k.rpartition(" [")[0] for k in best.scores if k.endswith(f"[{first}]")]
    tied = {}
    try:
        best_items = items(best)
        for row in rows:
            if row is not best and row.average is not None:
                test = compare_average(best_items, items(row), suites)
                if test is not None and not test.significant:
                    tied[row.epoch] = test.p_value
    except InputError:  # an evaluation without samples.jsonl: nothing to pair
        return {}
    return tied


# --- the document -----------------------------------------------------------------------------


def report_document(output: Path, recipe: dict, rows: list[EpochRow]) -> dict:
    """report.json: `recipe` holds name, file, model_type, conditions and suites."""
    conditions = recipe["conditions"]
    best = best_epoch(rows)
    tied = tied_with_best(output, conditions, rows, best)
    return {
        "format": FORMAT,
        **recipe,
        "epoch_numbering": "as the checkpoint folders: epoch N is train/epoch_N",
        "average_definition": "per condition: the mean of the condition's suite accuracies; "
        "the best epoch has the highest average under the first condition",
        "best_epoch": best.epoch if best else None,
        "best_checkpoint": checkpoint_name(best.epoch) if best else None,
        "indistinguishable_from_best": {str(k): v for k, v in tied.items()},
        "epochs": [
            {
                "epoch": r.epoch,
                "checkpoint": checkpoint_name(r.epoch),
                "train_loss": r.loss,
                "val_loss": r.val_loss,
                "scores": r.scores,
                "ci95": {k: list(v) for k, v in r.intervals.items()},
                "averages": {condition_label(c): v for c, v in r.averages.items()},
                "averages_ci95": {
                    condition_label(c): list(v) for c, v in r.average_intervals.items()
                },
                "average": r.average,
                "results": {
                    condition_label(c): str(eval_dir(Path("."), r.epoch, i) / "results.json")
                    for i, c in enumerate(conditions)
                },
            }
            for r in rows
        ],
    }


def write_recipe_report(
    output: Path, document: dict, html_path: Path | None = None
) -> tuple[Path, Path]:
    """report.json and report.html (loss curves from train/metrics.jsonl), each atomically."""
    from ocx.recipes.report_html import recipe_html

    output = Path(output)
    atomic_write_text(output / REPORT_JSON, json.dumps(document, indent=2) + "\n")
    html_path = html_path or output / REPORT_HTML
    atomic_write_text(
        html_path,
        recipe_html(
            document, read_metrics(output / "train"), links_from=html_path.parent, output=output
        ),
    )
    return output / REPORT_JSON, html_path


def load_recipe_info(output: Path) -> dict | None:
    """The recipe part of an output folder's report.json (None when it is not a recipe run)."""
    path = Path(output) / REPORT_JSON
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("conditions"), list)
        or "recipe" not in document
    ):
        return None
    return {k: document.get(k) for k in ("recipe", "file", "model_type", "conditions", "suites")}


# --- the terminal table -----------------------------------------------------------------------


def score_columns(document: dict) -> list[tuple[str, str | None]]:
    """(header, score key) per column: each condition's suites, then that condition's average
    (key None). The table and the HTML use this one order."""
    keys = list(dict.fromkeys(k for e in document["epochs"] for k in e["scores"]))
    out = []
    for condition in document["conditions"]:
        label = condition_label(condition)
        out += [(k, k) for k in keys if k.endswith(f"[{label}]")]
        out.append((f"average [{label}]", None))
    return out


def cell_value(
    entry: dict, header: str, key: str | None, condition_of: dict[str, str]
) -> float | None:
    if key is not None:
        return entry["scores"].get(key)
    return entry["averages"].get(condition_of[header])


def average_headers(document: dict) -> dict[str, str]:
    return {f"average [{condition_label(c)}]": condition_label(c) for c in document["conditions"]}


def recipe_table(document: dict):
    """The per-epoch table: losses, every score, each condition's average; the best epoch marked."""
    from rich.markup import escape
    from rich.table import Table

    columns, of = score_columns(document), average_headers(document)
    best, tied = document["best_epoch"], document["indistinguishable_from_best"]
    has_val = any(e.get("val_loss") is not None for e in document["epochs"])
    first = escape(f"[{condition_label(document['conditions'][0])}]")
    table = Table(
        title=f"{escape(str(document['recipe']))}: accuracy (%) after each epoch",
        title_justify="left",
        caption="epoch N is the checkpoint train/epoch_N; average \\[c]: mean over the suites "
        f"under condition c; best: highest average {first}; ≈: not significantly below the best "
        "(paired bootstrap, p >= 0.05)",
        caption_justify="left",
    )
    table.add_column("epoch", justify="right", no_wrap=True)
    table.add_column("train\nloss", justify="right", no_wrap=True)
    if has_val:
        table.add_column("val\nloss", justify="right", no_wrap=True)
    for header, key in columns:  # "suite [condition]" on two lines, to keep the table narrow
        name, _, condition = header.rpartition(" [")
        table.add_column(
            escape(f"{name}\n[{condition}"),
            justify="right",
            no_wrap=True,
            style=None if key else "bold",
        )
    table.add_column("")
    for e in document["epochs"]:
        losses = [_loss(e.get("train_loss"))] + ([_loss(e.get("val_loss"))] if has_val else [])
        values = [cell_value(e, h, k, of) for h, k in columns]
        mark = (
            "best"
            if e["epoch"] == best
            else (f"≈ best (p={tied[str(e['epoch'])]:.2f})" if str(e["epoch"]) in tied else "")
        )
        table.add_row(
            str(e["epoch"]),
            *losses,
            *["-" if v is None else f"{100 * v:.1f}" for v in values],
            mark,
            style="bold green" if e["epoch"] == best else None,
        )
    return table


def _loss(value) -> str:
    return "-" if value is None else f"{value:.4f}"
