"""Recipes pick the best epoch with a paired test and say which epochs are indistinguishable."""

from __future__ import annotations

import json
from types import SimpleNamespace

from ocx.recipes.runner import EpochRow, best_epoch, column, tied_with_best


def _epoch(out, epoch, verdicts):
    folder = (
        out / "eval" / f"epoch_{epoch}" / "condition_0"
    )  # epochs are numbered as the checkpoint folders
    folder.mkdir(parents=True)
    folder.joinpath("samples.jsonl").write_text(
        "".join(
            json.dumps({"suite": "gsm8k", "id": f"gsm8k/main/{i}", "correct": bool(v)}) + "\n"
            for i, v in enumerate(verdicts)
        )
    )
    accuracy = sum(verdicts) / len(verdicts)
    return EpochRow(epoch, None, {column("gsm8k", "GPT4 Correct"): accuracy}, accuracy)


def test_an_epoch_ahead_by_noise_is_reported_as_indistinguishable_and_a_real_gap_is_not(tmp_path):
    recipe = SimpleNamespace(output=tmp_path, eval=SimpleNamespace(conditions=["GPT4 Correct"]))
    base = [1] * 100 + [0] * 100
    rows = [
        _epoch(tmp_path, 0, [0] * 40 + [1] * 60 + [0] * 100),  # 30%: far below
        _epoch(tmp_path, 1, base),  # 50%
        _epoch(tmp_path, 2, [0] * 3 + [1] * 97 + [1] * 5 + [0] * 95),
    ]  # 51%: best, by 2 items
    best = best_epoch(rows)
    assert best.epoch == 2
    tied = tied_with_best(recipe, rows, best)
    assert list(tied) == [1] and tied[1] > 0.05


def test_without_samples_files_nothing_is_claimed(tmp_path):
    recipe = SimpleNamespace(output=tmp_path, eval=SimpleNamespace(conditions=[""]))
    rows = [
        EpochRow(0, None, {column("gsm8k", ""): 0.5}, 0.5),
        EpochRow(1, None, {column("gsm8k", ""): 0.6}, 0.6),
    ]
    assert tied_with_best(recipe, rows, best_epoch(rows)) == {}
