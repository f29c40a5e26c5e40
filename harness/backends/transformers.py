"""`TransformersBackend`: the transformers engine (the one `ocx serve` runs) as an eval backend.

Kept as a name for code that builds it directly; `ocx eval` goes through the engine registry
(`ocx.harness.engines.build_backend("transformers", ...)`), which builds the same thing.
torch and transformers load when the first request is generated.
"""

from __future__ import annotations

from pathlib import Path

from ocx.harness.backends.engine_backend import EngineBackend
from ocx.harness.backends.local import LocalModel


class TransformersBackend(EngineBackend):
    def __init__(
        self,
        path: str | Path,
        model_type: str | None = None,
        *,
        batch_size: int = 8,
        dtype: str = "auto",
    ):
        from ocx.harness.engines import EngineOptions, build_engine

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        local = LocalModel(path, model_type)
        engine = build_engine(
            "transformers", local.spec, EngineOptions(batch_size=batch_size, dtype=dtype)
        )
        super().__init__(engine, local, max_in_flight=2 * batch_size)
