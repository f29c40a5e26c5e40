"""Where a LoRA step's time goes, against full fine-tuning: CPU seconds per phase, load-proof.

`python -m tests.perf.profile_lora [--quick] [--steps N] [--threads N] [--torch-profile]`

The `lora` benchmark times whole runs by the wall clock, which a shared machine's load distorts.
This builds the benchmark's model, data and trainer setups (`tests/perf/bench_lora.py`) in one
process and runs the same batches through four engines, step by step in turn: `full`, `lora`
(ocx's fused LoRA forward), `lora_peft` (peft's own forward) and `frozen` (no adapter, only the
embeddings trained: the bound LoRA could reach). Each phase (forward, backward, optimizer step)
is timed in CPU seconds of this process with one torch thread by default, so other processes'
load changes little; the first step is left out. `--torch-profile` prints torch.profiler's op
table of the last step of `full` and `lora`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ARMS = ("full", "lora", "lora_peft", "frozen")


def _setup(kind: str, data: Path, model: Path, work: Path, sizes: dict, dataset):
    from ocx.adapters.train import TrainConfig, trainer
    from ocx.adapters.train.ds_config import build_ds_config
    from tests.perf.bench_lora import LORA, _only_embeddings_trained
    from tests.perf.core import shared_file

    lora = kind.startswith("lora")
    cfg = TrainConfig(
        data=data,
        model=str(model),
        out=Path(tempfile.mkdtemp(dir=work)) / "run",
        epochs=1,
        lr=1e-3 if lora else 1e-4,
        batch_max_len=sizes["batch_max_len"],
        gradient_checkpointing=False,
        progress=False,
        tokenizer=str(shared_file("tokenizers/mistral-v1/tokenizer.model")),
        **(LORA if lora else {}),
    )
    ds_config = build_ds_config(cfg.zero_stage, None, grad_clip=cfg.grad_clip, bf16=False)
    if kind == "frozen":
        with _only_embeddings_trained():
            run = trainer._setup(cfg, 0, 1, dataset, ds_config, Path(cfg.tokenizer))
    else:
        run = trainer._setup(cfg, 0, 1, dataset, ds_config, Path(cfg.tokenizer))
    if kind == "lora_peft":
        for module in run.lm.modules():
            if "forward" in vars(module) and getattr(module, "_ocx_fused", False):
                del module.forward  # peft's class forward again
    return run


def _step(run, indices: list[int]) -> tuple[float, float, float]:
    from ocx.adapters.train import trainer

    engine = run.engine
    batch = trainer._collate(run, indices)
    weight_sum = float(batch.weights.sum())
    t0 = time.process_time()
    loss = engine(labels=batch.labels, weights=batch.weights, **batch.inputs)
    t1 = time.process_time()
    engine.backward(loss / weight_sum, scale_wrt_gas=False)
    t2 = time.process_time()
    engine.step()
    trainer._grad_norm(engine)
    return t1 - t0, t2 - t1, time.process_time() - t2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.perf.profile_lora", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="the benchmark's quick sizes")
    parser.add_argument(
        "--steps", type=int, default=3, help="steps per arm; the first is not counted (default 3)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--torch-profile", action="store_true", help="print torch.profiler's table of the last step"
    )
    args = parser.parse_args(argv)
    if args.steps < 2 or args.threads < 1:
        parser.error(
            "--steps must be at least 2 (the first is not counted) and --threads at least 1"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from ocx.adapters.train.engine import init_distributed
    from ocx.harness.data.dataset import load_tokenized
    from tests.perf.bench_lora import FULL, QUICK
    from tests.perf.bench_train import random_llama, token_dataset

    torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else FULL
    work = Path(tempfile.mkdtemp(prefix="ocx-profile-lora-"))
    data = token_dataset(
        work, sizes["conversations"], sizes["context"], sizes["model"]["vocab_size"]
    )
    model = random_llama(work, sizes["context"], **sizes["model"])
    init_distributed()
    dataset = load_tokenized(data)
    runs = {kind: _setup(kind, data, model, work, sizes, dataset) for kind in ARMS}
    batches = runs["full"].sampler.batches(0)
    seconds = {kind: [] for kind in ARMS}
    for i in range(args.steps):
        for kind, run in runs.items():
            profiler = None
            if args.torch_profile and i == args.steps - 1 and kind in ("full", "lora"):
                profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                profiler.__enter__()
            seconds[kind].append(_step(run, batches[i % len(batches)][0]))
            if profiler is not None:
                profiler.__exit__(None, None, None)
                print(
                    f"== {kind}\n"
                    + profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
                )
            print(
                f"step {i} {kind}: forward {seconds[kind][-1][0]:.3f} s, "
                f"backward {seconds[kind][-1][1]:.3f} s, optimizer {seconds[kind][-1][2]:.3f} s",
                flush=True,
            )
    counted = {
        kind: [sum(phase) / (args.steps - 1) for phase in zip(*steps[1:])]
        for kind, steps in seconds.items()
    }
    full_total = sum(counted["full"])
    print(
        f"\nCPU seconds per step (mean of steps 2-{args.steps}, {args.threads} torch thread(s), "
        f"load {open('/proc/loadavg').read().split()[0]}):"
    )
    print(
        f"{'arm':10} {'forward':>8} {'backward':>9} {'optimizer':>10} {'total':>7} {'full/arm':>9}"
    )
    for kind, (fwd, bwd, opt) in counted.items():
        total = fwd + bwd + opt
        print(f"{kind:10} {fwd:8.3f} {bwd:9.3f} {opt:10.3f} {total:7.3f} {full_total / total:9.3f}")


if __name__ == "__main__":
    main()
