"""A recipe output folder as `ocx recipe run` leaves it, written from numbers.

No training, no model.

eval/epoch_<n>/condition_<i>/{results.json,samples.jsonl}, train/metrics.jsonl (step, validation
and epoch lines) and report.json's recipe fields: what the report code reads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

CONDITIONS = ["GPT4", "GPT3"]
SUITES = ["arithmetic", "gsm8k"]
ACCURACY = {  # (suite, condition) -> accuracy per epoch (0, 1, 2); items are 100 per suite
    ("arithmetic", "GPT4"): [0.30, 0.80, 0.95],
    ("gsm8k", "GPT4"): [0.20, 0.50, 0.93],
    ("arithmetic", "GPT3"): [0.25, 0.40, 0.45],
    ("gsm8k", "GPT3"): [0.10, 0.20, 0.22],
}
STEPS_PER_EPOCH = 40
N = 100


def _wilson(p: float, n: int) -> list[float]:
    z = 1.959963984540054
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [centre - half, centre + half]


def write_recorded_run(out: Path, epochs: int = 3, validation: bool = True) -> Path:
    for epoch in range(epochs):
        for i, condition in enumerate(CONDITIONS):
            folder = out / "eval" / f"epoch_{epoch}" / f"condition_{i}"
            folder.mkdir(parents=True)
            summary, samples = {}, []
            for suite in SUITES:
                p = ACCURACY[(suite, condition)][epoch]
                correct = round(p * N)
                summary[suite] = {
                    "accuracy": correct / N,
                    "n": N,
                    "unmatched": 0,
                    "unmatched_rate": 0.0,
                    "stderr": math.sqrt(p * (1 - p) / N),
                    "ci95": _wilson(correct / N, N),
                }
                samples += [
                    {"suite": suite, "id": f"{suite}/{k}", "correct": k < correct} for k in range(N)
                ]
            accuracies = [s["accuracy"] for s in summary.values()]
            average = sum(accuracies) / len(accuracies)
            (folder / "results.json").write_text(
                json.dumps(
                    {
                        "model_name": f"tiny epoch {epoch}",
                        "condition": condition,
                        "summary": summary,
                        "average": average,
                        "average_ci95": [average - 0.05, average + 0.05],
                    }
                )
            )
            (folder / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    lines, step = [], 0
    for epoch in range(epochs):
        for _ in range(STEPS_PER_EPOCH):
            step += 1
            lines.append(
                {
                    "kind": "step",
                    "step": step,
                    "epoch": epoch,
                    "loss": 3.0 * math.exp(-step / 40) + 0.2,
                }
            )
            if validation and step % 20 == 0:
                lines.append(
                    {
                        "kind": "val",
                        "step": step,
                        "epoch": epoch,
                        "epoch_end": step % STEPS_PER_EPOCH == 0,
                        "val_loss": 3.1 * math.exp(-step / 45) + 0.3,
                        "val_sequences": 50,
                    }
                )
        lines.append(
            {
                "kind": "epoch",
                "step": step,
                "epoch": epoch,
                "steps": STEPS_PER_EPOCH,
                **({"val_loss": 3.1 * math.exp(-step / 45) + 0.3} if validation else {}),
            }
        )
    (out / "train").mkdir(parents=True)
    (out / "train" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (out / "report.json").write_text(
        json.dumps(
            {
                "recipe": "recorded",
                "file": "recorded.yaml",
                "model_type": "openchat_3.5",
                "conditions": CONDITIONS,
                "suites": SUITES,
                "epochs": [],
            }
        )
    )
    return out
