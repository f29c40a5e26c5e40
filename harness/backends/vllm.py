"""`VLLMBackend`: the vLLM engine (the one `ocx serve` runs) as an eval backend.

Kept as a name for code that builds it directly; `ocx eval` goes through the engine registry
(`ocx.harness.engines.build_backend("vllm", ...)`), which builds the same thing. Prompts are
ocx's token IDs, generation stops at the template's end of turn and answers are decoded by
ocx's tokenizer, so they match the transformers engine token for token under greedy decoding.
"""

from __future__ import annotations

from pathlib import Path

from ocx.harness.backends.engine_backend import EngineBackend
from ocx.harness.backends.local import LocalModel


class VLLMBackend(EngineBackend):
    def __init__(
        self,
        path: str | Path,
        model_type: str | None = None,
        *,
        engine_args: dict | None = None,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
    ):
        from ocx.harness.engines import EngineOptions, build_engine

        local = LocalModel(path, model_type)
        options = EngineOptions(
            engine_args=dict(engine_args or {}),
            tensor_parallel_size=tensor_parallel_size,
            data_parallel_size=data_parallel_size,
        )
        engine = build_engine("vllm", local.spec, options)
        super().__init__(engine, local, max_in_flight=engine.preferred_in_flight)
