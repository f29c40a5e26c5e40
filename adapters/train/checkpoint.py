"""Checkpoints: an HF model folder per epoch (atomic), and DeepSpeed state to resume from.

Layout under the output folder:
    epoch_<n>/   config.json, model.safetensors, the data's tokenizer + chat template, ocx.json
                 LoRA: adapter_model.safetensors + adapter_config.json instead of the model;
                 with --merge-lora the merged model, and the adapter in epoch_<n>/adapter/
    state/       DeepSpeed checkpoint (weights, optimizer, client state = loop position);
                 its `latest` file is written last, so it always names a complete save
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ocx.adapters.hf.checkpoint import write_ocx_metadata
from ocx.adapters.train import lora
from ocx.harness.atomic import atomic_dir
from ocx.harness.errors import InputError, InputProblem
from ocx.harness.templates import get_template
from ocx.harness.templates.export import write_tokenizer_files

STATE_DIR = "state"


def epoch_dir(out: Path, epoch: int) -> Path:
    return Path(out) / f"epoch_{epoch}"


def full_state_dict(engine, zero_stage: int) -> dict | None:
    """The full model weights on rank 0 (a collective under ZeRO-3: every rank must call it).

    For a LoRA run only the adapter's weights (peft's names): the base is frozen, and a merged
    model is computed from the live modules when written (see lora.merged_state_dict).
    """
    if lora.is_peft(getattr(engine.module, "lm", None)):
        state = {k: v for k, v in engine.module.state_dict().items() if ".lora_" in k}
    elif zero_stage == 3:
        state = engine._zero3_consolidated_16bit_state_dict()
    else:
        state = engine.module.state_dict()
    if engine.global_rank != 0:
        return None
    return {k: v.detach().to("cpu") for k, v in state.items()}


def _strip_wrapper(state: dict) -> dict:
    # CRLFTModel keeps the causal LM as `.lm`; HF names start below it.
    return {k.removeprefix("lm."): v for k, v in state.items()}


def write_hf_checkpoint(
    target: Path,
    lm,
    state: dict,
    *,
    tokenizer: Path,
    manifest: dict,
    metadata: dict,
    merge_lora: bool = False,
) -> Path:
    """Write the model, the data's tokenizer with its chat template, and ocx.json; atomic.

    `tokenizer` is the local tokenizer the data was tokenized with (see `data_tokenizer`), so
    the folder is a complete model whatever the base was: a folder, a hub id or `tiny`.
    A LoRA run writes the adapter (loadable with its base: transformers reads the base's
    location from adapter_config.json), or with `merge_lora` the merged model and the adapter
    in `adapter/`.
    """
    with atomic_dir(target, overwrite=True) as tmp:
        if lora.is_peft(lm):
            if merge_lora:
                lora.write_merged(lm, tmp)
            lora.save_adapter(
                lm, tmp / lora.ADAPTER_DIR if merge_lora else tmp, _strip_wrapper(state)
            )
        else:
            lm.save_pretrained(tmp, state_dict=_strip_wrapper(state), safe_serialization=True)
        tokenizer_meta = write_tokenizer_files(get_template(manifest["model_type"]), tokenizer, tmp)
        write_ocx_metadata(tmp, {**tokenizer_meta, "training": metadata})
    return target


def data_tokenizer(model: str, tokenizer: str | None, manifest: dict, *, data: Path) -> Path:
    """The local tokenizer the data was tokenized with: `tokenizer`, else the base model's.

    Checked before any training: its sha256 (with the template's added tokens) must equal the
    dataset manifest's, or the checkpoints would ship a tokenizer other than the one trained.
    """
    from ocx.adapters.hf.checkpoint import local_model_dir
    from ocx.harness.tokenizers import load_tokenizer

    flag = "--tokenizer" if tokenizer else "--model"
    model_type = manifest.get("model_type")
    if not model_type:
        raise InputError(
            InputProblem(
                str(Path(data) / "manifest.json"),
                None,
                "model_type",
                "missing; re-tokenize with `ocx data tokenize`",
            )
        )
    try:
        source = Path(tokenizer) if tokenizer else local_model_dir(model, tokenizer_only=True)
        tok = load_tokenizer(source, get_template(model_type).added_tokens)
    except (ValueError, OSError) as exc:
        raise InputError(
            InputProblem("ocx train", None, flag, f"cannot load the tokenizer: {exc}")
        ) from None
    expected = manifest.get("tokenizer_sha256")
    if expected and tok.sha256 != expected:
        raise InputError(
            InputProblem(
                "ocx train",
                None,
                flag,
                f"{source}: tokenizer sha256 {tok.sha256[:12]}… differs from the one "
                f"{data} was tokenized with ({expected[:12]}…); train with the data's "
                "tokenizer (--tokenizer) or re-tokenize the data with this one",
            )
        )
    return source


def save_state(engine, out: Path, global_step: int, client_state: dict) -> None:
    """Save everything needed to resume; older states are removed once the new one is complete."""
    import torch.distributed as dist

    state_dir = Path(out) / STATE_DIR
    tag = f"step_{global_step}"
    # Frozen weights (a LoRA run's base) are not saved: the resumed run loads them from --model.
    engine.save_checkpoint(
        str(state_dir), tag=tag, client_state=client_state, exclude_frozen_parameters=True
    )
    dist.barrier()
    if engine.global_rank == 0:
        for old in state_dir.iterdir():
            if old.is_dir() and old.name.startswith("step_") and old.name != tag:
                shutil.rmtree(old, ignore_errors=True)
    dist.barrier()


def load_state(engine, out: Path) -> dict | None:
    """Restore the last complete state; its client state (loop position), or None if none."""
    state_dir = Path(out) / STATE_DIR
    if not (state_dir / "latest").is_file():
        return None
    strict = all(
        p.requires_grad for p in engine.module.parameters()
    )  # else the frozen base is absent
    path, client_state = engine.load_checkpoint(
        str(state_dir),
        load_module_strict=strict,
        load_optimizer_states=True,
        load_lr_scheduler_states=False,
    )
    if path is None:
        raise RuntimeError(
            f"{state_dir}: could not load the DeepSpeed checkpoint named by 'latest'"
        )
    return client_state


def completed_checkpoints(out: Path) -> list[Path]:
    found = [
        p
        for p in Path(out).glob("epoch_*")
        if p.is_dir() and ((p / "config.json").is_file() or (p / "adapter_config.json").is_file())
    ]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))
