"""Evaluation results on disk (`results.json` + `samples.jsonl`) and as a rich table.

`results.json` says what produced the numbers (model identity, template and data hashes, suite
versions, sampling settings, condition, matcher) next to the numbers themselves; its `summary`
maps each suite to accuracy (0-1), n and unmatched (and, with several completions per sample,
`completions` and any pass@k the suite reports). A judged suite (benchmarks/judged.py, e.g.
MT-Bench) writes its own entry; `average` is the mean over the accuracy suites only, never over
a judge's score. Each file is written to a temporary sibling and renamed, samples first: a
results.json on disk always belongs to a complete run.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from ocx import __version__
from ocx.harness.atomic import atomic_write_text
from ocx.harness.errors import InputError, InputProblem
from ocx.harness.run_records import EvalRun

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
FORMAT_VERSION = 1


def results_document(run: EvalRun, extra: dict) -> dict:
    """The results.json content: settings, hashes and scores."""
    summary = {name: s.scores() for name, s in run.summaries.items()}
    accuracies = [s["accuracy"] for s in averaged(summary).values()]
    return {
        "format": FORMAT_VERSION,
        "ocx_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **run.settings,
        **extra,
        "suites": {
            name: {
                "version": s.version,
                "source": s.source,
                "data_sha256": s.data_sha256,
                "sampling": s.sampling,
            }
            for name, s in run.summaries.items()
        },
        "summary": summary,
        "average": sum(accuracies) / len(accuracies) if accuracies else None,
        **average_interval(list(averaged(summary).values())),
        "requests": {"sent": run.sent, "cached": run.cached},
        "elapsed_s": round(run.elapsed_s, 3),
        "samples_file": SAMPLES_FILE,
    }


def averaged(summary: dict) -> dict:
    """The entries of `summary` (suite name -> scores) that an average is taken over: the
    accuracy suites. A judged suite's score (MT-Bench's 1-10) is reported on its own."""
    from ocx.benchmarks.judged import judged_suites_named

    judged = judged_suites_named(summary)
    return {name: scores for name, scores in summary.items() if name not in judged}


def average_interval(scores: list[dict]) -> dict:
    """stderr and ci95 of the mean over suites: the suites are independent samples, so the
    variance of their mean is the sum of their variances over k^2 (normal interval)."""
    from ocx.harness.stats import normal_interval

    errors = [s.get("stderr") for s in scores]
    if not scores or any(e is None for e in errors):
        return {"average_stderr": None, "average_ci95": None}
    average = sum(s["accuracy"] for s in scores) / len(scores)
    stderr = sum(e * e for e in errors) ** 0.5 / len(scores)
    return {"average_stderr": stderr, "average_ci95": list(normal_interval(average, stderr))}


def write_results(output: str | Path, run: EvalRun, extra: dict) -> Path:
    """Write samples.jsonl then results.json into `output`; returns the results.json path."""
    output = Path(output)
    lines = "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in run.records)
    atomic_write_text(output / SAMPLES_FILE, lines)
    document = results_document(run, extra)
    atomic_write_text(
        output / RESULTS_FILE, json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    )
    return output / RESULTS_FILE


def load_results(path: str | Path) -> dict:
    """A results.json (or the folder holding one), checked enough to report on."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise InputError(InputProblem(str(path), None, None, "no such results file"))
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(
            InputProblem(str(path), exc.lineno, None, f"invalid JSON: {exc.msg}")
        ) from None
    summary = document.get("summary") if isinstance(document, dict) else None
    if not isinstance(summary, dict):
        raise InputError(InputProblem(str(path), None, "summary", "missing or not an object"))
    problems = [
        InputProblem(str(path), None, f"summary.{name}.accuracy", "missing or not a number")
        for name, scores in summary.items()
        if not isinstance(scores, dict) or not isinstance(scores.get("accuracy"), (int, float))
    ]
    problems += _judged_problems(str(path), summary)
    if problems:
        raise InputError(problems)
    document["_path"] = str(path)
    return document


def _judged_problems(path: str, summary: dict) -> list[InputProblem]:
    """What each judged suite finds wrong with its entry (e.g. MT-Bench's radar categories)."""
    from ocx.benchmarks.judged import judged_suites_named

    judged = judged_suites_named(summary)
    return [
        p for name, suite in judged.items() for p in suite.results_problems(path, summary[name])
    ]


def plus_minus(value: float, stderr: float | None, scale: float = 100.0, digits: int = 2) -> str:
    """ "57.10 ± 1.23": the score with its 95% half-width (1.96 standard errors)."""
    from ocx.harness.stats import Z95

    text = f"{scale * value:.{digits}f}"
    return text if stderr is None else f"{text} ± {scale * Z95 * stderr:.{digits}f}"


def _pass_at(scores: dict) -> dict[str, float]:
    """pass@k, and a suite's base_/plus_ pass@k (HumanEval's EvalPlus summaries; its pass@k is
    plus_pass@k)."""
    found = {k: v for k, v in scores.items() if re.fullmatch(r"(base_|plus_)?pass@\d+", k)}
    return {k: v for k, v in found.items() if f"plus_{k}" not in found}


def scores_table(run: EvalRun, title: str | None = None):
    """A rich table: one row per accuracy suite with accuracy ± its 95% half-width, n and the
    unmatched rate (and pass@k when a suite has several completions per sample), then the
    average over those suites. Judged suites are left out: each prints its own table."""
    from rich.table import Table

    summaries = averaged(run.summaries)  # a judged suite prints its own table
    all_scores = {name: s.scores() for name, s in summaries.items()}
    pass_at = {name: _pass_at(scores) for name, scores in all_scores.items()}
    table = Table(
        title=title,
        title_justify="left",
        caption="± is the 95% interval's half-width (1.96 SE)",
        caption_justify="left",
    )
    columns = [("suite", "left"), ("accuracy", "right"), ("n", "right"), ("unmatched", "right")]
    if any(pass_at.values()):
        columns.append(("pass@k", "right"))
    # Log-likelihood scoring: acc is the accuracy column, lm-eval's acc_norm takes the place of
    # "unmatched" (nothing is generated, so nothing can go unmatched).
    norm = any("acc_norm" in scores for scores in all_scores.values())
    if norm:
        columns[2:4] = [("acc_norm", "right"), ("n", "right")]
    for column, justify in (*columns, ("version", "left")):
        table.add_column(column, justify=justify)
    for name, s in summaries.items():
        scores = all_scores[name]
        row = [
            name,
            plus_minus(s.accuracy, scores.get("stderr")),
            str(s.n),
            f"{s.unmatched} ({100 * s.unmatched_rate:.1f}%)",
        ]
        if norm:
            row[2:4] = [
                plus_minus(scores["acc_norm"], scores.get("acc_norm_stderr"))
                if "acc_norm" in scores
                else "",
                str(s.n),
            ]
        if len(columns) > 4:
            row.append(
                "  ".join(
                    f"{k} {plus_minus(v, scores.get(f'{k}_stderr'))}"
                    for k, v in pass_at[name].items()
                )
            )
        table.add_row(*row, s.version)
    if len(summaries) > 1:
        average = sum(s.accuracy for s in summaries.values()) / len(summaries)
        table.add_section()
        table.add_row("[bold]average", f"[bold]{100 * average:.2f}", *[""] * (len(columns) - 1))
    return table
