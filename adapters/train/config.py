"""Training settings and results as typed dataclasses (no torch import: the CLI builds them).

Each `TrainConfig` field is the one definition of a setting (see harness/settings.py): its
`ocx train` flag, type, range, help, `--help` section and recipe key. The flags
(ocx/cli/setting_flags.py, the builder `ocx eval` uses too) and the recipe `train:` checks
(recipes/settings_section.py) are generated from the fields, so a new setting is one field here,
plus its use in the trainer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from ocx.adapters.train.lora import QUANTIZE, settings_problems
from ocx.adapters.train.tracking import parse_report_to, tracker_problems
from ocx.harness.errors import InputError, InputProblem
from ocx.harness.settings import Choice, Num, Problem, by_flag, flags, named, rule_problems
from ocx.harness.settings import setting as s

BELOW_ONE = Num(float, 0, 1, high_open=True)
"""A fraction in [0, 1)."""
SEED = Num(int, 0, 2**32 - 1)
COMMAND = "ocx train"


# One helper per `--help` section: the helper that makes a field names its group.
in_model = partial(s, group="Model")
in_data = partial(s, group="Data")
in_optim = partial(s, group="Optimisation")
in_lora = partial(s, group="LoRA")
in_val = partial(s, group="Validation")
in_tracking = partial(s, group="Tracking")
in_memory = partial(s, group="Memory")
in_output = partial(s, group="Output")


@dataclass
class TrainConfig:
    """Everything one `ocx train` run needs; each field but extra_metadata is one CLI flag."""

    data: Path = in_data(
        help="Tokenized dataset folder written by `ocx data tokenize` (manifest.json).",
        recipe=None,
        resume_check=False,
    )
    model: str = in_model(
        help="Base model: a Hugging Face folder or hub id (org/name; offline: the HF cache).",
        recipe=None,
    )
    out: Path = in_output(
        help="Output folder: epoch_<n>/ checkpoints, state/ (resume), metrics.jsonl, train.json.",
        recipe=None,
        resume_check=False,
    )
    epochs: int = in_optim(5, help="Passes over the data.", rule=Num(int, 1, 1000))
    batch_max_len: int = in_data(
        81920,
        help="Tokens of one packed row, per rank and step (OpenChat: 81920 on an 80 GB GPU).",
        rule=Num(int, 1, 1 << 24),
    )
    lr: float | None = in_optim(
        None,
        help="Peak learning rate.",
        rule=Num(float, 0, 1, low_open=True),
        default_text="OpenChat's automatic LR from the supervised tokens per step",
    )
    lr_min_ratio: float = in_optim(
        0.1, help="Cosine floor, as a fraction of the peak LR.", rule=Num(float, 0, 1)
    )
    lr_warmup_ratio: float = in_optim(
        0.05, help="Fraction of all steps spent warming up linearly from 0.", rule=BELOW_ONE
    )
    weight_decay: float = in_optim(0.1, help="AdamW weight decay.", rule=Num(float, 0))
    beta1: float = in_optim(0.9, help="AdamW beta1 (first-moment decay).", rule=BELOW_ONE)
    beta2: float = in_optim(0.95, help="AdamW beta2 (second-moment decay).", rule=BELOW_ONE)
    eps: float = in_optim(1e-5, help="AdamW epsilon.", rule=Num(float, 0, 1, low_open=True))
    grad_clip: float = in_optim(
        1.0, help="Global gradient-norm clip (DeepSpeed's); 0 disables it.", rule=Num(float, 0)
    )
    seed: int = in_optim(42, help="Seeds every epoch's multipack order and torch.", rule=SEED)
    packing: bool = in_data(True, help="--no-packing: one sequence per row, padded.")
    zero_stage: int = in_memory(
        2, help="DeepSpeed ZeRO stage (shipped config).", rule=Choice((2, 3))
    )
    deepspeed_config: Path | None = in_memory(
        None,
        help="DeepSpeed JSON merged over the shipped zero2/zero3.json (its "
        "zero_optimization.stage wins; batch sizes, optimizer and schedule stay ocx's).",
        resume_check=False,
    )
    tokenizer: str | None = in_model(
        None,
        help="Tokenizer the data was tokenized with (its sha256 must match the dataset's; "
        "checkpoints export it).",
        recipe=None,
        default_text="the base model's",
    )
    resume: bool = in_output(
        False,
        help="Continue from the last complete state in --out.",
        recipe=None,
        resume_check=False,
    )
    force_resume: bool = in_output(
        False, help="Resume although world size, data or settings differ.", resume_check=False
    )
    save_every_steps: int = in_output(
        0,
        help="Also save resumable state every N steps (0: at epoch ends).",
        rule=Num(int, 0),
        resume_check=False,
    )
    max_steps: int | None = in_optim(
        None, help="Stop after N optimizer steps in total (demos, smoke tests).", rule=Num(int, 1)
    )
    grad_accum_steps: int = in_optim(
        1,
        help="Packed rows per rank accumulated into one optimizer step (the loss is "
        "normalised by the weight sum of all of them).",
        rule=Num(int, 1, 65536),
    )
    val_fraction: float = in_val(
        0.0,
        help="Hold out this fraction of the conversations (before packing) for validation.",
        rule=BELOW_ONE,
    )
    val_data: Path | None = in_val(
        None, help="Tokenized validation dataset (same tokenizer as --data).", resume_check=False
    )
    val_every_steps: int = in_val(
        0,
        help="Also compute the validation loss every N optimizer steps (0: at epoch ends only).",
        rule=Num(int, 0),
        resume_check=False,
    )
    report_to: list[str] = in_tracking(
        default_factory=list,
        help="Experiment trackers, comma-separated: tensorboard (out/tensorboard), wandb "
        "(offline without WANDB_API_KEY).",
        default_text="none",
        parse=parse_report_to,
        resume_check=False,
    )
    gradient_checkpointing: bool = in_memory(
        True, help="Recompute activations in backward: less memory, ~30% more compute."
    )
    loss_chunk_size: int = in_memory(
        512,
        help="Supervised tokens per LM-head + cross-entropy chunk (bounds the logits' memory).",
        rule=Num(int, 1, 1 << 20),
    )
    too_long: str = in_data(
        "refuse",
        help="Sequences longer than --batch-max-len: refuse (error) or truncate.",
        rule=Choice(("refuse", "truncate")),
    )
    progress: bool = in_tracking(
        True, help="Show a rich progress bar on rank 0.", resume_check=False
    )
    lora_rank: int | None = in_lora(
        None,
        help="Train a peft LoRA adapter of this rank on the frozen base.",
        rule=Num(int, 1, 4096),
        recipe=("lora", "rank"),
        section_required=True,
        default_text="full fine-tuning",
    )
    lora_alpha: float | None = in_lora(
        None,
        help="LoRA alpha (the update is B @ A * alpha / rank).",
        rule=Num(float, 0, low_open=True),
        recipe=("lora", "alpha"),
        default_text="2 x rank",
    )
    lora_dropout: float = in_lora(
        0.0, help="LoRA dropout.", rule=BELOW_ONE, recipe=("lora", "dropout")
    )
    lora_target_modules: list[str] | None = in_lora(
        None,
        help="Modules to adapt, comma-separated (e.g. q_proj,v_proj).",
        recipe=("lora", "target_modules"),
        default_text="all-linear",
        item="module name such as q_proj",
        nonempty=True,
    )
    merge_lora: bool = in_lora(
        False,
        help="Also write each epoch's merged model (base + adapter) as a plain HF folder.",
        recipe=("lora", "merge"),
        resume_check=False,
    )
    quantize: str | None = in_lora(
        None,
        help="QLoRA: load the frozen base in 4-bit NF4 through bitsandbytes (CUDA only).",
        rule=Choice(QUANTIZE),
    )
    extra_metadata: dict = in_output(
        default_factory=dict,
        help="Merged into every checkpoint's ocx.json (recipes record their name here).",
        flag="",
        recipe=None,
    )

    def problems(self) -> list[Problem | InputProblem]:
        """Every problem of these settings, before any heavy work; `{field}` names a setting."""
        problems: list[Problem | InputProblem] = []
        if not (Path(self.data) / "manifest.json").is_file():
            problems.append(Problem("data", f"{self.data} has no manifest.json{TOKENIZE}"))
        problems += rule_problems(self)
        if self.deepspeed_config is not None and not Path(self.deepspeed_config).is_file():
            problems.append(Problem("deepspeed_config", f"{self.deepspeed_config} does not exist"))
        elif self.zero_stage in (2, 3):
            problems += from_flag_problems(_ds_config_problems(self))
        return problems + settings_problems(self) + _extras_problems(self)

    def validate(self) -> None:
        """Check the settings before any heavy work; report every problem at once, by flag."""
        names = flags(type(self))
        problems = [as_flag_problem(p, names) for p in self.problems()]
        if problems:
            raise InputError(problems)

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


TOKENIZE = " (write it with `ocx data tokenize`)"


def as_flag_problem(problem: Problem | InputProblem, names: dict[str, str]) -> InputProblem:
    """A settings problem as `ocx train: --flag: message` (`names`: field -> flag)."""
    return problem if isinstance(problem, InputProblem) else named(problem, COMMAND, names)


def from_flag_problems(problems: list[InputProblem]) -> list[Problem | InputProblem]:
    """Another module's `ocx train` problems (named by flag) as settings problems."""
    out: list[Problem | InputProblem] = []
    for p in problems:
        name = by_flag(TrainConfig, p.field) if p.file == COMMAND else None
        out.append(Problem(name, p.message) if name else p)
    return out


def _extras_problems(cfg: TrainConfig) -> list[Problem | InputProblem]:
    """Validation and tracking settings that depend on each other (trainer extras)."""
    problems: list[Problem | InputProblem] = []
    if cfg.val_data is not None:
        if cfg.val_fraction:
            problems.append(
                Problem("val_data", "give either {val_data} or {val_fraction}, not both")
            )
        if not (Path(cfg.val_data) / "manifest.json").is_file():
            problems.append(Problem("val_data", f"{cfg.val_data} has no manifest.json{TOKENIZE}"))
    if cfg.val_every_steps and not cfg.val_fraction and cfg.val_data is None:
        problems.append(
            Problem("val_every_steps", "needs a validation set: add {val_fraction} or {val_data}")
        )
    if isinstance(cfg.report_to, list):  # a wrong type is already a rule problem
        problems += from_flag_problems(tracker_problems(cfg.report_to))
    return problems


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
