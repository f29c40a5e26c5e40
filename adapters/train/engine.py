"""DeepSpeed setup: process group, the shipped ZeRO configs, AdamW as OpenChat, the engine.

On CPU the process group uses gloo and training runs in fp32; on GPU nccl and bf16. The
optimizer is torch's AdamW handed to DeepSpeed as a client optimizer: it needs no compiled
op, so the same code runs on a laptop CPU and on GPUs (fused=True on CUDA).
"""

from __future__ import annotations

import os
import socket

import torch


def device_type() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed() -> tuple[int, int]:
    """Join (or, for a plain `ocx train`, create a 1-process) group; returns (rank, world size)."""
    import deepspeed
    import torch.distributed as dist

    if device_type() == "cpu":
        # Else DeepSpeed JIT-compiles its shared-memory all-reduce (C++, ~1 min on 2 cores, again
        # for every new venv), which only its inference all-reduce uses: training all-reduces
        # through gloo. DeepSpeed keeps edits to this dict (deepspeed/ops/__init__.py).
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    if not dist.is_initialized():
        if "RANK" not in os.environ:  # not started by torchrun/deepspeed: a single process
            os.environ.update(
                RANK="0",
                LOCAL_RANK="0",
                WORLD_SIZE="1",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(_free_port()),
            )
        backend = "nccl" if device_type() == "cuda" else "gloo"
        deepspeed.init_distributed(dist_backend=backend)
    if device_type() == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def make_optimizer(
    module: torch.nn.Module,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    # As OpenChat: one group, weight decay on every parameter.
    fused = device_type() == "cuda"
    return torch.optim.AdamW(
        module.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused
    )


def make_engine(module: torch.nn.Module, optimizer: torch.optim.Optimizer, ds_config: dict):
    import deepspeed

    engine, ds_optimizer, _, _ = deepspeed.initialize(
        model=module, optimizer=optimizer, config=ds_config
    )
    return engine, ds_optimizer


def register_head_for_zero3(module: torch.nn.Module, lm) -> None:
    """ZeRO-3 gathers a weight only inside its own module's forward; the LM head is used
    outside it (see CRLFTModel), so it is registered as an external parameter of the wrapper."""
    # deepspeed.zero is an attribute alias, not an importable module (ModuleNotFoundError).
    from deepspeed.runtime.zero import register_external_parameter

    register_external_parameter(module, lm.get_output_embeddings().weight)
