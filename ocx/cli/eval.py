"""`ocx eval`: benchmark suites against a local checkpoint or an OpenAI-compatible endpoint.

Its flags are made from `EvalOptions`'s fields (harness/eval_options.py): a setting is a field
there. This module adds only `--list`, `--no-cache` and the deprecated `--backend`, checks the
flags against each other, and computes the fields no flag gives as typed.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from ocx.cli.options import MultiValueCommand, console, parse_engine_args
from ocx.cli.setting_flags import (
    flag_problems,
    multi_value_flags,
    option_groups,
    setting_options,
    settings_from,
)
from ocx.harness.errors import InputError, InputProblem
from ocx.harness.eval_options import EvalOptions


def _split_sets(values: tuple[str, ...]) -> list[str]:
    return [name for value in values for name in re.split(r"[,\s]+", value) if name]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


WHERE = "command line"
"""How `ocx eval` names the place of a bad flag: `command line: --limit: ...`."""

# Where the command's own options go in `--help`: {parameter: the EvalOptions field it follows}.
_PLACES = {"list_suites": "matcher", "no_cache": "cache", "help": "progress"}


OWN_OPTIONS = [
    click.Option(
        ["--list", "list_suites"],
        is_flag=True,
        help="List the suites and groups with their sizes (from the data; no model) and exit.",
    ),
    click.Option(
        ["--no-cache"],
        is_flag=True,
        help="Keep answers in memory only: nothing reused, no resume.",
    ),
    click.Option(
        ["--backend"],
        hidden=True,
        help="Deprecated alias of --engine (removed in the next release).",
    ),
]
"""`ocx eval`'s options that are not EvalOptions fields."""


def eval_command_for(settings: type[EvalOptions]) -> click.Command:
    """`ocx eval` with one flag per flag-carrying field of `settings` (EvalOptions, or a subclass
    that adds a setting), plus `--list`, `--no-cache` and the deprecated `--backend`."""

    def command(**options) -> None:
        """Evaluate a model or an endpoint on benchmark suites; prints scores, writes
        results.json."""
        if options["list_suites"]:
            _print_suite_list(options["data"], options["mt_bench_data"])
            return
        _run(_validate(options, settings))

    return click.command(
        "eval",
        cls=MultiValueCommand,
        params=[*setting_options(settings), *OWN_OPTIONS],
        multi_value=multi_value_flags(settings),
        option_groups=option_groups(settings, after=_PLACES),
    )(command)


def _print_suite_list(data: str | None, mt_bench_data: str | None) -> None:
    from ocx.harness.suite_list import list_tables, suite_sizes

    out = console()
    for table in list_tables(suite_sizes(data, mt_bench_data)):
        out.print(table)


def _run(opts: EvalOptions) -> None:
    from ocx.harness.eval_session import run_eval_session
    from ocx.harness.runner import RequestsFailedError

    try:
        run_eval_session(opts, console=console())
    except RequestsFailedError as exc:  # an endpoint that keeps failing: say so, no traceback
        raise click.ClickException(str(exc)) from exc


eval_command = eval_command_for(EvalOptions)


def _validate(o: dict, settings: type[EvalOptions] = EvalOptions) -> EvalOptions:
    """Check every option at once (an InputError lists all problems); the EvalOptions they give."""
    given = settings_from(settings, o)
    problems = flag_problems(settings, given, WHERE)  # ranges: the fields' rules
    endpoints = _split_endpoints(o["endpoints"])
    engine = _engine_name(o, endpoints, problems)
    _check_combinations(o, endpoints, problems)
    sets = _split_sets(o["sets"])
    if not sets:
        problems.append(InputProblem(WHERE, None, "--sets", "no suite given"))
    engine_args = parse_engine_args(o["engine_args"], problems)
    if problems:
        raise InputError(problems)
    model = o["model_path"]
    name = o["model_name"] or (model.resolve().name if model.is_dir() else model.name)
    output = o["output"] or Path("eval_results") / _slug(name)
    derived = {  # the fields a flag does not give as typed
        "endpoint": endpoints[0] if endpoints else None,
        "endpoints": endpoints,
        "model_name": name,
        "engine": engine,
        "engine_args": engine_args,
        "sets": sets,
        "output": output,
        "cache": None if o["no_cache"] else o["cache"] or output / "cache.sqlite",
    }
    return settings(**{**given, **derived})


def _check_combinations(o: dict, endpoints: tuple[str, ...], problems: list[InputProblem]):
    """--model or --endpoint (valid URLs, with --model-name), and --cache or --no-cache."""
    from ocx.harness.checkpoint import is_hub_id

    model = o["model_path"]
    problems += [
        InputProblem(WHERE, None, "--endpoint", f"not an http(s) URL with a host: {url!r}")
        for url in endpoints
        if not _is_http_url(url)
    ]
    if bool(model) == bool(endpoints):
        problems.append(InputProblem(WHERE, None, "--model/--endpoint", "give exactly one of them"))
    if endpoints and not o["model_name"]:
        problems.append(InputProblem(WHERE, None, "--model-name", "required with --endpoint"))
    if model and not model.is_dir() and not is_hub_id(str(model)):
        problems.append(
            InputProblem(
                str(model), None, "--model", "not a checkpoint folder (nor an org/name hub id)"
            )
        )
    if o["no_cache"] and o["cache"]:
        problems.append(InputProblem(WHERE, None, "--no-cache/--cache", "give at most one of them"))


def _is_http_url(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _split_endpoints(values: tuple[str, ...]) -> tuple[str, ...]:
    """--endpoint A --endpoint B, or --endpoint A,B: each URL once, in order."""
    urls = [url.strip() for value in values for url in value.split(",") if url.strip()]
    return tuple(dict.fromkeys(urls))


def _engine_name(o: dict, endpoints: tuple[str, ...], problems: list[InputProblem]) -> str:
    """--engine, else the deprecated --backend (with a note), else openai for --endpoint, else
    transformers."""
    engine = o["engine"]
    if o.get("backend"):
        click.echo(
            "warning: --backend is deprecated and will be removed in the next release; "
            "use --engine",
            err=True,
        )
        if engine and engine != o["backend"]:
            problems.append(InputProblem(WHERE, None, "--backend/--engine", "give only --engine"))
        engine = engine or o["backend"]
    if endpoints and engine and _is_local(engine):
        problems.append(
            InputProblem(
                WHERE,
                None,
                "--engine",
                f"--endpoint sends requests to a server (engine openai), not to {engine}; "
                "for a local engine pass --model",
            )
        )
    return engine or ("openai" if endpoints else "transformers")


def _is_local(engine: str) -> bool:
    from ocx.harness.engines import get_engine

    try:
        return get_engine(engine).local
    except KeyError:
        return False  # reported with "did you mean" when the run is validated
