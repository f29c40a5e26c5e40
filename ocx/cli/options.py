"""What every `ocx` command shares: several-value options, grouped help, `--engine-arg`, console.

Nothing here imports more than click (rich only inside `console()`), so `ocx --help` stays fast.

    @click.command(
        "serve",
        cls=MultiValueCommand,
        multi_value=("--api-keys",),
        option_groups={"Model": ("model", "model_type"), "Server": ("host", "port")},
    )
    @engine_arg_option()
    def serve(model, model_type, host, port, engine_args): ...
        args = parse_engine_args(engine_args, problems)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

from ocx.harness.errors import InputProblem


class MultiValueCommand(click.Command):
    """A click command whose `multi_value` options take several values after one flag.

    `--sets mmlu gsm8k` becomes `--sets mmlu --sets gsm8k` before click parses (a click option
    takes one value per use); `--sets=a` and repeated flags work as usual, and a flag given no
    value is a usage error ("requires an argument"), not a swallowed next flag. The options
    must be declared `multiple=True`. A value starting with "-" ends the list, and so does a
    literal "--", so use it on commands whose positional arguments (if any) follow a "--".

    `option_groups` ({section title: option destination names}) prints `--help` in sections, in
    that order; options no section names go under "Other options" (name "help" to place
    `--help`, whatever click calls its option).
    """

    def __init__(
        self,
        *args,
        multi_value: Sequence[str] = (),
        option_groups: Mapping[str, Sequence[str]] | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.multi_value = tuple(multi_value)
        self.option_groups = dict(option_groups or {})

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        for arg, after in zip(args, [*args[1:], "-"]):
            if arg == "--":
                break
            if arg in self.multi_value and after.startswith("-"):
                # click would take the next flag as this one's value
                message = f"Option '{arg}' requires an argument."
                raise click.BadOptionUsage(arg, message, ctx)
        return super().parse_args(ctx, expand_multi_value(args, self.multi_value))

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if not self.option_groups:
            return super().format_options(ctx, formatter)
        help_option = self.get_help_option(ctx)
        records = {
            "help" if p is help_option else p.name: p.get_help_record(ctx)
            for p in self.get_params(ctx)
        }
        placed: set[str] = set()
        for title, names in self.option_groups.items():
            rows = [records[name] for name in names if records.get(name)]
            placed.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [record for name, record in records.items() if record and name not in placed]
        if rest:
            with formatter.section("Other options"):
                formatter.write_dl(rest)


def expand_multi_value(args: list[str], names: Sequence[str]) -> list[str]:
    """`["--sets", "a", "b"]` -> `["--sets", "a", "--sets", "b"]` for each flag in `names`."""
    out: list[str] = []
    current, given = None, 0
    for index, arg in enumerate(args):
        is_option = arg.startswith("-")
        if current and is_option:
            if not given:
                out.append(current)  # no value: MultiValueCommand reports it
            current = None
        if arg == "--":  # everything after it is positional: leave it as it is
            return out + args[index:]
        if not is_option:
            out += [current, arg] if current else [arg]
            given += bool(current)
            continue
        name, eq, value = arg.partition("=")
        if name not in names:
            out.append(arg)
        elif eq:
            out += [name, value]
            current, given = name, 1
        else:
            current, given = name, 0
    if current and not given:
        out.append(current)
    return out


def model_type_option(*, required: bool = False, short: bool = False, help: str | None = None):
    """`--model-type` (`-m` too with `short`), destination `model_type`; resolve what it names
    with `ocx.harness.templates.resolve_model_type_option` (or `checkpoint_model_type`)."""
    names = ("--model-type", "-m") if short else ("--model-type",)
    default_help = (
        "Chat template (model type or alias), e.g. openchat_3.5; `ocx templates list` shows them."
        if required
        else "Chat template (model type or alias); default: the checkpoint's ocx.json."
    )
    return click.option(*names, "model_type", required=required, help=help or default_help)


def parallel_size_options(function):
    """`--tensor-parallel-size` and `--data-parallel-size` (vLLM), as `ocx eval` and `ocx serve`
    take them; destinations `tensor_parallel_size`, `data_parallel_size`."""
    for name, help in (
        ("--data-parallel-size", "vLLM: model replicas, each answering part of the requests."),
        ("--tensor-parallel-size", "vLLM: GPUs one model replica is split over."),
    ):
        size = click.IntRange(min=1)
        function = click.option(name, type=size, default=1, show_default=True, help=help)(function)
    return function


def engine_arg_option(help: str | None = None):
    """`--engine-arg KEY=VALUE` (repeatable), destination `engine_args`; parse with
    `parse_engine_args`."""
    return click.option(
        "--engine-arg",
        "engine_args",
        multiple=True,
        metavar="KEY=VALUE",
        help=help
        or "vLLM engine argument (repeatable), e.g. gpu_memory_utilization=0.5; VALUE is JSON "
        "when it parses (0.5, true, {...}), else a string; KEY may use - or _.",
    )


def parse_engine_args(values: Iterable[str], problems: list[InputProblem]) -> dict[str, Any]:
    """`--engine-arg` values as a dict; each malformed one is appended to `problems`.

    KEY=VALUE; KEY's dashes become underscores (vLLM's `--max-model-len` is `max_model_len`) and
    it must then be a Python identifier; VALUE is JSON when it parses (numbers, true/false, null,
    lists, objects), else the plain string. A key given twice keeps its last value, as on vLLM's
    own command line.
    """
    args: dict[str, Any] = {}
    for value in values:
        raw_key, eq, raw = value.partition("=")
        key = raw_key.strip().replace("-", "_")
        if not eq or not key.isidentifier():
            message = f"expected KEY=VALUE, got {value!r}"
            problems.append(InputProblem("command line", None, "--engine-arg", message))
            continue
        try:
            args[key] = json.loads(raw)
        except ValueError:
            args[key] = raw
    return args


def console(stderr: bool = False):
    """The rich console every command prints with (no automatic highlighting of numbers/paths)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)
