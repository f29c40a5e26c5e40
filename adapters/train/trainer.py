"""The training loop: multipack batches -> stock causal LM -> C-RLFT loss -> DeepSpeed step.

Run it in one process (`ocx train`) or under a launcher, one process per device
(`torchrun --nproc_per_node N -m ocx.adapters.train ...`, `deepspeed --module ...`).
Every rank reads the whole dataset index and takes its own slice of each step from the
deterministic multipack schedule, so resuming needs only (epoch, step in epoch).
With `--grad-accum-steps N` one optimizer step is N consecutive multipack steps (micro-steps);
an epoch's last optimizer step may have fewer.
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
from ocx.adapters.train import lora, resume
from ocx.adapters.train.batching import Batch, pack, pad
from ocx.adapters.train.config import TrainConfig, TrainResult
from ocx.adapters.train.ds_config import build_ds_config
from ocx.adapters.train.engine import (
    device_type,
    init_distributed,
    make_engine,
    make_optimizer,
    register_head_for_zero3,
)
from ocx.adapters.train.model import CRLFTModel, load_causal_lm, pick_attention
from ocx.adapters.train.progress import MetricsLog, TrainProgress, read_metrics
from ocx.adapters.train.schedule import (
    auto_lr,
    cosine_with_warmup,
    family_lr_divisor,
    optimizer_steps,
)
from ocx.adapters.train.tracking import Tracker
from ocx.adapters.train.validation import (
    Subset,
    load_val_data,
    split_by_conversation,
    validation_loss,
)
from ocx.harness.atomic import atomic_write_text
from ocx.harness.errors import InputError, InputProblem


@dataclass
class Position:
    """Where the loop is: the next step to run. Saved with every resumable state."""

    epoch: int = 0
    step_in_epoch: int = 0
    """Multipack steps (micro-steps) of this epoch already trained."""
    global_step: int = 0
    """Optimizer steps trained in total."""


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
    val_data: object = None
    val_sampler: object = None
    last_val_loss: float | None = None


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
    ds_config = build_ds_config(
        cfg.zero_stage,
        cfg.deepspeed_config,
        grad_clip=cfg.grad_clip,
        bf16=device_type() == "cuda",
        grad_accum_steps=cfg.grad_accum_steps,
    )
    fingerprint = resume.fingerprint(cfg.to_json(), world, data.manifest, ds_config)
    if cfg.resume:
        forced = resume.check_resume(cfg.out, fingerprint, force=cfg.force_resume)
        if forced and rank == 0:
            print("ocx train: --force-resume, continuing although " + "; ".join(forced), flush=True)
    train_data, val_data = _split(cfg, data)
    run = _setup(cfg, rank, world, train_data, ds_config, tokenizer, val_data)
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
        raise InputError(
            InputProblem(
                "ocx train",
                None,
                "--out",
                f"{cfg.out} already holds a run; "
                "pass --resume to continue it or choose another --out",
            )
        )


def _split(cfg: TrainConfig, data) -> tuple[object, object]:
    """(training rows, validation rows or None): --val-fraction holds out conversations of the
    data before packing; --val-data reads a dataset with the same tokenizer."""
    if cfg.val_data is not None:
        return data, load_val_data(cfg.val_data, data.manifest)
    if cfg.val_fraction:
        kept, held = split_by_conversation(data, cfg.val_fraction, cfg.seed)
        if not len(held):
            raise InputError(
                InputProblem(
                    str(cfg.data),
                    None,
                    "--val-fraction",
                    f"cannot hold out conversations from {len(data)} (fewer than 2 distinct); "
                    "use --val-data DIR",
                )
            )
        return Subset(data, kept), Subset(data, held)
    return data, None


def _sampler(cfg: TrainConfig, lengths, world: int, source, flag: str):
    from ocx.harness.data import MultipackSampler, SequenceTooLongError

    try:
        return MultipackSampler(lengths, cfg.batch_max_len, world, cfg.seed, too_long=cfg.too_long)
    except SequenceTooLongError as exc:
        raise InputError(InputProblem(str(source), None, flag, str(exc))) from None


def _setup(
    cfg: TrainConfig, rank: int, world: int, data, ds_config: dict, tokenizer: Path, val_data=None
) -> Run:
    torch.manual_seed(cfg.seed)
    sampler = _sampler(cfg, data.lengths, world, cfg.data, "--batch-max-len")
    val_sampler = (
        None
        if val_data is None
        else _sampler(cfg, val_data.lengths, world, cfg.val_data or cfg.data, "--batch-max-len")
    )
    total = sum(
        optimizer_steps(sampler.num_steps(e), cfg.grad_accum_steps) for e in range(cfg.epochs)
    )
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    on_gpu = device_type() == "cuda"
    lm = load_causal_lm(
        cfg.model,
        dtype=torch.bfloat16 if on_gpu else torch.float32,
        attention=pick_attention(device_type(), cfg.packing),
        gradient_checkpointing=cfg.gradient_checkpointing,
        lora=lora.spec_from(cfg),
    )
    lr = (
        cfg.lr
        if cfg.lr is not None
        else _auto_lr(cfg, data.manifest, lm.config, world) * lora.lr_factor(cfg)
    )
    module = CRLFTModel(lm, cfg.loss_chunk_size)
    optimizer = make_optimizer(
        module, lr=lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay
    )
    engine, _ = make_engine(module, optimizer, ds_config)
    if ds_config["zero_optimization"]["stage"] == 3:
        register_head_for_zero3(engine.module, lm)
    return Run(
        cfg,
        rank,
        world,
        data,
        sampler,
        lm,
        engine,
        lr,
        total,
        round(cfg.lr_warmup_ratio * total),
        tokenizer,
        val_data,
        val_sampler,
    )


def _auto_lr(cfg: TrainConfig, manifest: dict, config, world: int) -> float:
    counts = manifest.get("counts", {})
    ratio = counts.get("supervised_tokens", 0) / max(1, counts.get("tokens", 0))
    divisor = family_lr_divisor(config.model_type, config.vocab_size)
    # Tokens per optimizer step: every micro-step of every rank.
    return auto_lr(
        batch_max_len=cfg.batch_max_len * cfg.grad_accum_steps,
        world_size=world,
        supervised_ratio=ratio,
        divisor=divisor,
    )


def _write_run_info(run: Run, fingerprint: dict) -> None:
    info = {
        "fingerprint": fingerprint,
        "config": run.cfg.to_json(),
        "lr": run.lr,
        "world_size": run.world,
        "total_steps": run.total_steps,
        "warmup_steps": run.warmup_steps,
        "zero_stage": run.engine.zero_optimization_stage(),
        "attention": run.lm.config._attn_implementation,
        "device": device_type(),
    }
    Path(run.cfg.out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(run.cfg.out) / resume.RUN_INFO, json.dumps(info, indent=2) + "\n")


def _loop(run: Run, pos: Position, on_epoch_end: EpochCallback | None) -> TrainResult:
    cfg, metrics = run.cfg, None
    if run.rank == 0:
        metrics = MetricsLog(cfg.out, pos.global_step if cfg.resume else None)
    start, supervised, last_loss = time.perf_counter(), 0, None
    tracker = Tracker(
        cfg.out,
        cfg.report_to if run.rank == 0 else [],
        cfg.to_json(),
        pos.global_step if cfg.resume else None,
    )
    with (
        tracker,
        TrainProgress(run.total_steps, pos.global_step, cfg.progress and run.rank == 0) as bar,
    ):
        while pos.epoch < cfg.epochs and pos.global_step < run.total_steps:
            steps = run.sampler.batches(pos.epoch)
            while pos.step_in_epoch < len(steps) and pos.global_step < run.total_steps:
                group = steps[pos.step_in_epoch : pos.step_in_epoch + cfg.grad_accum_steps]
                step_start = time.perf_counter()
                record = _train_step(run, [micro[run.rank] for micro in group], pos)
                _add_rates(record, time.perf_counter() - step_start)
                supervised += record["supervised_tokens"]
                last_loss = record["loss"]
                record["time"] = round(time.perf_counter() - start, 4)
                if metrics is not None:
                    metrics.write(record)
                tracker.log_step(record)
                bar.update(record, supervised / max(1e-9, time.perf_counter() - start))
                pos.step_in_epoch += len(group)
                pos.global_step += 1
                if (
                    cfg.val_every_steps
                    and pos.global_step % cfg.val_every_steps == 0
                    and pos.step_in_epoch < len(steps)
                ):  # an epoch's end validates anyway
                    _validate(run, pos.epoch, pos.global_step, metrics, tracker, bar)
                if (
                    cfg.save_every_steps
                    and pos.global_step % cfg.save_every_steps == 0
                    and pos.step_in_epoch < len(steps)
                ):
                    ckpt.save_state(run.engine, cfg.out, pos.global_step, _client_state(run, pos))
            if pos.step_in_epoch >= len(steps):
                _end_epoch(run, pos, on_epoch_end, metrics, bar, tracker)
            else:  # stopped by max_steps inside an epoch: keep it resumable
                ckpt.save_state(run.engine, cfg.out, pos.global_step, _client_state(run, pos))
    if metrics is not None:
        metrics.close()
    elapsed = time.perf_counter() - start
    return TrainResult(
        Path(cfg.out),
        ckpt.completed_checkpoints(cfg.out),
        pos.global_step,
        last_loss,
        run.lr,
        Path(cfg.out) / "metrics.jsonl",
        supervised / elapsed if elapsed > 0 else 0.0,
        run.last_val_loss,
    )


def _add_rates(record: dict, seconds: float) -> None:
    """Global tokens per second of this optimizer step (all ranks, wall time on this rank)."""
    record["tokens_per_s"] = record["tokens"] / seconds if seconds > 0 else 0.0
    record["supervised_tokens_per_s"] = (
        record["supervised_tokens"] / seconds if seconds > 0 else 0.0
    )


def _validate(
    run: Run, epoch: int, step: int, metrics, tracker, bar, epoch_end: bool = False
) -> float | None:
    """The validation loss now (every rank computes its share); logged on rank 0."""
    if run.val_data is None:
        return None
    result = validation_loss(
        run.engine,
        run.val_data,
        run.val_sampler,
        run.rank,
        lambda indices: _collate_rows(run, run.val_data, indices),
    )
    record = {"kind": "val", "step": step, "epoch": epoch, "epoch_end": epoch_end, **result}
    run.last_val_loss = result["val_loss"]
    if metrics is not None:
        metrics.write(record)
        tracker.log_validation(record)
        if result["val_loss"] is not None:
            bar.log(
                f"step {step}: validation loss {result['val_loss']:.4f} "
                f"({result['val_sequences']:,} conversations)"
            )
    return result["val_loss"]


def _client_state(run: Run, pos: Position) -> dict:
    return {"position": vars(pos).copy(), "lr": run.lr, "world_size": run.world}


def _epoch_summary(run: Run, epoch: int, global_step: int, val_loss: float | None) -> dict:
    """What the epoch trained, summed from its step lines (those before a resume included)."""
    steps = [m for m in read_metrics(run.cfg.out) if m["epoch"] == epoch]
    totals = {k: sum(m[k] for m in steps) for k in ("sequences", "tokens", "supervised_tokens")}
    summary = {
        "kind": "epoch",
        "step": global_step,
        "epoch": epoch,
        "steps": len(steps),
        **totals,
        "dataset_sequences": len(run.data),
        "truncated": run.sampler.num_truncated,
    }
    if run.val_data is not None:
        summary["val_loss"] = val_loss
    return summary


def _end_epoch(
    run: Run, pos: Position, on_epoch_end: EpochCallback | None, metrics, bar, tracker
) -> None:
    """Validate, write epoch_<n>/ (HF folder), then the resumable state pointing at the next one."""
    finished = pos.epoch
    val_loss = _validate(run, finished, pos.global_step, metrics, tracker, bar, epoch_end=True)
    stage = run.engine.zero_optimization_stage()
    state = ckpt.full_state_dict(run.engine, stage)
    if run.rank == 0:
        summary = _epoch_summary(run, finished, pos.global_step, val_loss)
        metrics.write(summary)
        val_text = f"; validation loss {val_loss:.4f}" if val_loss is not None else ""
        bar.log(
            f"epoch {finished}: {summary['sequences']:,} of "
            f"{summary['dataset_sequences']:,} sequences, {summary['tokens']:,} tokens "
            f"({summary['supervised_tokens']:,} supervised) in {summary['steps']} steps; "
            f"{summary['truncated']:,} truncated to --batch-max-len{val_text}"
        )
        meta = {
            "epoch": finished,
            "global_step": pos.global_step,
            "lr": run.lr,
            "world_size": run.world,
            "trained": {
                k: summary[k] for k in ("sequences", "tokens", "supervised_tokens", "truncated")
            },
            "config": run.cfg.to_json(),
            **run.cfg.extra_metadata,
        }
        ckpt.write_hf_checkpoint(
            ckpt.epoch_dir(run.cfg.out, finished),
            run.lm,
            state,
            tokenizer=run.tokenizer,
            manifest=run.data.manifest,
            metadata=meta,
            merge_lora=run.cfg.merge_lora,
        )
    dist.barrier()
    pos.epoch, pos.step_in_epoch = finished + 1, 0
    ckpt.save_state(run.engine, run.cfg.out, pos.global_step, _client_state(run, pos))
    # After the state is saved, so a run killed during the callback does not train this epoch again.
    if on_epoch_end is not None:
        if run.rank == 0:
            on_epoch_end(finished, ckpt.epoch_dir(run.cfg.out, finished))
        dist.barrier()


def _collate(run: Run, indices: list[int]) -> Batch:
    return _collate_rows(run, run.data, indices)


def _collate_rows(run: Run, data, indices: list[int]) -> Batch:
    rows = [data[i] for i in indices]
    max_len = run.cfg.batch_max_len  # only cuts sequences the sampler truncated
    return pack(rows, max_len) if run.cfg.packing else pad(rows, max_len)


def _train_step(run: Run, micro_steps: list[list[int]], pos: Position) -> dict:
    """One optimizer step over this rank's micro-batches (one per accumulated multipack step).

    The loss is normalised by the weight sum of the whole global batch: every micro-step of
    every rank. That sum is all-reduced before the first forward, so each micro-step's
    gradient is already its exact share and DeepSpeed's own 1/N scaling is switched off
    (`scale_wrt_gas=False`); the trainer marks the accumulation boundary itself, so an epoch's
    shorter last group steps too. A rank with no sequences in a micro-step (an epoch's final
    steps may be partly filled) runs a one-token, zero-weight batch, so every rank joins the
    same collectives.
    """
    engine = run.engine
    batches = [_collate(run, indices) for indices in micro_steps]
    totals = torch.tensor(
        [[float(b.weights.sum()), b.tokens, b.supervised, b.slots, b.sequences] for b in batches],
        dtype=torch.float64,
    ).sum(0)
    dist.all_reduce(totals)  # every rank divides by the same global weight sum
    weight_sum = float(totals[0])
    # DeepSpeed averages gradients over ranks, hence * world: the result is
    # sum over all ranks and micro-steps of w * CE / global weight sum, as OpenChat's loss.
    scale = run.world / weight_sum if weight_sum > 0 else 0.0
    lr = run.lr * cosine_with_warmup(
        pos.global_step + 1,
        warmup_steps=run.warmup_steps,
        total_steps=run.total_steps,
        min_ratio=run.cfg.lr_min_ratio,
    )
    for group in engine.optimizer.param_groups:
        group["lr"] = lr
    loss_total = 0.0
    for i, batch in enumerate(batches):
        batch = batch.to(engine.device)
        engine.set_gradient_accumulation_boundary(i == len(batches) - 1)
        loss_sum = engine(labels=batch.labels, weights=batch.weights, **batch.inputs)
        logged = loss_sum.detach().to(torch.float64).cpu().reshape(1)
        dist.all_reduce(logged)  # the same value on every rank, so all of them stop together
        loss_total += float(logged[0])
        if not math.isfinite(loss_total):
            raise TrainingDiverged(
                f"the loss is {loss_total} at step {pos.global_step + 1} (epoch {pos.epoch}); "
                f"stopping before the update. Lower the learning rate (peak {run.lr:.3g}) or check "
                "the data; the last saved state and epoch checkpoints are untouched"
            )
        engine.backward(loss_sum * scale, scale_wrt_gas=False)
        engine.step()  # applies the update only at the boundary (the last micro-step)
    tokens, slots = int(totals[1]), int(totals[3])
    capacity = run.world * run.cfg.batch_max_len * len(batches) if run.cfg.packing else slots
    return {
        "kind": "step",
        "step": pos.global_step + 1,
        "epoch": pos.epoch,
        "loss": loss_total / weight_sum if weight_sum else 0.0,
        "lr": lr,
        "grad_norm": _grad_norm(engine),
        "micro_steps": len(batches),
        "tokens": tokens,
        "supervised_tokens": int(totals[2]),
        "sequences": int(totals[4]),
        "slots": slots,
        "packing_efficiency": tokens / capacity if capacity else 0.0,
    }


def _grad_norm(engine) -> float | None:
    """The global gradient norm of the step just taken, before clipping (DeepSpeed's)."""
    norm = engine.get_global_grad_norm()
    if norm is None:
        return None
    norm = float(norm)
    return norm if math.isfinite(norm) else None
