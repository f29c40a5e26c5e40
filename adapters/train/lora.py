"""LoRA and QLoRA through peft: settings checks, wrapping the base model, adapter and merged
exports.

`ocx train --lora-rank R` freezes the base model and trains peft LoRA adapters (default: every
linear layer of the decoder, peft's "all-linear"; the LM head and embeddings stay frozen);
`--quantize 4bit` loads the frozen base in 4-bit NF4 through bitsandbytes first (QLoRA, GPU
only). The packed C-RLFT loss, DeepSpeed ZeRO-2 and resume are unchanged: the optimizer simply
holds the adapter's parameters, and DeepSpeed's state saves only what is trained. Plain LoRA
layers train through ocx's fused forward (lora_fused.py: peft's values and gradients, fewer
passes over the activations).

Importing this module needs neither torch nor peft (the CLI checks settings with it). The
LoRA settings themselves (flags, ranges, recipe keys under `train.lora`) are TrainConfig fields.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ocx.harness.errors import InputError, InputProblem
from ocx.harness.settings import Problem

ALL_LINEAR = "all-linear"
"""peft's name for every linear layer except the output head."""
LR_FACTOR = 10.0
"""The automatic LR is multiplied by this for LoRA: the best LoRA LR is consistently about 10x the
best full fine-tuning LR (Schulman et al., "LoRA Without Regret", Thinking Machines, 2025)."""
QUANTIZE = ("4bit",)
HEAD_MESSAGE = (
    "the LM head cannot carry an adapter: ocx applies the head inside its chunked C-RLFT loss "
    "(adapt the decoder's layers, e.g. all-linear)"
)
ADAPTER_DIR = "adapter"
"""With --merge-lora the epoch folder is the merged model, and the adapter goes one level down
(transformers would read an adapter_config.json at the top as "load the base, then this")."""


@dataclass(frozen=True)
class LoraSpec:
    """What `load_causal_lm` needs to build a trainable LoRA (or QLoRA) model."""

    rank: int
    alpha: float
    dropout: float
    target_modules: list[str] | str
    quantize: str | None = None


def spec_from(cfg) -> LoraSpec | None:
    """The LoRA settings of a TrainConfig, or None for full fine-tuning."""
    if not cfg.lora_rank:
        return None
    return LoraSpec(
        rank=cfg.lora_rank,
        alpha=float(cfg.lora_alpha or 2 * cfg.lora_rank),
        dropout=cfg.lora_dropout,
        target_modules=target_modules(cfg.lora_target_modules),
        quantize=cfg.quantize,
    )


def target_modules(names: list[str] | None) -> list[str] | str:
    """Module names for peft: None or ["all-linear"] mean every linear layer but the head."""
    if not names or list(names) == [ALL_LINEAR]:
        return ALL_LINEAR
    return list(names)


def settings_problems(cfg) -> list[Problem]:
    """LoRA/QLoRA settings that depend on each other (their ranges are TrainConfig's rules);
    torch is imported only for `quantize`."""
    out: list[Problem] = []
    rank, names = cfg.lora_rank, cfg.lora_target_modules
    if isinstance(names, list) and any(str(n).split(".")[-1] == "lm_head" for n in names):
        out.append(Problem("lora_target_modules", HEAD_MESSAGE))
    if not rank:
        given = {
            "lora_alpha": cfg.lora_alpha is not None,
            "lora_dropout": bool(cfg.lora_dropout),
            "lora_target_modules": names is not None,
            "merge_lora": cfg.merge_lora,
        }
        for name in (name for name, on in given.items() if on):
            out.append(Problem(name, "applies to LoRA training only; give {lora_rank} too"))
    if rank and cfg.zero_stage == 3:
        out.append(
            Problem(
                "zero_stage",
                "LoRA trains with ZeRO-2 (the frozen base is not partitioned); "
                "set {zero_stage} to 2",
            )
        )
    if cfg.quantize is not None:
        out += [Problem("quantize", m) for m in _quantize_problems(cfg.quantize, rank)]
    return out


