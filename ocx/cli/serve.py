"""`ocx serve`: start the OpenAI-compatible server (heavy imports happen inside the command)."""

from __future__ import annotations

import logging

import click

from ocx.cli.options import (
    MultiValueCommand,
    engine_arg_option,
    model_type_option,
    parallel_size_options,
    parse_engine_args,
)
from ocx.harness.errors import InputError, InputProblem

# Sections of `ocx serve --help`, by option destination name.
OPTION_GROUPS: dict[str, tuple[str, ...]] = {
    "Model": ("model", "model_type", "served_model_name", "dtype"),
    "Engine": (
        "engine",
        "engine_args",
        "tensor_parallel_size",
        "data_parallel_size",
        "max_batch_size",
    ),
    "Server": ("host", "port", "api_keys", "disable_log_requests", "log_file", "help"),
    "Limits": ("max_pending", "max_request_bytes", "read_timeout"),
}


# Options that take several values after one flag, as OpenChat's server did (`--api-keys K1 K2`).
@click.command(
    cls=MultiValueCommand,
    multi_value=("--api-keys", "--served-model-name"),
    option_groups=OPTION_GROUPS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--model", "model", required=True, help="Checkpoint folder (or Hugging Face hub id).")
@model_type_option()
@click.option(
    "--engine",
    default=None,
    help="Engine from the registry (vllm, transformers, or one a plugin registered); "
    "default: vllm when installed, else transformers (any CPU).",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=18888,
    show_default=True,
    help="TCP port to listen on.",
)
@click.option(
    "--served-model-name", multiple=True, help="Name(s) clients use as `model` (several allowed)."
)
@click.option(
    "--api-keys", multiple=True, help="Accepted bearer keys (several allowed); none: no auth."
)
@parallel_size_options
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="transformers engine: sequences decoded together per forward pass.",
)
@click.option(
    "--max-pending",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Sequences running or queued before new requests get 503.",
)
@click.option(
    "--max-request-bytes",
    type=click.IntRange(min=1024),
    default=8 * 2**20,
    show_default=True,
    help="Largest request body; larger ones get 413 before the rest is read.",
)
@click.option(
    "--read-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds a client may take to send its headers, or pause while sending a body.",
)
@click.option(
    "--dtype",
    default="auto",
    show_default=True,
    help="Weights dtype: auto (float32 on CPU, the checkpoint's on a GPU) or a torch name "
    "(bfloat16).",
)
@engine_arg_option()
@click.option("--disable-log-requests", is_flag=True, help="No per-request log lines.")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Append every request and its outputs as JSON lines (rotated at 128 MB).",
)
def serve(
    model,
    model_type,
    engine,
    host,
    port,
    served_model_name,
    api_keys,
    tensor_parallel_size,
    data_parallel_size,
    max_batch_size,
    max_pending,
    max_request_bytes,
    read_timeout,
    dtype,
    engine_args,
    disable_log_requests,
    log_file,
) -> None:
    """Serve a chat model with an OpenAI-compatible API, conditions and a chat page at /."""
    from ocx.adapters.serve.guard import check_api_keys
    from ocx.adapters.serve.model import load_served_model
    from ocx.harness.engines import EngineOptions, build_engine, check_engine, default_local_engine

    try:
        check_api_keys(api_keys)  # before any loading: `--api-keys ""` would let an empty bearer in
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--api-keys") from exc
    problems: list[InputProblem] = []
    options = EngineOptions(
        batch_size=max_batch_size,
        dtype=dtype,
        tensor_parallel_size=tensor_parallel_size,
        data_parallel_size=data_parallel_size,
        engine_args=parse_engine_args(engine_args, problems),
    )
    # The same registry and checks as `ocx eval --engine`, all before any weights load.
    engine = engine or default_local_engine()
    problems += check_engine(engine, options, needs_local=True)
    try:
        served = load_served_model(model, model_type, tuple(served_model_name))
    except InputError as exc:  # --model-type: the message every command gives
        problems += exc.problems
    except (FileNotFoundError, ValueError, KeyError) as exc:
        problems.append(InputProblem(model, None, "--model", str(exc)))
    if problems:
        raise InputError(problems)
    backend = build_engine(engine, served, options)
    limits = {
        "max_pending": max_pending,
        "max_request_bytes": max_request_bytes,
        "read_timeout": read_timeout,
    }
    _run(backend, served, host, port, api_keys, limits, disable_log_requests, log_file)


def _request_logger(log_file: str | None) -> logging.Logger | None:
    if not log_file:
        return None
    from logging.handlers import RotatingFileHandler

    logger = logging.getLogger(f"ocx.serve.requests.{log_file}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(
        RotatingFileHandler(log_file, maxBytes=128 * 2**20, backupCount=10, encoding="utf-8")
    )
    return logger


def _run(
    backend, served, host, port, api_keys, limits: dict, disable_log_requests, log_file
) -> None:
    import uvicorn

    from ocx.adapters.serve.app import ServeSettings, create_app
    from ocx.adapters.serve.server import server_config

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = ServeSettings(
        model=served,
        api_keys=tuple(api_keys),
        log_requests=not disable_log_requests,
        request_log=_request_logger(log_file),
        **limits,
    )
    app = create_app(backend, settings)
    click.echo(
        f"ocx serve: {served.names[0]} ({served.model_type}, {backend.name}) on http://{host}:{port}",
        err=True,
    )
    config = server_config(
        app,
        host=host,
        port=port,
        read_timeout=settings.read_timeout,
        access_log=not disable_log_requests,
    )
    uvicorn.Server(config).run()
