"""Padding-free C-RLFT training on DeepSpeed (CPU or GPU).

    from ocx.adapters.train import TrainConfig, run_training
    result = run_training(TrainConfig(data="data/tok", model="path/to/model", out="runs/a"))

`TrainConfig`/`TrainResult` load without torch; `run_training` imports torch, transformers and
DeepSpeed when called.
"""

from __future__ import annotations

from ocx.adapters.train.config import TrainConfig, TrainResult

__all__ = ["TrainConfig", "TrainResult", "run_training"]


def run_training(cfg: TrainConfig, on_epoch_end=None) -> TrainResult:
    """See ocx.adapters.train.trainer.run_training."""
    from ocx.adapters.train.trainer import run_training as run

    return run(cfg, on_epoch_end)
