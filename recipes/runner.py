"""`ocx recipe run`: prepare data, tokenize (cached by content), train, evaluate every epoch, report.

Every stage writes its output atomically and is skipped when its output already exists, so a
killed run started again resumes where it stopped: tokenized data is reused by content hash,
training continues from its last resumable state, and evaluations already done (or answered
requests, through the response cache) are not repeated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ocx.harness.atomic import atomic_write_text
from ocx.recipes.schema import Recipe


@dataclass
class EpochRow:
    epoch: int
    loss: float | None
    scores: dict[str, float] = field(default_factory=dict)
    """Accuracy (0-1) per "suite [condition]" column."""
    average: float | None = None
    """Mean over the suites under the recipe's first condition: the number the best epoch is chosen by."""


def column(suite: str, condition: str) -> str:
    return f"{suite} [{condition or 'no condition'}]"


def _console():
    from rich.console import Console

    return Console(highlight=False)


# --- data -------------------------------------------------------------------------------------

def _source_rows(recipe: Recipe) -> list[dict]:
    """All conversations of the recipe, with each source's condition and assistant weight applied."""
    from ocx.harness.conversation import read_conversations
    from ocx.recipes.synthetic import arithmetic_conversations

    rows = []
    for spec in recipe.data:
        if spec.generator:
            rows += arithmetic_conversations(count=spec.count, quality=spec.quality, condition=spec.condition,
                                             weight=spec.weight, seed=spec.seed)
            continue
        for conv in read_conversations(spec.path):
            rows.append({"condition": spec.condition, "system": conv.system, "items": [
                {"role": m.role, "content": m.content, "weight": spec.weight if m.role == "assistant" else 0.0}
                for m in conv.items]})
    return rows


def prepare_data(recipe: Recipe, tokenizer: Path, console) -> Path:
    """Merged JSONL, then `ocx data tokenize`, reused when the same content was tokenized before."""
    from ocx.harness.data.writer import TokenizeJob, tokenize_files
    from ocx.harness.templates import get_template
    from ocx.harness.tokenizers import load_tokenizer

    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in _source_rows(recipe))
    template = get_template(recipe.model_type)
    tokenizer_sha256 = load_tokenizer(tokenizer, template.added_tokens).sha256
    key = hashlib.sha256("\0".join([text, template.sha256, tokenizer_sha256]).encode()).hexdigest()[:16]
    data_dir = recipe.output / "data"
    tokenized = data_dir / f"tokenized-{key}"
    if (tokenized / "manifest.json").is_file():
        console.print(f"data: reusing {tokenized}")
        return tokenized
    merged = data_dir / f"conversations-{key}.jsonl"
    atomic_write_text(merged, text)
    manifest = tokenize_files(TokenizeJob(model_type=recipe.model_type, tokenizer=str(tokenizer), inputs=[merged],
                                          out=tokenized, workers=2))
    console.print(f"data: {manifest['counts']['conversations']} conversations tokenized into {tokenized}")
    return tokenized


# --- model ------------------------------------------------------------------------------------

def base_model(recipe: Recipe) -> tuple[str, Path]:
    """(model to train from, tokenizer to tokenize with)."""
    if recipe.base_model == "tiny":
        from ocx.adapters.hf.tiny import build_tiny_checkpoint

        tokenizer = Path(recipe.tokenizer)  # resolved against the recipe's folder by the schema
        folder = recipe.output / "base-model"
        if not (folder / "config.json").is_file():
            build_tiny_checkpoint(folder, tokenizer, recipe.model_type, seed=int(recipe.train.get("seed", 0)),
                                  **recipe.tiny)
        return str(folder), folder
    if recipe.tokenizer:
        return recipe.base_model, Path(recipe.tokenizer)
    local = Path(recipe.base_model)
    return recipe.base_model, local if local.is_dir() else _hub_tokenizer(recipe.base_model)


