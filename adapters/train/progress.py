"""Rank 0's view of a run: a rich progress bar and one JSON line per step."""

from __future__ import annotations

import json
from pathlib import Path

from ocx.harness.atomic import atomic_write_text

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Appends one JSON object per step (and per finished epoch) to out/metrics.jsonl; flushed
    line by line so a killed run keeps every finished step."""

    def __init__(self, out: Path, resume_step: int | None):
        self.path = Path(out) / METRICS_FILE
        if resume_step is None:
            atomic_write_text(self.path, "")
        else:
            self._truncate_after(resume_step)
        self._file = open(self.path, "a", encoding="utf-8")

    def _truncate_after(self, step: int) -> None:
        # Steps after the resumed state were lost with the kill; they run again.
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.is_file() else []
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(out: Path, kind: str = "step") -> list[dict]:
    """The lines of one kind: "step" (one per optimizer step) or "epoch" (one per finished
    epoch: sequences, tokens, supervised_tokens and truncated trained, dataset_sequences)."""
    path = Path(out) / METRICS_FILE
    records = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    return [r for r in records if r.get("kind", "step") == kind]


class TrainProgress:
    """A rich progress bar with loss, lr, tokens/s and packing efficiency (a no-op when hidden)."""

    def __init__(self, total_steps: int, done_steps: int, enabled: bool):
        self._progress = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]train[/] ep {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  "
                "{task.fields[tps]:,.0f} sup tok/s  pack {task.fields[eff]:.1%}"
            ),
            TimeRemainingColumn(),
        )
        self._task = self._progress.add_task(
            "train",
            total=total_steps,
            completed=done_steps,
            epoch=0,
            loss=float("nan"),
            lr=0.0,
            tps=0.0,
            eff=0.0,
        )

    def __enter__(self) -> TrainProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def log(self, message: str) -> None:
        """A line on the console, above the bar when it is shown."""
        if self._progress is not None:
            self._progress.console.print(message, highlight=False, markup=False)
        else:
            from rich.console import Console

            Console(highlight=False).print(message, markup=False)

    def update(self, record: dict, supervised_tokens_per_s: float) -> None:
        if self._progress is None:
            return
        self._progress.update(
            self._task,
            advance=1,
            epoch=record["epoch"],
            loss=record["loss"],
            lr=record["lr"],
            tps=supervised_tokens_per_s,
            eff=record["packing_efficiency"],
        )
