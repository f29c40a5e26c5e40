"""The registry's factory for the transformers engine (`ocx.harness.engines`, name "transformers").

The engine itself is `hf_engine.TransformersEngine` (continuous batching in a worker thread);
this turns a checkpoint spec and the engine options into its constructor arguments.
"""

from __future__ import annotations

import json

from ocx.harness.checkpoint import CheckpointSpec
from ocx.harness.engines import EngineOptions


def resolve_dtype(checkpoint: CheckpointSpec, dtype: str) -> str:
    """A torch dtype name. "auto": the checkpoint's own on a GPU, float32 on CPU (where
    half-precision matmuls are slower than float32 ones, and some are missing)."""
    if dtype != "auto":
        return dtype
    import torch

    if not torch.cuda.is_available():
        return "float32"
    config_file = checkpoint.path / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return str(config.get("dtype") or config.get("torch_dtype") or "float32")


def resolve_device() -> str:
    """The first GPU when torch sees one (as eval's transformers backend always did), else CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build(checkpoint: CheckpointSpec, options: EngineOptions):
    from ocx.adapters.serve.hf_engine import TransformersEngine

    return TransformersEngine(
        checkpoint.path,
        pad_id=checkpoint.eot_id,
        max_batch_size=options.batch_size,
        dtype=resolve_dtype(checkpoint, options.dtype),
        device=resolve_device(),
    )
