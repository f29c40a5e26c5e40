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
from ocx.cli.options import MultiValueCommand
from ocx.cli.setting_flags import option_groups, setting_options, settings_from

SECTIONS = ("Model", "Data", "Optimisation", "LoRA", "Validation", "Tracking", "Memory", "Output")
"""`--help` sections of the settings (the fields' `group`) in this order, then any other, then
"Launch"."""

LAUNCH_OPTIONS = [
    click.Option(
        ["--launcher"],
        default="torchrun",
        show_default=True,
        type=click.Choice(["torchrun", "deepspeed"]),
        help="Launcher for several processes or nodes.",
    ),
    click.Option(["--nnodes"], default=1, show_default=True, type=int, help="Nodes of the run."),
    click.Option(
        ["--nproc-per-node"], default=1, show_default=True, type=int, help="Processes per node."
    ),
    click.Option(["--node-rank"], type=int, help="torchrun on several nodes: this node's index."),
    click.Option(
        ["--hostfile"],
        type=click.Path(path_type=Path),
        help="deepspeed: hostfile (`host slots=N` lines).",
    ),
    click.Option(["--master-addr"], help="Address of node 0 (several nodes)."),
    click.Option(["--master-port"], default=29500, show_default=True, type=int),
    click.Option(
        ["--print-launch-command"], is_flag=True, help="Print the launcher command and exit."
    ),
    # The `deepspeed` launcher appends --local_rank=N; the rank is read from the environment.
    click.Option(["--local_rank", "--local-rank", "local_rank"], type=int, hidden=True),
]
LAUNCH_PARAMS = tuple(option.name for option in LAUNCH_OPTIONS)


def _sections(settings: type) -> dict[str, list[str]]:
    groups = option_groups(settings)
    ordered = {title: groups[title] for title in SECTIONS if title in groups}
    return {**ordered, **groups, "Launch": list(LAUNCH_PARAMS)}


def train_command(settings: type = TrainConfig) -> click.Command:
    """`ocx train`, its flags made from `settings` (TrainConfig, or a subclass with more fields)."""

    @click.pass_context
    def train(ctx, **params):
        """Train with the C-RLFT loss on packed batches; checkpoint every epoch as an HF folder."""
        cfg = settings(**settings_from(settings, params))
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

    return click.command(
        "train",
        cls=MultiValueCommand,
        params=[*setting_options(settings), *LAUNCH_OPTIONS],
        option_groups=_sections(settings),
    )(train)


train = train_command()


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

    cmd = launch_command(spec, passthrough_args(ctx.command, params, set(LAUNCH_PARAMS)))
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
