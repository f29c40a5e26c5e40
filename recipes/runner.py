"""`ocx recipe run`: prepare data, tokenize (cached by content), train, evaluate every epoch,
report.

Every stage writes its output atomically and is skipped when its output already exists, so a
killed run started again resumes where it stopped: tokenized data is reused by content hash,
training continues from its last resumable state, and evaluations already done (or answered
requests, through the response cache) are not repeated.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ocx.harness.atomic import atomic_write_text
from ocx.recipes.report import EpochRow, best_epoch, column  # noqa: F401  (also the runner's API)
from ocx.recipes.schema import Recipe


def _console():
    """The process's one rich console: the trainer's progress bar draws on it too, so ocx's lines
    and tables print above the live bar instead of through it."""
    from rich import get_console

    from ocx.harness.quiet import quiet_third_party

    quiet_third_party()
    return get_console()


# --- data -------------------------------------------------------------------------------------


def _source_rows(recipe: Recipe) -> list[dict]:
    """All conversations of the recipe, each source's condition and assistant weight applied."""
    from ocx.harness.conversation import read_conversations
    from ocx.recipes.synthetic import arithmetic_conversations

    rows = []
    for spec in recipe.data:
        if spec.generator:
            rows += arithmetic_conversations(
                count=spec.count,
                quality=spec.quality,
                condition=spec.condition,
                weight=spec.weight,
                seed=spec.seed,
            )
            continue
        for conv in read_conversations(spec.path):
            rows.append(
                {
                    "condition": spec.condition,
                    "system": conv.system,
                    "items": [
                        {
                            "role": m.role,
                            "content": m.content,
                            "weight": spec.weight if m.role == "assistant" else 0.0,
                        }
                        for m in conv.items
                    ],
                }
            )
    return rows


def prepare_data(recipe: Recipe, tokenizer: Path, console) -> Path:
    """Merged JSONL, then `ocx data tokenize`, reused when the same content was tokenized before."""
    from ocx.harness.data.writer import TokenizeJob, tokenize_files
    from ocx.harness.templates import get_template
    from ocx.harness.tokenizers import load_tokenizer

    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in _source_rows(recipe))
    template = get_template(recipe.model_type)
    tokenizer_sha256 = load_tokenizer(tokenizer, template.added_tokens).sha256
    key = hashlib.sha256("\0".join([text, template.sha256, tokenizer_sha256]).encode()).hexdigest()[
        :16
    ]
    data_dir = recipe.output / "data"
    tokenized = data_dir / f"tokenized-{key}"
    if (tokenized / "manifest.json").is_file():
        console.print(f"data: reusing {tokenized}", highlight=False)
        return tokenized
    merged = data_dir / f"conversations-{key}.jsonl"
    atomic_write_text(merged, text)
    manifest = tokenize_files(
        TokenizeJob(
            model_type=recipe.model_type,
            tokenizer=str(tokenizer),
            inputs=[merged],
            out=tokenized,
            workers=2,
        )
    )
    console.print(
        f"data: {manifest['counts']['conversations']} conversations tokenized into {tokenized}",
        highlight=False,
    )
    return tokenized


# --- model ------------------------------------------------------------------------------------


def base_model(recipe: Recipe) -> tuple[str, Path]:
    """(model to train from, tokenizer to tokenize with)."""
    if recipe.base_model == "tiny":
        from ocx.adapters.hf.tiny import build_tiny_checkpoint

        tokenizer = Path(recipe.tokenizer)  # resolved against the recipe's folder by the schema
        folder = recipe.output / "base-model"
        if not (folder / "config.json").is_file():
            build_tiny_checkpoint(
                folder,
                tokenizer,
                recipe.model_type,
                seed=int(recipe.train.get("seed", 0)),
                **recipe.tiny,
            )
        return str(folder), folder
    if recipe.tokenizer:
        return recipe.base_model, Path(recipe.tokenizer)
    local = Path(recipe.base_model)
    return recipe.base_model, local if local.is_dir() else _hub_tokenizer(recipe.base_model)


def _hub_tokenizer(repo_id: str) -> Path:
    """The tokenizer folder of a hub model: from the HF cache offline, else downloaded
    (tokenizer files only)."""
    from ocx.adapters.hf.checkpoint import local_model_dir
    from ocx.harness.errors import InputError, InputProblem

    try:
        return local_model_dir(repo_id, tokenizer_only=True)
    except ValueError as exc:
        raise InputError(InputProblem("recipe", None, "model.base", str(exc))) from None


# --- evaluation -------------------------------------------------------------------------------


def _backend(recipe: Recipe) -> str:
    """The engine registry's name for the recipe's `eval.engine` ("auto": vLLM on a GPU, else
    transformers)."""
    if recipe.eval.engine != "auto":
        return recipe.eval.engine
    import torch

    from ocx.harness.engines import default_local_engine

    return default_local_engine() if torch.cuda.is_available() else "transformers"


