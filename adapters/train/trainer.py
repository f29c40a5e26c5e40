"""The training loop: multipack batches -> stock causal LM -> C-RLFT loss -> DeepSpeed step.

Run it in one process (`ocx train`) or under a launcher, one process per device
(`torchrun --nproc_per_node N -m ocx.adapters.train ...`, `deepspeed --module ...`).
Every rank reads the whole dataset index and takes its own slice of each step from the
deterministic multipack schedule, so resuming needs only (epoch, step in epoch).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from ocx.adapters.train import checkpoint as ckpt
from ocx.adapters.train import resume
from ocx.adapters.train.batching import Batch, pack, pad
from ocx.adapters.train.config import TrainConfig, TrainResult
from ocx.adapters.train.engine import (device_type, init_distributed, load_ds_config, make_engine, make_optimizer,
                                       register_head_for_zero3)
from ocx.adapters.train.model import CRLFTModel, load_causal_lm, pick_attention
from ocx.adapters.train.progress import MetricsLog, TrainProgress, read_metrics
from ocx.adapters.train.schedule import auto_lr, cosine_with_warmup, family_lr_divisor
from ocx.harness.atomic import atomic_write_text
from ocx.harness.errors import InputError, InputProblem


@dataclass
class Position:
    """Where the loop is: the next step to run. Saved with every resumable state."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0


@dataclass
class Run:
    cfg: TrainConfig
    rank: int
    world: int
    data: object
    sampler: object
    lm: object
    engine: object
    lr: float
    total_steps: int
    warmup_steps: int
    tokenizer: Path
    """The data's tokenizer, exported into every checkpoint."""


