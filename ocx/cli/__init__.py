"""The `ocx` command line: a click group whose subcommands load lazily.

Each command lives in its own module and is imported only when it runs (or when its
`--help` is shown), so `ocx --help` stays fast and never imports torch, vllm or deepspeed.
"""

from __future__ import annotations

import importlib
import sys

import click

from ocx import __version__
from ocx.harness.suggest import did_you_mean

# name -> ("module:attribute", one-line help shown by `ocx --help` without importing it)
COMMANDS: dict[str, tuple[str, str]] = {
    "templates": (
        "ocx.cli.templates:templates",
        "Chat templates: list, render, tokenize, check, export.",
    ),
    "data": ("ocx.cli.data:data", "Pretokenize C-RLFT conversations and inspect datasets."),
    "train": ("ocx.cli.train:train", "Padding-free C-RLFT training (DeepSpeed, CPU or GPU)."),
    "eval": ("ocx.cli.eval:eval_command", "Evaluate a model or an endpoint on benchmark suites."),
    "report": (
        "ocx.cli.report:report",
        "Compare evaluation results in a table and an HTML report.",
    ),
    "serve": (
        "ocx.cli.serve:serve",
        "OpenAI-compatible server with conditions (vLLM or transformers).",
    ),
    "recipe": ("ocx.cli.recipe:recipe", "Run YAML recipes: tokenize, train, evaluate every epoch."),
}


class SuggestingGroup(click.Group):
    """A plain group whose unknown subcommands get "did you mean"; use it for every sub-group."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        _fail_with_suggestion(self, ctx, args)
        return super().resolve_command(ctx, args)


class LazyGroup(SuggestingGroup):
    """A group that imports a subcommand only when it is used, and suggests close names."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module_name, attr = self.lazy[name][0].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.lazy[name][1]) for name in self.list_commands(ctx) if name in self.lazy]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _fail_with_suggestion(group: click.Group, ctx: click.Context, args: list[str]) -> None:
    name = args[0] if args else ""
    if name and not name.startswith("-") and group.get_command(ctx, name) is None:
        hint = did_you_mean(name, group.list_commands(ctx), cutoff=0.5)
        ctx.fail(f"No such command {name!r}{hint or '.'}")


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ocx")
def cli() -> None:
    """ocx: exact chat templates, C-RLFT data and training, benchmarks and serving for
    OpenChat-style chat models."""


def main() -> None:
    from ocx.harness.errors import InputError
    from ocx.harness.quiet import quiet_third_party

    # Hugging Face's own progress bars and advisories would break through ocx's display.
    quiet_third_party()
    try:
        cli(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except InputError as exc:
        from ocx.cli.options import console

        err = console(stderr=True)
        for problem in exc.problems:
            err.print(f"[bold red]error:[/] {problem}", markup=True, soft_wrap=True)
        sys.exit(exc.exit_code)
