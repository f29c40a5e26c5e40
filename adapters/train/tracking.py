"""Experiment tracking with the ecosystem's own tools: TensorBoard and Weights & Biases.

`--report-to tensorboard,wandb` (recipe `train.report_to: [tensorboard, wandb]`):

* tensorboard: event files in `<out>/tensorboard` (torch.utils.tensorboard's SummaryWriter);
  `tensorboard --logdir <out>/tensorboard`.
* wandb: a W&B run whose folder is `<out>/wandb`; offline (`wandb sync <out>/wandb/offline-run-*`
  uploads it later) unless WANDB_API_KEY is set or WANDB_MODE says otherwise.

Only rank 0 tracks. What is logged, against the optimizer step: `train/loss`, `train/lr`,
`train/grad_norm`, `train/tokens_per_s`, `train/supervised_tokens_per_s`,
`train/packing_efficiency`, `val/loss`, and after each epoch's evaluation (recipes) one
`eval/<suite> [<condition>]` scalar per suite and condition.

The recipe runner logs its evaluation scores through `log_eval_scores(epoch, scores)`, which
reaches the tracker of the training run in progress in this process (see `active_tracker`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from ocx.harness.errors import InputProblem

TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb"}
"""Tracker name -> the pip package it needs."""
STEP_SCALARS = {
    "loss": "train/loss",
    "lr": "train/lr",
    "grad_norm": "train/grad_norm",
    "tokens_per_s": "train/tokens_per_s",
    "supervised_tokens_per_s": "train/supervised_tokens_per_s",
    "packing_efficiency": "train/packing_efficiency",
}
TENSORBOARD_DIR = "tensorboard"
WANDB_ID_FILE = "wandb_run_id"


def parse_report_to(value: str | Iterable[str] | None) -> list[str]:
    """ "tensorboard,wandb" or ["tensorboard", "wandb"] -> the names, in order, without repeats;
    "none" (or nothing) -> []. Names are checked by `tracker_problems`."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    names = [item.strip().lower() for item in items if item.strip()]
    return [n for n in dict.fromkeys(names) if n != "none"]


def tracker_problems(report_to) -> list[InputProblem]:
    """Unknown names and trackers whose package is missing, each with the fix."""
    if isinstance(report_to, str) or not isinstance(report_to, (list, tuple)):
        return [
            InputProblem(
                "ocx train",
                None,
                "--report-to",
                f"must be a list of tracker names, got {report_to!r}",
            )
        ]
    problems = []
    for name in parse_report_to(report_to):
        if name not in TRACKERS:
            from ocx.harness.suggest import did_you_mean

            choose = f"; choose from {', '.join(TRACKERS)} or none"
            hint = did_you_mean(name, list(TRACKERS), n=1) or choose
            problems.append(
                InputProblem("ocx train", None, "--report-to", f"unknown tracker {name!r}{hint}")
            )
        elif importlib.util.find_spec(TRACKERS[name]) is None:
            problems.append(
                InputProblem(
                    "ocx train",
                    None,
                    "--report-to",
                    f"{name} is not installed: pip install {TRACKERS[name]}",
                )
            )
    return problems


class _TensorBoard:
    def __init__(self, out: Path, config: dict, resume_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        # A resumed run redoes the steps after its last saved state: purge_step makes TensorBoard
        # drop the killed run's points from there on instead of drawing both.
        purge = resume_step + 1 if resume_step is not None else None
        self.writer = SummaryWriter(log_dir=str(Path(out) / TENSORBOARD_DIR), purge_step=purge)
        self.writer.add_text(
            "config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```", 0
        )

    def log(self, scalars: dict[str, float], step: int) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self, failed: bool = False) -> None:
        self.writer.close()


