"""`ocx train`: padding-free C-RLFT training of a stock causal LM on DeepSpeed (CPU or GPU).

Several processes or nodes: `ocx train --nproc-per-node 8 ...` starts the run under torchrun;
`--print-launch-command` prints the launcher command instead (torchrun, or
`--launcher deepspeed --hostfile F` for DeepSpeed's multi-node launcher), e.g. to run on
every node or from a cluster script. See docs/train.md.

Exit status: 0 done, 2 bad input (flags, data, tokenizer, resume mismatch; nothing trained),
1 the run failed (e.g. the loss became NaN or infinite).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import click

from ocx.adapters.train.config import TrainConfig
from ocx.adapters.train.tracking import parse_report_to

LAUNCH_PARAMS = {
    "launcher",
    "nnodes",
    "nproc_per_node",
    "node_rank",
    "hostfile",
    "master_addr",
    "master_port",
    "print_launch_command",
    "local_rank",
}


@click.command("train")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(path_type=Path),
    help="Tokenized dataset folder (`ocx data tokenize`).",
)
@click.option(
    "--model", required=True, help="Base model: HF folder or hub id (offline: from the HF cache)."
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder (epoch_<n>/, state/, metrics.jsonl).",
)
@click.option(
    "--tokenizer",
    default=None,
    help="Tokenizer the data was tokenized with (default: the base model's).",
)
@click.option("--epochs", default=5, show_default=True, type=int)
@click.option(
    "--batch-max-len",
    default=81920,
    show_default=True,
    type=int,
    help="Tokens per packed row, per rank and step.",
)
@click.option(
    "--lr",
    default=None,
    type=float,
    help="Peak LR; default: OpenChat's automatic LR from supervised tokens per step.",
)
@click.option(
    "--lr-min-ratio",
    default=0.1,
    show_default=True,
    type=float,
    help="Cosine floor as a fraction of the peak.",
)
@click.option("--lr-warmup-ratio", default=0.05, show_default=True, type=float)
@click.option("--weight-decay", default=0.1, show_default=True, type=float)
@click.option("--grad-clip", default=1.0, show_default=True, type=float)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--packing/--no-packing",
    default=True,
    show_default=True,
    help="--no-packing: one sequence per row, padded.",
)
@click.option("--zero-stage", default=2, show_default=True, type=click.Choice(["2", "3"]))
@click.option(
    "--deepspeed-config",
    default=None,
    type=click.Path(path_type=Path),
    help="DeepSpeed JSON merged over the shipped ZeRO config (its zero_optimization.stage wins).",
)
@click.option("--resume", is_flag=True, help="Continue from the last complete state in --out.")
@click.option(
    "--force-resume", is_flag=True, help="Resume although world size, data or settings differ."
)
@click.option(
    "--save-every-steps",
    default=0,
    show_default=True,
    type=int,
    help="Also save resumable state every N steps.",
)
@click.option("--max-steps", default=None, type=int, help="Stop after N optimizer steps in total.")
@click.option(
    "--grad-accum-steps",
    default=1,
    show_default=True,
    type=int,
    help="Packed rows per rank accumulated into one optimizer step.",
)
@click.option(
    "--val-fraction",
    default=0.0,
    show_default=True,
    type=float,
    help="Hold out this fraction of the conversations as a validation set.",
)
@click.option(
    "--val-data",
    default=None,
    type=click.Path(path_type=Path),
    help="Tokenized validation dataset (same tokenizer as --data).",
)
@click.option(
    "--val-every-steps",
    default=0,
    show_default=True,
    type=int,
    help="Also compute the validation loss every N optimizer steps (0: at epoch ends only).",
)
@click.option(
    "--report-to",
    default="none",
    show_default=True,
    help="Experiment trackers, comma-separated: tensorboard, wandb (offline without WANDB_API_KEY).",
)
@click.option(
    "--gradient-checkpointing/--no-gradient-checkpointing", default=True, show_default=True
)
@click.option(
    "--loss-chunk-size",
    default=512,
    show_default=True,
    type=int,
    help="Supervised tokens per LM-head chunk.",
)
@click.option(
    "--too-long",
    default="refuse",
    show_default=True,
    type=click.Choice(["refuse", "truncate"]),
    help="Sequences longer than --batch-max-len.",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option(
    "--lora-rank",
    default=None,
    type=int,
    help="Train a LoRA adapter of this rank (peft) on the frozen base.",
)
@click.option(
    "--lora-alpha",
    default=None,
    type=float,
    help="LoRA alpha (update scale alpha/rank)  [default: 2 x rank]",
)
@click.option("--lora-dropout", default=0.0, show_default=True, type=float)
@click.option(
    "--lora-target-modules",
    default=None,
    help="Modules to adapt, comma-separated (e.g. q_proj,v_proj)  [default: all-linear]",
)
@click.option(
    "--merge-lora", is_flag=True, help="Also write each epoch's merged model (base + adapter)."
)
@click.option(
    "--quantize",
    default=None,
    type=click.Choice(["4bit"]),
    help="QLoRA: load the base in 4-bit NF4 (CUDA).",
)
@click.option(
    "--launcher",
    default="torchrun",
    show_default=True,
    type=click.Choice(["torchrun", "deepspeed"]),
    help="Launcher for several processes or nodes.",
)
@click.option("--nnodes", default=1, show_default=True, type=int, help="Nodes of the run.")
@click.option(
    "--nproc-per-node", default=1, show_default=True, type=int, help="Processes (devices) per node."
)
@click.option(
    "--node-rank", default=None, type=int, help="torchrun on several nodes: this node's index."
)
@click.option(
    "--hostfile",
    default=None,
    type=click.Path(path_type=Path),
    help="deepspeed: hostfile (`host slots=N` lines).",
)
@click.option("--master-addr", default=None, help="Address of node 0 (several nodes).")
@click.option("--master-port", default=29500, show_default=True, type=int)
@click.option("--print-launch-command", is_flag=True, help="Print the launcher command and exit.")
# The `deepspeed` launcher appends --local_rank=N; the rank is read from the environment instead.
@click.option("--local_rank", "--local-rank", "local_rank", type=int, default=None, hidden=True)
@click.pass_context
def train(ctx, **params):
    """Train with the C-RLFT loss on packed batches; checkpoint every epoch as an HF folder."""
    cfg = _config(params)
    cfg.validate()
    spec = _launch_spec(params)
    if params["print_launch_command"] or (spec.distributed and "RANK" not in os.environ):
        _launch(ctx, params, spec)
        return
    from ocx.adapters.train import run_training
    from ocx.adapters.train.trainer import TrainingDiverged

    try:
        result = run_training(cfg)
    except TrainingDiverged as exc:
        click.echo(f"error: ocx train: {exc}", err=True)
        sys.exit(1)
    _report(result)


def _config(p: dict) -> TrainConfig:
    return TrainConfig(
        data=p["data"],
        model=p["model"],
        out=p["out"],
        tokenizer=p["tokenizer"],
        epochs=p["epochs"],
        batch_max_len=p["batch_max_len"],
        lr=p["lr"],
        lr_min_ratio=p["lr_min_ratio"],
        lr_warmup_ratio=p["lr_warmup_ratio"],
        weight_decay=p["weight_decay"],
        grad_clip=p["grad_clip"],
        seed=p["seed"],
        packing=p["packing"],
        zero_stage=int(p["zero_stage"]),
        deepspeed_config=p["deepspeed_config"],
        resume=p["resume"],
        force_resume=p["force_resume"],
        save_every_steps=p["save_every_steps"],
        max_steps=p["max_steps"],
        gradient_checkpointing=p["gradient_checkpointing"],
        loss_chunk_size=p["loss_chunk_size"],
        too_long=p["too_long"],
        progress=not p["no_progress"],
        grad_accum_steps=p["grad_accum_steps"],
        val_fraction=p["val_fraction"],
        val_data=p["val_data"],
        val_every_steps=p["val_every_steps"],
        report_to=parse_report_to(p["report_to"]),
        lora_rank=p["lora_rank"],
        lora_alpha=p["lora_alpha"],
        lora_dropout=p["lora_dropout"],
        lora_target_modules=_names(p["lora_target_modules"]),
        merge_lora=p["merge_lora"],
        quantize=p["quantize"],
    )


def _names(value: str | None) -> list[str] | None:
    """`--lora-target-modules q_proj,v_proj` as a list (None if not given; empty names kept, then refused)."""
    return None if value is None else [n.strip() for n in value.split(",")]


def _launch_spec(p: dict):
    from ocx.adapters.train.launch import LaunchSpec

    return LaunchSpec(
        launcher=p["launcher"],
        nnodes=p["nnodes"],
        nproc_per_node=p["nproc_per_node"],
        node_rank=p["node_rank"],
        hostfile=p["hostfile"],
        master_addr=p["master_addr"],
        master_port=p["master_port"],
    )


def _launch(ctx, params: dict, spec) -> None:
    """Print the launcher command, or run it and exit with its status."""
    from ocx.adapters.train.launch import launch_command, passthrough_args

    cmd = launch_command(spec, passthrough_args(ctx.command, params, LAUNCH_PARAMS))
    if params["print_launch_command"]:
        click.echo(shlex.join(cmd))
        return
    sys.exit(subprocess.call(cmd))


def _report(result) -> None:
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_rank() != 0:
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ocx train")
    table.add_column("field")
    table.add_column("value")
    rows = {
        "steps": result.steps,
        "final loss": f"{result.final_loss:.4f}" if result.final_loss is not None else "-",
        "validation loss": f"{result.val_loss:.4f}" if result.val_loss is not None else "-",
        "peak lr": f"{result.lr:.3e}",
        "supervised tok/s": f"{result.supervised_tokens_per_s:,.0f}",
        "checkpoints": "\n".join(str(p) for p in result.checkpoints) or "-",
        "metrics": str(result.metrics),
    }
    for key, value in rows.items():
        table.add_row(key, str(value))
    Console().print(table)
    summary = {
        "steps": result.steps,
        "final_loss": result.final_loss,
        "lr": result.lr,
        "checkpoints": [str(p) for p in result.checkpoints],
        "metrics": str(result.metrics),
        "supervised_tokens_per_s": result.supervised_tokens_per_s,
        "val_loss": result.val_loss,
    }
    (Path(result.out) / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