def _hub_tokenizer(repo_id: str) -> Path:
    """The tokenizer folder of a hub model: from the HF cache offline, else downloaded (tokenizer files only)."""
    from ocx.adapters.hf.checkpoint import local_model_dir
    from ocx.harness.errors import InputError, InputProblem

    try:
        return local_model_dir(repo_id, tokenizer_only=True)
    except ValueError as exc:
        raise InputError(InputProblem("recipe", None, "model.base", str(exc))) from None


# --- evaluation -------------------------------------------------------------------------------

def _backend(recipe: Recipe) -> str:
    if recipe.eval.backend != "auto":
        return recipe.eval.backend
    import importlib.util

    import torch

    return "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "transformers"


def evaluate_epoch(recipe: Recipe, checkpoint: Path, epoch: int, console) -> dict[str, float]:
    """Accuracy per "suite [condition]" for one checkpoint; each condition is one `ocx eval` run."""
    from ocx.harness.eval_session import EvalOptions, run_eval_session
    from ocx.harness.results import load_results

    scores = {}
    for i, condition in enumerate(recipe.eval.conditions):
        out = recipe.output / "eval" / f"epoch_{epoch}" / f"condition_{i}"
        if not (out / "results.json").is_file():
            overrides = {"max_tokens": recipe.eval.max_tokens} if recipe.eval.max_tokens else {}
            opts = EvalOptions(model_path=checkpoint, endpoint=None, model_name=f"{recipe.name} epoch {epoch}",
                               model_type=None, backend=_backend(recipe), condition=condition, sets=recipe.eval.suites,
                               limit=recipe.eval.limit, concurrency=1, batch_size=recipe.eval.batch_size, output=out,
                               cache=recipe.output / "eval" / "cache.sqlite", matcher="ocx", data=None,
                               overrides=overrides)
            console.print(f"evaluating epoch {epoch} under condition {condition!r}")
            run_eval_session(opts, console)
        summary = load_results(out / "results.json")["summary"]
        scores.update({column(suite, condition): float(v["accuracy"]) for suite, v in summary.items()})
    return scores


def _epoch_loss(train_dir: Path, epoch: int) -> float | None:
    """Mean training loss over the steps of an epoch, from metrics.jsonl."""
    from ocx.adapters.train.progress import read_metrics

    losses = [m["loss"] for m in read_metrics(train_dir) if m.get("epoch") == epoch]
    return sum(losses) / len(losses) if losses else None


def epoch_row(recipe: Recipe, checkpoint: Path, epoch: int, console) -> EpochRow:
    scores = evaluate_epoch(recipe, checkpoint, epoch, console)
    first = recipe.eval.conditions[0]
    main = [v for k, v in scores.items() if k.endswith(f"[{first or 'no condition'}]")]
    return EpochRow(epoch + 1, _epoch_loss(recipe.output / "train", epoch), scores,
                    sum(main) / len(main) if main else None)


# --- report -----------------------------------------------------------------------------------

def results_table(recipe: Recipe, rows: list[EpochRow]):
    from rich.table import Table

    columns = [c for row in rows for c in row.scores]
    columns = list(dict.fromkeys(columns))
    best = best_epoch(rows)
    table = Table(title=f"{recipe.name}: accuracy after each epoch")
    table.add_column("epoch", justify="right")
    table.add_column("train loss", justify="right")
    for c in columns:
        table.add_column(c, justify="right")
    table.add_column(f"average [{recipe.eval.conditions[0] or 'no condition'}]", justify="right")
    for row in rows:
        style = "bold green" if best and row.epoch == best.epoch else None
        table.add_row(str(row.epoch), "-" if row.loss is None else f"{row.loss:.4f}",
                      *[f"{100 * row.scores[c]:.1f}" if c in row.scores else "-" for c in columns],
                      "-" if row.average is None else f"{100 * row.average:.1f}", style=style)
    return table


def best_epoch(rows: list[EpochRow]) -> EpochRow | None:
    scored = [r for r in rows if r.average is not None]
    return max(scored, key=lambda r: (r.average, -r.epoch)) if scored else None