class _WandB:
    """One W&B run per training run: its id is kept in the output folder, so a resumed run and
    the recipe's evaluations continue the same run."""

    def __init__(self, out: Path, config: dict, resume_step: int | None):
        import wandb

        out = Path(out)
        id_file = out / WANDB_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:8]
        out.mkdir(parents=True, exist_ok=True)
        id_file.write_text(run_id + "\n")
        offline = not os.environ.get("WANDB_API_KEY") and os.environ.get("WANDB_MODE") not in (
            "online",
            "disabled",
        )
        settings = {"mode": "offline"} if offline else {}
        name = (
            out.resolve().parent.name if out.name == "train" else out.resolve().name
        )  # recipes: <output>/train
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "ocx"),
            name=name,
            id=run_id,
            resume="allow",
            dir=str(out),
            config=config,
            **settings,
        )
        # Charts against the optimizer step, whatever else was logged in between.
        self.run.define_metric("trainer/global_step")
        self.run.define_metric("*", step_metric="trainer/global_step", step_sync=True)

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.run.log({**scalars, "trainer/global_step": step})

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


_BACKENDS = {"tensorboard": _TensorBoard, "wandb": _WandB}
_active: Tracker | None = None


class Tracker:
    """The trackers of one run (none: every call is a no-op)."""

    def __init__(
        self,
        out: Path,
        names: Iterable[str],
        config: dict | None = None,
        resume_step: int | None = None,
    ):
        """`resume_step`: the optimizer step a resumed run continues after (None: a new run)."""
        self.backends = [
            _BACKENDS[name](Path(out), config or {}, resume_step)
            for name in parse_report_to(list(names))
        ]

    def log(self, scalars: dict[str, float | None], step: int) -> None:
        values = {k: float(v) for k, v in scalars.items() if v is not None}
        if values:
            for backend in self.backends:
                backend.log(values, step)

    def log_step(self, record: dict) -> None:
        """A metrics.jsonl step line."""
        self.log({tag: record.get(key) for key, tag in STEP_SCALARS.items()}, record["step"])

    def log_validation(self, record: dict) -> None:
        """A metrics.jsonl validation line."""
        self.log({"val/loss": record.get("val_loss")}, record["step"])

    def log_eval_scores(
        self, epoch: int, scores: dict[str, float], step: int | None = None
    ) -> None:
        """Scores (0-1) per "suite [condition]" after an epoch, at its last step (or the epoch)."""
        self.log(
            {f"eval/{name}": value for name, value in scores.items()},
            epoch if step is None else step,
        )

    def close(self, failed: bool = False) -> None:
        for backend in self.backends:
            backend.close(failed)
        self.backends = []

    def __enter__(self) -> Tracker:
        global _active
        _active = self
        return self

    def __exit__(self, exc_type, *exc) -> None:
        global _active
        _active = None
        self.close(failed=exc_type is not None)  # W&B marks a crashed or diverged run as failed


def active_tracker() -> Tracker | None:
    """The tracker of the training run in progress in this process (rank 0), if any."""
    return _active


def log_eval_scores(epoch: int, scores: dict[str, float], train_out: Path | None = None) -> None:
    """Log one epoch's evaluation scores (0-1 per "suite [condition]") to the run's trackers.

    During training (the `on_epoch_end` callback) they go to the running tracker, at the
    epoch's last optimizer step. Otherwise (a recipe re-reading epochs a killed run finished),
    `train_out`'s train.json names the trackers, which are opened for this call.
    """
    if _active is not None:
        _active.log_eval_scores(epoch, scores, _epoch_last_step(train_out, epoch))
        return
    if train_out is None or not (Path(train_out) / "train.json").is_file():
        return
    names = (
        json.loads((Path(train_out) / "train.json").read_text()).get("config", {}).get("report_to")
        or []
    )
    if names and not tracker_problems(names):
        tracker = Tracker(Path(train_out), names)
        try:
            tracker.log_eval_scores(epoch, scores, _epoch_last_step(train_out, epoch))
        finally:
            tracker.close()


def _epoch_last_step(train_out: Path | None, epoch: int) -> int | None:
    if train_out is None or not (Path(train_out) / "metrics.jsonl").is_file():
        return None
    from ocx.adapters.train.progress import read_metrics

    ends = [
        r["step"] for r in read_metrics(Path(train_out), kind="epoch") if r.get("epoch") == epoch
    ]
    return ends[-1] if ends else None
