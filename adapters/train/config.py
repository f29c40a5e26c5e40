"""Training settings and results as typed dataclasses (no torch import: the CLI builds them)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ocx.harness.errors import InputError, InputProblem


@dataclass
class TrainConfig:
    """Everything one `ocx train` run needs; the CLI flags map one to one onto these fields."""

    data: Path
    """Tokenized dataset folder written by `ocx data tokenize` (manifest.json + data.parquet)."""
    model: str
    """Base model: a Hugging Face folder or hub id ("org/name"; offline from the HF cache)."""
    out: Path
    """Output folder: epoch_<n>/ checkpoints, state/ (resume), metrics.jsonl, train.json."""
    epochs: int = 5
    """Passes over the data (OpenChat's default)."""
    batch_max_len: int = 81920
    """Token budget of one packed row per rank and step (OpenChat: 81920 on an 80 GB GPU)."""
    lr: float | None = None
    """Peak learning rate; None estimates it from the supervised tokens per batch (OpenChat)."""
    lr_min_ratio: float = 0.1
    """Cosine floor, as a fraction of the peak learning rate."""
    lr_warmup_ratio: float = 0.05
    """Fraction of all steps spent warming up linearly from 0."""
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-5
    grad_clip: float = 1.0
    """Global gradient-norm clip (DeepSpeed `gradient_clipping`); 0 disables it."""
    seed: int = 42
    """Seeds the multipack order of every epoch and torch."""
    packing: bool = True
    """False: one sequence per row, padded to the longest in the batch (for comparison)."""
    zero_stage: int = 2
    """DeepSpeed ZeRO stage of the shipped config (2 or 3)."""
    deepspeed_config: Path | None = None
    """A DeepSpeed JSON config merged over the shipped zero2/zero3.json (batch sizes, optimizer
    and schedule stay ocx's)."""
    tokenizer: str | None = None
    """The tokenizer the data was tokenized with (file or folder); default: the base model's.
    Its sha256 must equal the dataset's; every checkpoint exports it with the chat template."""
    resume: bool = False
    """Continue from the last complete state in `out/state` (after a crash or a kill)."""
    force_resume: bool = False
    """Resume although the world size, dataset or a training setting differs from the saved run."""
    save_every_steps: int = 0
    """Also save resumable state every N steps inside an epoch (0: only at epoch ends)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps in total (demos, smoke tests)."""
    grad_accum_steps: int = 1
    """Packed rows (micro-steps) per rank accumulated into one optimizer step; the loss is
    normalised by the weight sum of all of them (see docs/train.md)."""
    val_fraction: float = 0.0
    """Hold out this fraction of the conversations (deterministically, before packing) as a
    validation set; 0: none."""
    val_data: Path | None = None
    """A tokenized validation dataset (same tokenizer as `data`) instead of `val_fraction`."""
    val_every_steps: int = 0
    """Also compute the validation loss every N optimizer steps (0: only at epoch ends)."""
    report_to: list[str] = field(default_factory=list)
    """Experiment trackers: "tensorboard" (out/tensorboard) and/or "wandb" (offline without
    WANDB_API_KEY, run folder under out/)."""
    gradient_checkpointing: bool = True
    """Recompute activations in backward (as OpenChat): less memory, ~30% more compute."""
    loss_chunk_size: int = 512
    """Supervised tokens per chunk of the LM head + cross-entropy (bounds the logits' memory)."""
    too_long: str = "refuse"
    """Sequences longer than batch_max_len: "refuse" (error) or "truncate"."""
    progress: bool = True
    """Show a rich progress bar on rank 0."""
    lora_rank: int | None = None
    """Train a peft LoRA adapter of this rank on the frozen base (None: full fine-tuning)."""
    lora_alpha: float | None = None
    """LoRA scaling numerator (the update is B @ A * alpha / rank); None: 2 * rank."""
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | None = None
    """Module names to adapt (e.g. q_proj, v_proj); None: every linear layer but the LM head."""
    merge_lora: bool = False
    """Also write each epoch's merged model (base + adapter) as a plain HF folder."""
    quantize: str | None = None
    """"4bit": load the frozen base in NF4 through bitsandbytes (QLoRA; CUDA only)."""
    extra_metadata: dict = field(default_factory=dict)
    """Merged into every checkpoint's ocx.json (recipes record their name and settings here)."""

    def validate(self) -> None:
        """Check the settings before any heavy work; report every problem at once."""
        problems = []

        def bad(flag: str, message: str) -> None:
            problems.append(InputProblem("ocx train", None, flag, message))

        if not (Path(self.data) / "manifest.json").is_file():
            bad("--data", f"{self.data} has no manifest.json (write it with `ocx data tokenize`)")
        if self.epochs < 1:
            bad("--epochs", f"must be at least 1, got {self.epochs}")
        if self.batch_max_len < 1:
            bad("--batch-max-len", f"must be positive, got {self.batch_max_len}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            bad("--lr", f"must be a positive finite number, got {self.lr}")
        for flag, value, low, high in (
            ("--weight-decay", self.weight_decay, 0, math.inf),
            ("--grad-clip", self.grad_clip, 0, math.inf),
            ("--eps", self.eps, 0, 1),
        ):
            if not (math.isfinite(value) and low <= value <= high):
                bad(flag, f"must be a finite number in [{low}, {high}], got {value}")
        if not 0 <= self.lr_min_ratio <= 1:
            bad("--lr-min-ratio", f"must be in [0, 1], got {self.lr_min_ratio}")
        if not 0 <= self.lr_warmup_ratio < 1:
            bad("--lr-warmup-ratio", f"must be in [0, 1), got {self.lr_warmup_ratio}")
        if self.zero_stage not in (2, 3):
            bad("--zero-stage", f"must be 2 or 3, got {self.zero_stage}")
        if self.deepspeed_config is not None and not Path(self.deepspeed_config).is_file():
            bad("--deepspeed-config", f"{self.deepspeed_config} does not exist")
        elif self.zero_stage in (2, 3):
            problems += _ds_config_problems(self)
        if self.loss_chunk_size < 1:
            bad("--loss-chunk-size", f"must be positive, got {self.loss_chunk_size}")
        if self.too_long not in ("refuse", "truncate"):
            bad("--too-long", f"must be 'refuse' or 'truncate', got {self.too_long!r}")
        if self.max_steps is not None and self.max_steps < 1:
            bad("--max-steps", f"must be at least 1, got {self.max_steps}")
        from ocx.adapters.train.lora import settings_problems

        problems += settings_problems(self)
        problems += _extras_problems(self)
        if problems:
            raise InputError(problems)

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def _extras_problems(cfg: TrainConfig) -> list[InputProblem]:
    """Gradient accumulation, validation and tracking settings (trainer extras)."""
    from ocx.adapters.train.tracking import tracker_problems

    problems = []

    def bad(flag: str, message: str) -> None:
        problems.append(InputProblem("ocx train", None, flag, message))

    if isinstance(cfg.grad_accum_steps, bool) or not 1 <= cfg.grad_accum_steps <= 65536:
        bad("--grad-accum-steps", f"must be an integer in [1, 65536], got {cfg.grad_accum_steps}")
    if not (math.isfinite(cfg.val_fraction) and 0 <= cfg.val_fraction < 1):
        bad("--val-fraction", f"must be in [0, 1), got {cfg.val_fraction}")
    if cfg.val_data is not None:
        if cfg.val_fraction:
            bad("--val-data", "give either --val-data or --val-fraction, not both")
        if not (Path(cfg.val_data) / "manifest.json").is_file():
            bad(
                "--val-data",
                f"{cfg.val_data} has no manifest.json (write it with `ocx data tokenize`)",
            )
    if cfg.val_every_steps < 0:
        bad("--val-every-steps", f"must be at least 0, got {cfg.val_every_steps}")
    elif cfg.val_every_steps and not cfg.val_fraction and cfg.val_data is None:
        bad("--val-every-steps", "needs a validation set: add --val-fraction F or --val-data DIR")
    return problems + tracker_problems(cfg.report_to)


def _ds_config_problems(cfg: TrainConfig) -> list[InputProblem]:
    from ocx.adapters.train.ds_config import build_ds_config

    try:
        build_ds_config(cfg.zero_stage, cfg.deepspeed_config, grad_clip=cfg.grad_clip, bf16=False)
    except InputError as exc:
        return exc.problems
    return []


@dataclass
class TrainResult:
    """What a finished (or max_steps-stopped) run produced."""

    out: Path
    checkpoints: list[Path]
    """One HF model folder per completed epoch, oldest first."""
    steps: int
    """Optimizer steps taken in total, including those before a resume."""
    final_loss: float | None
    lr: float
    """The peak learning rate used (given or automatic)."""
    metrics: Path
    """The metrics JSONL file (one line per step)."""
    supervised_tokens_per_s: float
    """Global supervised tokens per second over the steps of this process's run."""
    val_loss: float | None = None
    """The last validation loss (None without a validation set)."""
