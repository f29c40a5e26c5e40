"""`ocx train`: padding-free C-RLFT training of a stock causal LM on DeepSpeed (CPU or GPU).

Multi-GPU / multi-node: start one process per device with a standard launcher, e.g.
`torchrun --nproc_per_node 8 -m ocx.adapters.train --data ... --model ... --out ...`
(the same options as `ocx train`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ocx.adapters.train.config import TrainConfig


@click.command("train")
@click.option("--data", "data", required=True, type=click.Path(path_type=Path), help="Tokenized dataset folder (`ocx data tokenize`).")
@click.option("--model", required=True, help="Base model: HF folder or hub id.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder (epoch_<n>/, state/, metrics.jsonl).")
@click.option("--epochs", default=5, show_default=True, type=int)
@click.option("--batch-max-len", default=81920, show_default=True, type=int, help="Tokens per packed row, per rank and step.")
@click.option("--lr", default=None, type=float, help="Peak LR; default: OpenChat's automatic LR from supervised tokens per step.")
@click.option("--lr-min-ratio", default=0.1, show_default=True, type=float, help="Cosine floor as a fraction of the peak.")
@click.option("--lr-warmup-ratio", default=0.05, show_default=True, type=float)
@click.option("--weight-decay", default=0.1, show_default=True, type=float)
@click.option("--grad-clip", default=1.0, show_default=True, type=float)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--packing/--no-packing", default=True, show_default=True, help="--no-packing: one sequence per row, padded.")
@click.option("--zero-stage", default=2, show_default=True, type=click.Choice(["2", "3"]))
@click.option("--deepspeed-config", default=None, type=click.Path(path_type=Path), help="DeepSpeed JSON replacing the shipped ZeRO config.")
@click.option("--resume", is_flag=True, help="Continue from the last complete state in --out.")
@click.option("--save-every-steps", default=0, show_default=True, type=int, help="Also save resumable state every N steps.")
@click.option("--max-steps", default=None, type=int, help="Stop after N optimizer steps in total.")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=True, show_default=True)
@click.option("--loss-chunk-size", default=512, show_default=True, type=int, help="Supervised tokens per LM-head chunk.")
@click.option("--too-long", default="refuse", show_default=True, type=click.Choice(["refuse", "truncate"]),
              help="Sequences longer than --batch-max-len.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
# The `deepspeed` launcher appends --local_rank=N; the rank is read from the environment instead.
@click.option("--local_rank", "--local-rank", "local_rank", type=int, default=None, hidden=True)
def train(data, model, out, epochs, batch_max_len, lr, lr_min_ratio, lr_warmup_ratio, weight_decay, grad_clip, seed,
          packing, zero_stage, deepspeed_config, resume, save_every_steps, max_steps, gradient_checkpointing,
          loss_chunk_size, too_long, no_progress, local_rank):
    """Train with the C-RLFT loss on packed batches; checkpoint every epoch as an HF folder."""
    from ocx.adapters.train import run_training

    cfg = TrainConfig(data=data, model=model, out=out, epochs=epochs, batch_max_len=batch_max_len, lr=lr,
                      lr_min_ratio=lr_min_ratio, lr_warmup_ratio=lr_warmup_ratio, weight_decay=weight_decay,
                      grad_clip=grad_clip, seed=seed, packing=packing, zero_stage=int(zero_stage),
                      deepspeed_config=deepspeed_config, resume=resume, save_every_steps=save_every_steps,
                      max_steps=max_steps, gradient_checkpointing=gradient_checkpointing,
                      loss_chunk_size=loss_chunk_size, too_long=too_long, progress=not no_progress)
    cfg.validate()
    result = run_training(cfg)
    _report(result)


def _report(result) -> None:
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_rank() != 0:
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ocx train")
    table.add_column("field")
    table.add_column("value")
    rows = {"steps": result.steps, "final loss": f"{result.final_loss:.4f}" if result.final_loss is not None else "-",
            "peak lr": f"{result.lr:.3e}", "supervised tok/s": f"{result.supervised_tokens_per_s:,.0f}",
            "checkpoints": "\n".join(str(p) for p in result.checkpoints) or "-", "metrics": str(result.metrics)}
    for key, value in rows.items():
        table.add_row(key, str(value))
    Console().print(table)
    summary = {"steps": result.steps, "final_loss": result.final_loss, "lr": result.lr,
               "checkpoints": [str(p) for p in result.checkpoints], "metrics": str(result.metrics),
               "supervised_tokens_per_s": result.supervised_tokens_per_s}
    (Path(result.out) / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