def tied_with_best(recipe: Recipe, rows: list[EpochRow], best: EpochRow | None) -> dict[int, float]:
    """Epochs whose first-condition average is not significantly below the best's: epoch -> p
    (paired bootstrap over the items both answered, each suite weighing the same; p >= 0.05)."""
    from ocx.harness.compare import compare_average, read_item_scores
    from ocx.harness.errors import InputError

    def items(row: EpochRow):
        return read_item_scores(recipe.output / "eval" / f"epoch_{row.epoch - 1}" / "condition_0" / "samples.jsonl")

    if best is None:
        return {}
    first = recipe.eval.conditions[0]
    suites = [k.rpartition(" [")[0] for k in best.scores if k.endswith(f"[{first or 'no condition'}]")]
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


def write_report(recipe: Recipe, rows: list[EpochRow]) -> Path:
    """report.json (every number of the table) and report.html (a bar chart per column)."""
    from ocx.harness.report import RunColumn, html_report

    best = best_epoch(rows)
    document = {"recipe": recipe.name, "file": recipe.file, "model_type": recipe.model_type,
                "conditions": recipe.eval.conditions, "suites": recipe.eval.suites,
                "best_epoch": best.epoch if best else None,
                "indistinguishable_from_best": tied_with_best(recipe, rows, best),
                "epochs": [{"epoch": r.epoch, "train_loss": r.loss, "scores": r.scores, "average": r.average} for r in rows]}
    atomic_write_text(recipe.output / "report.json", json.dumps(document, indent=2) + "\n")
    runs = [RunColumn(f"epoch {r.epoch}", str(recipe.output / "eval" / f"epoch_{r.epoch - 1}"), r.scores,
                      {k: 0.0 for k in r.scores}) for r in rows]
    atomic_write_text(recipe.output / "report.html", html_report(runs, title=f"ocx recipe {recipe.name}"))
    return recipe.output / "report.json"


# --- the whole run ----------------------------------------------------------------------------

def run_recipe(recipe: Recipe) -> list[EpochRow]:
    from ocx.adapters.train import run_training
    from ocx.adapters.train.checkpoint import completed_checkpoints
    from ocx.adapters.train.config import TrainConfig

    console = _console()
    recipe.output.mkdir(parents=True, exist_ok=True)
    model, tokenizer = base_model(recipe)
    data = prepare_data(recipe, tokenizer, console)
    train_dir = recipe.output / "train"
    cfg = TrainConfig(data=data, model=model, out=train_dir, tokenizer=str(tokenizer), resume=train_dir.exists(),
                      extra_metadata={"recipe": recipe.name}, **recipe.train)
    rows: list[EpochRow] = []

    def after_epoch(epoch: int, checkpoint: Path) -> None:
        rows.append(epoch_row(recipe, checkpoint, epoch, console))
        console.print(results_table(recipe, rows))
        write_report(recipe, rows)

    # Epochs finished by an earlier, killed run are evaluated (or read back) first.
    for checkpoint in completed_checkpoints(train_dir):
        after_epoch(int(checkpoint.name.removeprefix("epoch_")), checkpoint)
    if len(rows) < cfg.epochs:
        run_training(cfg, on_epoch_end=after_epoch)
    best = best_epoch(rows)
    if best:
        console.print(f"[bold]best epoch: {best.epoch}[/] (average {100 * best.average:.1f} under condition "
                      f"{recipe.eval.conditions[0]!r}); checkpoints in {train_dir}, report in {recipe.output / 'report.html'}")
        tied = tied_with_best(recipe, rows, best)
        if tied:
            console.print("epochs " + ", ".join(f"{e} (p={p:.2f})" for e, p in tied.items()) + f" are statistically "
                          f"indistinguishable from epoch {best.epoch} (paired bootstrap, p >= 0.05): any of them will do")
    return rows
