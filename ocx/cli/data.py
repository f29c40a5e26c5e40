"""`ocx data`: pretokenize C-RLFT conversations and inspect tokenized datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ocx.cli import SuggestingGroup
from ocx.cli.options import console, model_type_option


@click.group(cls=SuggestingGroup)
def data() -> None:
    """Pretokenize C-RLFT conversations and inspect tokenized datasets."""


@data.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_type_option(required=True, short=True)
@click.option(
    "--tokenizer",
    "-t",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="tokenizer.model (sentencepiece/tiktoken) or an HF tokenizer folder.",
)
@click.option(
    "--out", "-o", required=True, type=click.Path(path_type=Path), help="Output dataset directory."
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Skip bad lines (listed in OUT/skipped.jsonl) instead of failing.",
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: every CPU core).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option(
    "--max-line-bytes",
    type=click.IntRange(min=1024),
    default=None,
    help="Refuse longer lines (default 16 MiB; a conversation is cut to the context length "
    "anyway).",
)
def tokenize(
    inputs, model_type, tokenizer, out, skip_invalid, workers, overwrite, max_line_bytes
) -> None:
    """Validate and tokenize JSONL conversations INPUTS into a dataset directory.

    Each line: {"condition": ..., "system": ..., "items": [{"role", "content", "weight"}]}.
    Bad lines fail the run (exit code 2, every problem named by file:line:field) unless
    --skip-invalid; nothing is left behind on failure.
    """
    from ocx.harness.data.writer import MAX_LINE_BYTES, TokenizeJob, check_job, tokenize_files
    from ocx.harness.templates import resolve_model_type_option

    model_type = resolve_model_type_option(model_type)
    job = TokenizeJob(
        model_type,
        str(tokenizer),
        list(inputs),
        out,
        skip_invalid=skip_invalid,
        workers=workers or os.cpu_count() or 1,
        overwrite=overwrite,
        max_line_bytes=max_line_bytes or MAX_LINE_BYTES,
    )
    check_job(job)  # before the progress bar: a mistake prints one line
    with _Progress(sum(p.stat().st_size for p in inputs if p.is_file())) as advance:
        manifest = tokenize_files(job, advance, checked=True)
    counts = manifest["counts"]
    console(stderr=True).print(
        f"[green]wrote[/] {out}: {counts['conversations']} conversations, "
        f"{counts['tokens']} tokens ({counts['supervised_tokens']} supervised); "
        f"skipped {counts['skipped_invalid']} invalid lines, "
        f"dropped {counts['dropped_no_supervised_tokens']} with no supervised token, "
        f"truncated {counts['truncated_to_context']} to {manifest['context_length']} tokens"
    )


class _Progress:
    """A rich progress bar over input bytes that also shows conversations per second."""

    def __init__(self, total_bytes: int):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("tokenizing"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[convs]} conversations, {task.fields[rate]:,.0f}/s"),
            TimeElapsedColumn(),
            transient=False,
        )
        self.task = self.progress.add_task("tokenize", total=max(total_bytes, 1), convs=0, rate=0.0)
        self.convs = 0

    def __enter__(self):
        self.progress.start()
        return self.advance

    def advance(self, nbytes: int, convs: int) -> None:
        self.convs += convs
        task = self.progress.tasks[0]
        elapsed = task.elapsed or 0.0
        self.progress.update(
            self.task,
            advance=nbytes,
            convs=self.convs,
            rate=self.convs / elapsed if elapsed > 0 else 0.0,
        )

    def __exit__(self, *exc) -> None:
        self.progress.stop()


@data.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--batch-max-len",
    type=click.IntRange(min=1),
    default=None,
    help="Per-rank token budget; adds packing efficiency and steps per epoch.",
)
@click.option(
    "--num-ranks",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Data-parallel ranks.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Sampler seed (epoch 0 is reported)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats(directory, batch_max_len, num_ranks, seed, as_json) -> None:
    """Sizes, conditions, length percentiles and packing of a tokenized dataset."""
    from ocx.harness.data.dataset import load_tokenized
    from ocx.harness.data.stats import dataset_stats

    result = dataset_stats(
        load_tokenized(directory), batch_max_len=batch_max_len, num_ranks=num_ranks, seed=seed
    )
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print_stats(directory, result)


def _print_stats(directory: Path, result: dict) -> None:
    from rich.table import Table

    table = Table(title=f"ocx data stats: {directory}", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("conversations", f"{result['conversations']:,}")
    table.add_row("tokens", f"{result['tokens']:,}")
    table.add_row("supervised tokens", f"{result['supervised_tokens']:,}")
    for name, value in result["length"].items():
        table.add_row(f"length {name}", f"{value:,}")
    for cond, entry in result["conditions"].items():
        table.add_row(
            f"condition {cond or '(none)'!s}",
            f"{entry['conversations']:,} conv, weight sum {entry['weight_sum']:,.1f}",
        )
    packing = result.get("packing")
    if packing:
        where = f"{packing['num_ranks']} x {packing['batch_max_len']:,}"
        table.add_row(f"packing efficiency ({where})", f"{packing['efficiency']:.2%}")
        table.add_row("steps per epoch", f"{packing['steps_per_epoch']:,}")
        table.add_row("partly filled final steps", f"{packing['partial_steps_per_epoch']:,}")
        table.add_row("longer than batch-max-len", f"{packing['longer_than_batch_max_len']:,}")
    console().print(table)