def _quantize_problems(quantize: str, rank: int | None) -> list[str]:
    if quantize not in QUANTIZE:
        return []  # the setting's rule reports it
    if not rank:
        return [
            "a 4-bit base cannot be trained itself (QLoRA trains a LoRA adapter on it); "
            "give {lora_rank}"
        ]
    import torch

    if not torch.cuda.is_available():
        return [
            "4-bit quantization (bitsandbytes NF4) needs a CUDA GPU, and none is available; "
            "train a LoRA adapter on the full-precision base instead (drop {quantize})"
        ]
    if importlib.util.find_spec("bitsandbytes") is None:
        return ["needs the bitsandbytes package: pip install 'ocx[qlora]'"]
    return []


def quantization_config(dtype):
    """QLoRA's base: NF4 with double quantization, computing in the training dtype."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def wrap(lm, spec: LoraSpec, *, base: str, gradient_checkpointing: bool):
    """The peft model around `lm` (modified in place): base frozen, adapters trainable."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from peft.tuners.lora import LoraLayer

    if spec.quantize:
        # Norms and embeddings to fp32 for stable training on the quantized base.
        lm = prepare_model_for_kbit_training(
            lm,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=spec.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    # Adapters in the base's dtype: DeepSpeed's bf16 engine expects one dtype for what it trains.
    model = get_peft_model(lm, config, autocast_adapter_dtype=False)
    if isinstance(model.get_output_embeddings(), LoraLayer):
        raise InputError(InputProblem("ocx train", None, "--lora-target-modules", HEAD_MESSAGE))
    model.peft_config["default"].base_model_name_or_path = base
    # Same values and gradients as peft's forward, without its activation-sized temporaries.
    from ocx.adapters.train import lora_fused

    lora_fused.install(model)
    return model


def is_peft(lm) -> bool:
    return importlib.util.find_spec("peft") is not None and _is_peft_model(lm)


def _is_peft_model(lm) -> bool:
    from peft import PeftModel

    return isinstance(lm, PeftModel)


def save_adapter(lm, folder: Path, state: dict) -> None:
    """adapter_model.safetensors + adapter_config.json (base_model_name_or_path: the base given)."""
    lm.save_pretrained(folder, state_dict=state, safe_serialization=True)
    (Path(folder) / "README.md").unlink(missing_ok=True)  # peft's empty model-card template


def merged_state_dict(lm) -> dict:
    """The base model's weights with every adapter folded in (W + B @ A * alpha / r), HF names,
    on CPU.

    Computed from the live modules (under ZeRO-2 every rank holds the full weights) without
    touching them, so training continues unchanged; a 4-bit base is dequantized.
    """
    import torch
    from peft.tuners.lora import LoraLayer
    from peft.utils.integrations import dequantize_module_weight

    base = lm.get_base_model()
    merged: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, module in base.named_modules():
            if isinstance(module, LoraLayer):
                weight = dequantize_module_weight(module.get_base_layer()).clone()
                for adapter in module.active_adapters:
                    weight += module.get_delta_weight(adapter).to(weight.dtype)
                merged[f"{name}.weight"] = weight.to("cpu")
                bias = getattr(module.get_base_layer(), "bias", None)
                if bias is not None:
                    merged[f"{name}.bias"] = bias.detach().to("cpu")
            elif _is_4bit(module):
                merged[f"{name}.weight"] = dequantize_module_weight(module).to("cpu")
                if module.bias is not None:
                    merged[f"{name}.bias"] = module.bias.detach().to("cpu")
        for key, tensor in base.state_dict().items():
            if ".base_layer." in key or ".lora_" in key or _quant_state_key(key):
                continue
            merged.setdefault(key, tensor.detach().to("cpu"))
    return merged


def _is_4bit(module) -> bool:
    return type(module).__name__ == "Linear4bit"


def _quant_state_key(key: str) -> bool:
    # bitsandbytes stores a 4-bit layer's quantization state beside its packed weight.
    return any(part in key for part in (".absmax", ".quant_map", ".nested_", ".quant_state"))


def write_merged(lm, folder: Path) -> None:
    """A plain HF model (config.json + model.safetensors) that needs neither peft nor the base."""
    import copy

    base = lm.get_base_model()
    config = copy.deepcopy(base.config)
    for key in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, key):
            delattr(config, key)
    state = merged_state_dict(lm)
    # An empty model of the base's class to save through: the live one carries LoRA layers.
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config)
    plain.save_pretrained(folder, state_dict=state, safe_serialization=True)


def lr_factor(cfg) -> float:
    """Multiplier of the automatic LR: LR_FACTOR for LoRA, 1 for full fine-tuning."""
    return LR_FACTOR if cfg.lora_rank else 1.0