EpochCallback = Callable[[int, Path], None]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stops (`ocx train` exits 1)."""


def run_training(cfg: TrainConfig, on_epoch_end: EpochCallback | None = None) -> TrainResult:
    """Train as configured; returns the checkpoints written. Also the body of `ocx train`.

    Everything that can be checked without the model is checked first (InputError, exit 2):
    settings, the DeepSpeed config, the data's tokenizer against the base's, and on `resume`
    the world size, dataset and settings against the saved run.
    `on_epoch_end(epoch, checkpoint)` runs on rank 0 after each epoch's checkpoint is written
    (recipes evaluate it there); the other ranks wait for it.
    """
    from ocx.harness.data.dataset import load_tokenized

    cfg.validate()
    _check_out_dir(cfg)
    rank, world = init_distributed()
    data = load_tokenized(cfg.data)
    tokenizer = ckpt.data_tokenizer(cfg.model, cfg.tokenizer, data.manifest, data=cfg.data)
    ds_config = load_ds_config(cfg.zero_stage, cfg.deepspeed_config, grad_clip=cfg.grad_clip,
                               bf16=device_type() == "cuda")
    fingerprint = resume.fingerprint(cfg.to_json(), world, data.manifest, ds_config)
    if cfg.resume:
        forced = resume.check_resume(cfg.out, fingerprint, force=cfg.force_resume)
        if forced and rank == 0:
            print("ocx train: --force-resume, continuing although " + "; ".join(forced), flush=True)
    run = _setup(cfg, rank, world, data, ds_config, tokenizer)
    position = Position()
    if cfg.resume:
        client = ckpt.load_state(run.engine, cfg.out)
        if client is not None:
            position = Position(**client["position"])
    if rank == 0:
        _write_run_info(run, fingerprint)
    return _loop(run, position, on_epoch_end)


def _check_out_dir(cfg: TrainConfig) -> None:
    has_run = (Path(cfg.out) / ckpt.STATE_DIR).exists() or bool(ckpt.completed_checkpoints(cfg.out))
    if has_run and not cfg.resume:
        raise InputError(InputProblem("ocx train", None, "--out",
                                      f"{cfg.out} already holds a run; pass --resume to continue it or choose another --out"))


def _setup(cfg: TrainConfig, rank: int, world: int, data, ds_config: dict, tokenizer: Path) -> Run:
    from ocx.harness.data import MultipackSampler, SequenceTooLongError

    torch.manual_seed(cfg.seed)
    try:
        sampler = MultipackSampler(data.lengths, cfg.batch_max_len, world, cfg.seed, too_long=cfg.too_long)
    except SequenceTooLongError as exc:
        raise InputError(InputProblem(str(cfg.data), None, "--batch-max-len", str(exc))) from None
    total = sum(sampler.num_steps(e) for e in range(cfg.epochs))
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    on_gpu = device_type() == "cuda"
    lm = load_causal_lm(cfg.model, dtype=torch.bfloat16 if on_gpu else torch.float32,
                        attention=pick_attention(device_type(), cfg.packing), gradient_checkpointing=cfg.gradient_checkpointing)
    lr = cfg.lr if cfg.lr is not None else _auto_lr(cfg, data.manifest, lm.config, world)
    module = CRLFTModel(lm, cfg.loss_chunk_size)
    optimizer = make_optimizer(module, lr=lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                               weight_decay=cfg.weight_decay)
    engine, _ = make_engine(module, optimizer, ds_config)
    if ds_config["zero_optimization"]["stage"] == 3:
        register_head_for_zero3(engine.module, lm)
    return Run(cfg, rank, world, data, sampler, lm, engine, lr, total, round(cfg.lr_warmup_ratio * total), tokenizer)


def _auto_lr(cfg: TrainConfig, manifest: dict, config, world: int) -> float:
    counts = manifest.get("counts", {})
    ratio = counts.get("supervised_tokens", 0) / max(1, counts.get("tokens", 0))
    divisor = family_lr_divisor(config.model_type, config.vocab_size)
    return auto_lr(batch_max_len=cfg.batch_max_len, world_size=world, supervised_ratio=ratio, divisor=divisor)


def _write_run_info(run: Run, fingerprint: dict) -> None:
    info = {"fingerprint": fingerprint, "config": run.cfg.to_json(), "lr": run.lr, "world_size": run.world,
            "total_steps": run.total_steps, "warmup_steps": run.warmup_steps, "zero_stage": run.engine.zero_optimization_stage(),
            "attention": run.lm.config._attn_implementation, "device": device_type()}
    Path(run.cfg.out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(run.cfg.out) / resume.RUN_INFO, json.dumps(info, indent=2) + "\n")


def _loop(run: Run, pos: Position, on_epoch_end: EpochCallback | None) -> TrainResult:
    cfg, metrics = run.cfg, None
    if run.rank == 0:
        metrics = MetricsLog(cfg.out, pos.global_step if cfg.resume else None)
    start, supervised, last_loss = time.perf_counter(), 0, None
    with TrainProgress(run.total_steps, pos.global_step, cfg.progress and run.rank == 0) as bar:
        while pos.epoch < cfg.epochs and pos.global_step < run.total_steps:
            steps = run.sampler.batches(pos.epoch)
            while pos.step_in_epoch < len(steps) and pos.global_step < run.total_steps:
                record = _train_step(run, steps[pos.step_in_epoch][run.rank], pos)
                supervised += record["supervised_tokens"]
                last_loss = record["loss"]
                record["time"] = round(time.perf_counter() - start, 4)
                if metrics is not None:
                    metrics.write(record)
                bar.update(record, supervised / max(1e-9, time.perf_counter() - start))
                pos.step_in_epoch += 1
                pos.global_step += 1
                if cfg.save_every_steps and pos.global_step % cfg.save_every_steps == 0 \
                        and pos.step_in_epoch < len(steps):
                    ckpt.save_state(run.engine, cfg.out, pos.global_step, _client_state(run, pos))
            if pos.step_in_epoch >= len(steps):
                _end_epoch(run, pos, on_epoch_end, metrics, bar)
            else:  # stopped by max_steps inside an epoch: keep it resumable
                ckpt.save_state(run.engine, cfg.out, pos.global_step, _client_state(run, pos))
    if metrics is not None:
        metrics.close()
    elapsed = time.perf_counter() - start
    return TrainResult(Path(cfg.out), ckpt.completed_checkpoints(cfg.out), pos.global_step, last_loss, run.lr,
                       Path(cfg.out) / "metrics.jsonl", supervised / elapsed if elapsed > 0 else 0.0)


def _client_state(run: Run, pos: Position) -> dict:
    return {"position": vars(pos).copy(), "lr": run.lr, "world_size": run.world}


def _epoch_summary(run: Run, epoch: int, global_step: int) -> dict:
    """What the epoch trained, summed from its step lines (those before a resume included)."""
    steps = [m for m in read_metrics(run.cfg.out) if m["epoch"] == epoch]
    totals = {k: sum(m[k] for m in steps) for k in ("sequences", "tokens", "supervised_tokens")}
    return {"kind": "epoch", "step": global_step, "epoch": epoch, "steps": len(steps), **totals,
            "dataset_sequences": len(run.data), "truncated": run.sampler.num_truncated}


def _end_epoch(run: Run, pos: Position, on_epoch_end: EpochCallback | None, metrics, bar) -> None:
    """Write epoch_<n>/ (HF folder), then the resumable state pointing at the next epoch."""
    finished = pos.epoch
    stage = run.engine.zero_optimization_stage()
    state = ckpt.full_state_dict(run.engine, stage)
    if run.rank == 0:
        summary = _epoch_summary(run, finished, pos.global_step)
        metrics.write(summary)
        bar.log(f"epoch {finished}: {summary['sequences']:,} of {summary['dataset_sequences']:,} sequences, "
                f"{summary['tokens']:,} tokens ({summary['supervised_tokens']:,} supervised) in {summary['steps']} "
                f"steps; {summary['truncated']:,} truncated to --batch-max-len")
        meta = {"epoch": finished, "global_step": pos.global_step, "lr": run.lr, "world_size": run.world,
                "trained": {k: summary[k] for k in ("sequences", "tokens", "supervised_tokens", "truncated")},
                "config": run.cfg.to_json(), **run.cfg.extra_metadata}
        ckpt.write_hf_checkpoint(ckpt.epoch_dir(run.cfg.out, finished), run.lm, state, tokenizer=run.tokenizer,
                                 manifest=run.data.manifest, metadata=meta)
    dist.barrier()
    pos.epoch, pos.step_in_epoch = finished + 1, 0
    ckpt.save_state(run.engine, run.cfg.out, pos.global_step, _client_state(run, pos))
    # After the state is saved, so a run killed during the callback does not train this epoch again.
    if on_epoch_end is not None:
        if run.rank == 0:
            on_epoch_end(finished, ckpt.epoch_dir(run.cfg.out, finished))
        dist.barrier()


def _collate(run: Run, indices: list[int]) -> Batch:
    rows = [run.data[i] for i in indices]
    max_len = run.cfg.batch_max_len  # only cuts sequences the sampler truncated
    return pack(rows, max_len) if run.cfg.packing else pad(rows, max_len)


def _train_step(run: Run, indices: list[int], pos: Position) -> dict:
    """One optimizer step; the loss is normalised by the weight sum of the whole global batch.

    A rank with no sequences in this step (the final step of an epoch may be partly filled)
    runs a one-token, zero-weight batch, so every rank joins the same collectives.
    """
    engine, batch = run.engine, _collate(run, indices).to(run.engine.device)
    totals = torch.tensor([float(batch.weights.sum()), batch.tokens, batch.supervised, batch.slots, batch.sequences],
                          dtype=torch.float64)
    dist.all_reduce(totals)  # every rank divides by the same global weight sum
    weight_sum = float(totals[0])
    loss_sum = engine(labels=batch.labels, weights=batch.weights, **batch.inputs)
    logged = loss_sum.detach().to(torch.float64).cpu().reshape(1)
    dist.all_reduce(logged)  # the same value on every rank, so all of them stop together
    loss = float(logged[0]) / weight_sum if weight_sum else 0.0
    if not math.isfinite(loss):
        raise TrainingDiverged(f"the loss is {loss} at step {pos.global_step + 1} (epoch {pos.epoch}); stopping "
                               f"before the update. Lower the learning rate (peak {run.lr:.3g}) or check the data; "
                               "the last saved state and epoch checkpoints are untouched")
    # DeepSpeed averages gradients over ranks, hence * world: the result is
    # sum over all ranks of w * CE / global weight sum, as OpenChat's loss.
    engine.backward(loss_sum * (run.world / weight_sum if weight_sum > 0 else 0.0))
    lr = run.lr * cosine_with_warmup(pos.global_step + 1, warmup_steps=run.warmup_steps,
                                     total_steps=run.total_steps, min_ratio=run.cfg.lr_min_ratio)
    for group in engine.optimizer.param_groups:
        group["lr"] = lr
    engine.step()
    tokens, slots = int(totals[1]), int(totals[3])
    capacity = run.world * run.cfg.batch_max_len if run.cfg.packing else slots
    return {"kind": "step", "step": pos.global_step + 1, "epoch": pos.epoch, "loss": loss, "lr": lr,
            "tokens": tokens, "supervised_tokens": int(totals[2]), "sequences": int(totals[4]), "slots": slots,
            "packing_efficiency": tokens / capacity if capacity else 0.0}
