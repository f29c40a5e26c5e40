"""Checkpoints: an HF model folder per epoch (atomic), and DeepSpeed state to resume from.

Layout under the output folder:
    epoch_<n>/   config.json, model.safetensors, tokenizer files + chat template, ocx.json
    state/       DeepSpeed checkpoint (weights, optimizer, client state = loop position);
                 its `latest` file is written last, so it always names a complete save
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ocx.adapters.hf.checkpoint import read_ocx_metadata, write_ocx_metadata
from ocx.harness.atomic import atomic_dir
from ocx.harness.templates import get_template
from ocx.harness.templates.export import write_tokenizer_files

STATE_DIR = "state"
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "generation_config.json")


def epoch_dir(out: Path, epoch: int) -> Path:
    return Path(out) / f"epoch_{epoch}"


def full_state_dict(engine, zero_stage: int) -> dict | None:
    """The full model weights on rank 0 (a collective under ZeRO-3: every rank must call it)."""
    if zero_stage == 3:
        state = engine._zero3_consolidated_16bit_state_dict()
    else:
        state = engine.module.state_dict()
    if engine.global_rank != 0:
        return None
    return {k: v.detach().to("cpu") for k, v in state.items()}


def _strip_wrapper(state: dict) -> dict:
    # CRLFTModel keeps the causal LM as `.lm`; HF names start below it.
    return {k.removeprefix("lm."): v for k, v in state.items()}


def write_hf_checkpoint(target: Path, lm, state: dict, *, model_src: str, manifest: dict, metadata: dict) -> Path:
    """Write the model, the tokenizer with the data's chat template, and ocx.json; atomic."""
    with atomic_dir(target, overwrite=True) as tmp:
        lm.save_pretrained(tmp, state_dict=_strip_wrapper(state), safe_serialization=True)
        tokenizer_meta = _write_tokenizer(tmp, model_src, manifest)
        write_ocx_metadata(tmp, {**tokenizer_meta, "training": metadata})
    return target


def _write_tokenizer(tmp: Path, model_src: str, manifest: dict) -> dict:
    """The tokenizer of the base model with the chat template the data was tokenized with."""
    src = Path(model_src)
    model_type = manifest.get("model_type") or read_ocx_metadata(src).get("model_type")
    if model_type and src.is_dir():
        meta = write_tokenizer_files(get_template(model_type), src, tmp)
        expected = manifest.get("tokenizer_sha256")
        if expected and expected != meta["tokenizer_sha256"]:
            raise ValueError(f"{src}: tokenizer sha256 {meta['tokenizer_sha256']} differs from the one the data "
                             f"was tokenized with ({expected}); train with the data's tokenizer")
        return meta
    # A hub id or a folder without a known model type: copy what the base model has.
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, tmp / name)
    return {k: manifest[k] for k in ("model_type", "template_sha256", "tokenizer_sha256") if k in manifest}


def save_state(engine, out: Path, global_step: int, client_state: dict) -> None:
    """Save everything needed to resume; older states are removed once the new one is complete."""
    import torch.distributed as dist

    state_dir = Path(out) / STATE_DIR
    tag = f"step_{global_step}"
    engine.save_checkpoint(str(state_dir), tag=tag, client_state=client_state)
    dist.barrier()
    if engine.global_rank == 0:
        for old in state_dir.iterdir():
            if old.is_dir() and old.name.startswith("step_") and old.name != tag:
                shutil.rmtree(old, ignore_errors=True)
    dist.barrier()


def load_state(engine, out: Path) -> dict | None:
    """Restore the last complete state; its client state (loop position), or None if there is none."""
    state_dir = Path(out) / STATE_DIR
    if not (state_dir / "latest").is_file():
        return None
    path, client_state = engine.load_checkpoint(str(state_dir), load_module_strict=True,
                                                load_optimizer_states=True, load_lr_scheduler_states=False)
    if path is None:
        raise RuntimeError(f"{state_dir}: could not load the DeepSpeed checkpoint named by 'latest'")
    return client_state


def completed_checkpoints(out: Path) -> list[Path]:
    found = [p for p in Path(out).glob("epoch_*") if p.is_dir() and (p / "config.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))