def evaluate_epoch(recipe: Recipe, checkpoint: Path, epoch: int, console) -> dict[str, float]:
    """Accuracy per "suite [condition]" for one checkpoint; each condition is one `ocx eval` run."""
    from ocx.harness.eval_session import EvalOptions, run_eval_session
    from ocx.harness.results import load_results

    scores = {}
    for i, condition in enumerate(recipe.eval.conditions):
        out = recipe.output / "eval" / f"epoch_{epoch}" / f"condition_{i}"
        if not (out / "results.json").is_file():
            opts = EvalOptions(
                model_path=checkpoint,
                endpoint=None,
                model_name=f"{recipe.name} epoch {epoch}",
                model_type=None,
                engine=_backend(recipe),
                condition=condition,
                sets=recipe.eval.suites,
                concurrency=1,
                output=out,
                cache=recipe.output / "eval" / "cache.sqlite",
                matcher="ocx",
                data=None,
                print_summary=False,  # one table per epoch, below
                **recipe.eval.settings,  # limit, max_tokens, batch_size (recipes/schema.py)
            )
            console.print(
                f"evaluating train/{checkpoint.name} under condition {condition!r}", highlight=False
            )
            run_eval_session(opts, console)
        summary = load_results(out / "results.json")["summary"]
        scores.update(
            {column(suite, condition): float(v["accuracy"]) for suite, v in summary.items()}
        )
    return scores


def epoch_row(recipe: Recipe, checkpoint: Path, epoch: int, console) -> EpochRow:
    """Evaluate the checkpoint train/epoch_<epoch> (or read its evaluations back) into a row."""
    from ocx.recipes.report import read_epoch_row, read_metrics

    evaluate_epoch(recipe, checkpoint, epoch, console)
    return read_epoch_row(
        recipe.output, recipe.eval.conditions, epoch, read_metrics(recipe.output / "train")
    )


# --- report -----------------------------------------------------------------------------------


def _recipe_info(recipe: Recipe) -> dict:
    return {
        "recipe": recipe.name,
        "file": recipe.file,
        "model_type": recipe.model_type,
        "conditions": recipe.eval.conditions,
        "suites": recipe.eval.suites,
    }


def tied_with_best(recipe: Recipe, rows: list[EpochRow], best: EpochRow | None) -> dict[int, float]:
    """Epochs not significantly below the best (see ocx.recipes.report.tied_with_best)."""
    from ocx.recipes import report

    return report.tied_with_best(recipe.output, recipe.eval.conditions, rows, best)


def write_report(recipe: Recipe, rows: list[EpochRow]) -> dict:
    """report.json (every number of the table) and report.html (table and charts); returns the
    document."""
    from ocx.recipes.report import report_document, write_recipe_report

    document = report_document(recipe.output, _recipe_info(recipe), rows)
    write_recipe_report(recipe.output, document)
    return document


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
    cfg = TrainConfig(
        data=data,
        model=model,
        out=train_dir,
        tokenizer=str(tokenizer),
        resume=train_dir.exists(),
        extra_metadata={"recipe": recipe.name},
        **recipe.train,
    )
    rows: list[EpochRow] = []
    document: dict = {}

    def after_epoch(epoch: int, checkpoint: Path) -> None:
        from ocx.adapters.train.tracking import log_eval_scores
        from ocx.recipes.report import recipe_table

        rows.append(epoch_row(recipe, checkpoint, epoch, console))
        log_eval_scores(
            epoch, rows[-1].scores, train_dir
        )  # TensorBoard / W&B, when train.report_to names them
        document.update(write_report(recipe, rows))
        console.print(recipe_table(document))

    # Epochs finished by an earlier, killed run are evaluated (or read back) first.
    for checkpoint in completed_checkpoints(train_dir):
        after_epoch(int(checkpoint.name.removeprefix("epoch_")), checkpoint)
    if len(rows) < cfg.epochs:
        run_training(cfg, on_epoch_end=after_epoch)
    _print_verdict(console, recipe, document)
    return rows


def _print_verdict(console, recipe: Recipe, document: dict) -> None:
    """The best epoch, its checkpoint folder and the epochs a paired test cannot tell from it."""
    from ocx.recipes.report import condition_label

    best = document.get("best_epoch")
    if best is None:
        return
    first = condition_label(recipe.eval.conditions[0])
    average = next(e["averages"][first] for e in document["epochs"] if e["epoch"] == best)
    console.print(
        f"[bold]best epoch: {best}[/] ({recipe.output / document['best_checkpoint']}), average "
        f"{100 * average:.1f} under condition {first!r}; report in {recipe.output / 'report.html'}",
        highlight=False,
    )
    tied = document["indistinguishable_from_best"]
    if tied:
        console.print(
            "epochs "
            + ", ".join(f"{e} (p={p:.2f})" for e, p in tied.items())
            + " are statistically "
            f"indistinguishable from epoch {best} (paired bootstrap, p >= 0.05): "
            "any of them will do",
            highlight=False,
        )
