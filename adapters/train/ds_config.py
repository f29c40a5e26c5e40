"""The DeepSpeed config of a run: ocx's shipped ZeRO-2/3 defaults with the user's file merged over.

Torch-free, so `ocx train` checks a user's file before loading anything heavy. What ocx's loop
relies on is forced: one packed row per rank and micro-step (micro batch 1), accumulation as
`--grad-accum-steps` says, and ocx's own optimizer and LR schedule (a file that brings its own
is refused).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ocx.harness.errors import InputError, InputProblem

SUPPORTED_STAGES = (2, 3)
OWNED_BY_OCX = ("optimizer", "scheduler")


def shipped_config(zero_stage: int) -> dict:
    """adapters/train/zero<stage>.json."""
    return json.loads(
        resources.files("ocx.adapters.train").joinpath(f"zero{zero_stage}.json").read_text()
    )


def merge(base: dict, override: dict) -> dict:
    """`override` over `base`, recursively for nested objects."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            merge(merged[key], value)
            if isinstance(value, dict) and isinstance(merged.get(key), dict)
            else value
        )
    return merged


def _read_user_config(path: Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            InputProblem(str(path), None, "--deepspeed-config", f"cannot read it: {exc}")
        ) from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            InputProblem(str(path), exc.lineno, None, f"invalid JSON: {exc.msg}")
        ) from None
    if not isinstance(config, dict):
        raise InputError(
            InputProblem(str(path), 1, None, f"must be a JSON object, got {type(config).__name__}")
        )
    return config


def _user_stage(path: Path, config: dict) -> int | None:
    """The ZeRO stage the user's file asks for, or None; an InputError if it is not usable."""
    zero = config.get("zero_optimization")
    if zero is None:
        return None
    if not isinstance(zero, dict):
        raise InputError(
            InputProblem(
                str(path),
                None,
                "zero_optimization",
                f"must be a JSON object, got {type(zero).__name__}",
            )
        )
    stage = zero.get("stage")
    if stage is None:
        return None
    if isinstance(stage, bool) or stage not in SUPPORTED_STAGES:
        raise InputError(
            InputProblem(
                str(path),
                None,
                "zero_optimization.stage",
                f"ocx trains with ZeRO stage 2 or 3, got {stage!r}",
            )
        )
    return int(stage)


def build_ds_config(
    zero_stage: int,
    user_config: Path | None,
    *,
    grad_clip: float,
    bf16: bool,
    grad_accum_steps: int = 1,
) -> dict:
    """ocx's zero<stage>.json, the user's file merged over it, then what the loop needs forced.

    The stage comes from the user's `zero_optimization.stage` when the file sets it (its
    defaults are then that stage's), else from `zero_stage` (`--zero-stage`). Precision follows
    the device (bf16 on GPU, fp32 on CPU) unless the file sets `bf16` or `fp16`.
    `gradient_accumulation_steps` is always `grad_accum_steps` (a file's own value is replaced):
    the trainer marks the accumulation boundary itself and scales the loss by the global weight
    sum, never by DeepSpeed's 1/N (see trainer._train_step).
    """
    if zero_stage not in SUPPORTED_STAGES:
        raise InputError(
            InputProblem("ocx train", None, "--zero-stage", f"must be 2 or 3, got {zero_stage!r}")
        )
    user = _read_user_config(user_config) if user_config is not None else {}
    if user:
        owned = [key for key in OWNED_BY_OCX if key in user]
        if owned:
            raise InputError(
                InputProblem(
                    str(user_config),
                    None,
                    owned[0],
                    "ocx sets the optimizer (AdamW) and LR schedule itself; remove this "
                    "section (use --lr, --weight-decay, --lr-warmup-ratio, ...)",
                )
            )
        zero_stage = _user_stage(user_config, user) or zero_stage
    config = merge(shipped_config(zero_stage), user)
    config["train_micro_batch_size_per_gpu"] = 1
    config["gradient_accumulation_steps"] = grad_accum_steps
    config.pop("train_batch_size", None)
    if "gradient_clipping" not in user:
        config["gradient_clipping"] = grad_clip
    if "bf16" not in user and "fp16" not in user:
        config["bf16"] = {"enabled": bf16}
    return config
