"""`ocx templates`: list, render, tokenize, check and export chat templates."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ocx.cli import SuggestingGroup
from ocx.cli.options import console, model_type_option
from ocx.harness.errors import InputError, InputProblem


def _template(model_type: str):
    """The template `--model-type` names; a typo gets the message every command gives."""
    from ocx.harness.templates import get_template, resolve_model_type_option

    return get_template(resolve_model_type_option(model_type))


@click.group(cls=SuggestingGroup)
def templates() -> None:
    """Chat templates: one Jinja2 file per model type, exact token IDs."""


def _tokenizer_option(required: bool, help: str = ""):
    return click.option(
        "--tokenizer",
        "-t",
        required=required,
        type=click.Path(exists=True),
        help=help or "HF tokenizer folder, or a bare tokenizer.model (sentencepiece or tiktoken).",
    )


@templates.command("list")
def list_templates() -> None:
    """List model types with their end-of-turn token, default condition and context length."""
    from rich.table import Table

    from ocx.harness.templates import get_template, template_names

    table = Table(title="ocx chat templates")
    for column in (
        "model type",
        "aliases",
        "EOT",
        "inference condition",
        "context",
        "vocabulary",
        "sha256",
    ):
        table.add_column(column)
    for name in template_names():
        t = get_template(name)
        table.add_row(
            name,
            ", ".join(t.aliases),
            t.eot_token,
            repr(t.default_condition),
            str(t.context_length),
            t.base_vocabulary,
            t.sha256[:12],
        )
    console().print(table)


def _check_condition_option(condition: str | None) -> None:
    if condition and ("\ue000" in condition or "\ue001" in condition):
        raise click.BadParameter(
            "contains a reserved character (U+E000/U+E001)", param_hint="--condition"
        )


def _read_one(path: str, require_weights: bool):
    from ocx.harness.conversation import read_conversations

    conversations = read_conversations(path, require_weights=require_weights)
    if not conversations:
        raise InputError(InputProblem(path, None, None, "no conversation found"))
    return conversations


@templates.command("render")
@model_type_option(required=True, short=True)
@_tokenizer_option(required=False, help="Tokenizer; with it, tokens are shown coloured by weight.")
@click.option(
    "--inference",
    is_flag=True,
    help="Render the inference prompt (generation prompt / prefill) instead of training.",
)
@click.option(
    "--condition",
    default=None,
    help="Condition for the role headers (default: the conversation's).",
)
@click.argument("conversations", type=click.Path(exists=True, dir_okay=False))
def render(
    model_type: str,
    tokenizer: str | None,
    inference: bool,
    condition: str | None,
    conversations: str,
) -> None:
    """Show the prompt of each conversation in CONVERSATIONS (JSONL); supervised tokens in green."""
    from rich.text import Text

    from ocx.harness.templates.encode import encode_conversation, resolve_condition
    from ocx.harness.tokenizer_check import load_checked_tokenizer

    _check_condition_option(condition)
    template = _template(model_type)
    screen = console()
    tok = load_checked_tokenizer(tokenizer, template) if tokenizer else None
    for conv in _read_one(conversations, require_weights=False):
        if tok is None:
            cond = resolve_condition(template, conv, condition, inference)
            screen.print(
                Text(
                    template.render(
                        _plain_messages(conv), add_generation_prompt=inference, condition=cond
                    )
                )
            )
        else:
            enc = encode_conversation(template, tok, conv, inference=inference, condition=condition)
            screen.print(_weighted_text(tok, enc))
        screen.rule()


def _weighted_text(tok, enc):
    """The decoded prompt with supervised tokens in green and the rest dimmed."""
    from rich.text import Text

    text, previous = Text(), ""
    for i, weight in enumerate(enc.weights):
        # Decoding prefixes (not single tokens) keeps sentencepiece's word-boundary spaces.
        decoded = tok.decode(enc.input_ids[: i + 1])
        text.append(decoded[len(previous) :], style="bold green" if weight > 0 else "dim")
        previous = decoded
    return text


def _plain_messages(conv) -> list[dict]:
    system = [{"role": "system", "content": conv.system}] if conv.system else []
    return system + [{"role": m.role, "content": m.content} for m in conv.items]


@templates.command("tokenize")
@model_type_option(required=True, short=True)
@_tokenizer_option(required=True)
@click.option(
    "--inference", is_flag=True, help="Inference prompt instead of training IDs and weights."
)
@click.option("--condition", default=None, help="Override the condition of every conversation.")
@click.argument("conversations", type=click.Path(exists=True, dir_okay=False))
def tokenize(
    model_type: str, tokenizer: str, inference: bool, condition: str | None, conversations: str
) -> None:
    """Write one JSON line per conversation with `input_ids` and `weights` to stdout."""
    from ocx.harness.templates.encode import encode_conversation
    from ocx.harness.tokenizer_check import load_checked_tokenizer

    _check_condition_option(condition)
    template = _template(model_type)
    tok = load_checked_tokenizer(tokenizer, template)
    # Validate the whole file first, so bad input writes nothing.
    for conv in _read_one(conversations, require_weights=not inference):
        enc = encode_conversation(template, tok, conv, inference=inference, condition=condition)
        sys.stdout.write(json.dumps({"input_ids": enc.input_ids, "weights": enc.weights}) + "\n")


@templates.command("check")
@click.option(
    "--shared",
    type=click.Path(exists=True, file_okay=False),
    envvar="OCX_SHARED_DIR",
    help="Folder holding tokenizers/ (default $OCX_SHARED_DIR; the mistral-common and "
    "llama-models packages are used too).",
)
@click.option(
    "--fixtures",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Fixture files (default: the documented OpenChat IDs and ocx's own cases).",
)
@click.option(
    "--require-all",
    is_flag=True,
    help="Fail when a fixture is skipped because its vocabulary is missing.",
)
def check(shared: str | None, fixtures: tuple[str, ...], require_all: bool) -> None:
    """Verify every template against token-ID fixtures; exit 1 on any mismatch."""
    from rich.table import Table

    from ocx.harness.templates.check import bundled_fixture_paths, run_checks

    paths = [Path(f) for f in fixtures] or bundled_fixture_paths()
    roots = [Path(shared)] if shared else []
    results = list(run_checks(paths, roots))
    table = Table(title="template fixtures")
    table.add_column("case")
    table.add_column("result")
    style = {"pass": "green", "fail": "bold red", "skip": "yellow"}
    for r in results:
        table.add_row(r.name, f"[{style[r.status]}]{r.status}[/]")
    screen = console()
    screen.print(table)
    for r in results:
        if r.status != "pass":
            screen.print(f"[{style[r.status]}]{r.status}[/] {r.name}\n{r.detail}", markup=True)
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip")}
    screen.print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    if counts["fail"] or (require_all and counts["skip"]):
        sys.exit(1)


@templates.command("export")
@model_type_option(required=True, short=True)
@_tokenizer_option(required=True)
@click.option(
    "--out", "-o", required=True, type=click.Path(file_okay=False), help="Folder to write."
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def export(model_type: str, tokenizer: str, out: str, overwrite: bool) -> None:
    """Write an HF tokenizer folder with the chat template (for vLLM or transformers)."""
    from ocx.harness.templates.export import export_tokenizer
    from ocx.harness.tokenizer_check import load_checked_tokenizer

    template = _template(model_type)
    load_checked_tokenizer(tokenizer, template)
    try:
        metadata = export_tokenizer(template, tokenizer, out, overwrite=overwrite)
    except FileExistsError as exc:
        raise click.UsageError(f"{exc}; pass --overwrite to replace it") from None
    sha, eot = metadata["template_sha256"][:12], metadata["eot_token_id"]
    console().print(f"wrote {out} (template sha256 {sha}, EOT id {eot})")
