"""Tiny random Llama checkpoints built from a config: no download, seconds on a CPU.

Tests, demos and the `tiny-crlft` recipe use them in place of a hub model.
"""

from __future__ import annotations

from pathlib import Path

from ocx.adapters.hf.checkpoint import write_ocx_metadata
from ocx.harness.atomic import atomic_dir
from ocx.harness.templates import get_template
from ocx.harness.templates.export import write_tokenizer_files
from ocx.harness.tokenizers import load_tokenizer

TINY_LLAMA = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)


def tiny_llama_config(vocab_size: int, bos_token_id: int | None, eos_token_id: int, **overrides):
    from transformers import LlamaConfig

    settings = {**TINY_LLAMA, **overrides}
    return LlamaConfig(
        vocab_size=vocab_size,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
        **settings,
    )


def build_tiny_checkpoint(
    out_dir: str | Path,
    tokenizer: str | Path,
    model_type: str = "openchat_3.5",
    *,
    seed: int = 0,
    overwrite: bool = False,
    **config_overrides,
) -> Path:
    """Write a random tiny Llama HF folder with the model type's tokenizer, template, ocx.json."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    template = get_template(model_type)
    tok = load_tokenizer(tokenizer, template.added_tokens)
    eot_id = tok.special_id(template.eot_token)
    bos_id = tok.special_id(tok.bos_token) if tok.bos_token else None
    config = tiny_llama_config(tok.vocab_size, bos_id, eot_id, **config_overrides)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        GenerationConfig(
            bos_token_id=bos_id, eos_token_id=eot_id, pad_token_id=eot_id
        ).save_pretrained(tmp)
        metadata = write_tokenizer_files(template, tokenizer, tmp)
        write_ocx_metadata(tmp, {**metadata, "source": "tiny-random-llama", "seed": seed})
    return Path(out_dir)
