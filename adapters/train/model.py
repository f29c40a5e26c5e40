"""A stock transformers causal LM wrapped with the C-RLFT loss (no forked model classes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from ocx.adapters.train import lora as lora_adapter
from ocx.adapters.train.batching import Batch
from ocx.adapters.train.lora import LoraSpec
from ocx.adapters.train.loss import supervised_loss_sum


def pick_attention(device_type: str, packing: bool = True) -> str:
    """flash-attention varlen on CUDA when installed; else SDPA: per sequence for packed rows
    (ocx_varlen_sdpa), stock masked SDPA for padded batches."""
    if device_type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    if packing:
        from ocx.adapters.train.attention import register

        return register()
    return "sdpa"


def load_causal_lm(
    model: str,
    *,
    dtype: torch.dtype,
    attention: str,
    gradient_checkpointing: bool,
    lora: LoraSpec | None = None,
):
    """The base model to train; with `lora`, a peft model (base frozen, 4-bit with quantize)."""
    from transformers import AutoModelForCausalLM

    extra = {}
    if lora is not None and lora.quantize:
        extra = {
            "quantization_config": lora_adapter.quantization_config(dtype),
            "device_map": {"": _device()},
        }
    lm = AutoModelForCausalLM.from_pretrained(
        model, dtype=dtype, attn_implementation=attention, **extra
    )
    # Packed rows are only split into their sequences when no KV cache is built.
    lm.config.use_cache = False
    if gradient_checkpointing:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora is not None:
        lm = lora_adapter.wrap(
            lm, lora, base=_base_location(model), gradient_checkpointing=gradient_checkpointing
        )
    return lm


def _device() -> str:
    # bitsandbytes quantizes while loading, on the GPU the rank trains on.
    return f"cuda:{torch.cuda.current_device()}"


def _base_location(model: str) -> str:
    """What adapter_config.json names as the base: an absolute folder, else the hub id as given."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


class CRLFTModel(torch.nn.Module):
    """Runs the base model, then the LM head + weighted cross-entropy on supervised rows only.

    forward returns sum_t w_t * CE_t over this micro-batch (fp32); the trainer divides by the
    global weight sum. The LM head is applied here rather than in `lm.forward`, which would
    build full-vocabulary logits for every position.
    """

    def __init__(self, lm, loss_chunk_size: int = 512):
        super().__init__()
        self.lm = lm
        self.loss_chunk_size = loss_chunk_size

    def forward(self, input_ids, labels, weights, position_ids=None, attention_mask=None, **varlen):
        # varlen: cu_seq_lens_q/k, max_length_q/k of a packed row, read by the flash-attention
        # and ocx_varlen_sdpa kernels (stock sdpa ignores them and uses position_ids).
        base = self.lm.get_decoder()
        out = base(
            input_ids=input_ids,
            position_ids=position_ids,
            attention_mask=attention_mask,
            use_cache=False,
            **varlen,
        )
        head = self.lm.get_output_embeddings().weight
        loss_sum, _ = supervised_loss_sum(
            out.last_hidden_state, head, labels, weights, self.loss_chunk_size
        )
        return loss_sum

    def loss_sum(self, batch: Batch) -> torch.Tensor:
        return self(labels=batch.labels, weights=batch.weights, **batch.inputs)
