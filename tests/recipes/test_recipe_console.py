"""`ocx recipe run` on the console: one table per epoch, no third-party progress bars, and the
live training bar never drawn through a table.

The recipe runs for real (data, tiny base model, evaluation of every epoch's checkpoint with
the transformers backend) except the training itself: a stand-in trainer draws the real
training bar and writes metrics, and hands the base model back as each epoch's checkpoint.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("mistral_common")

STEPS = 3
HF_SWITCHES = (
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "HF_DATASETS_DISABLE_PROGRESS_BARS",
    "TRANSFORMERS_VERBOSITY",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS",
    "DATASETS_VERBOSITY",
)


def stand_in_training(cfg, on_epoch_end=None):
    """The trainer's console and files without the optimisation: the real TrainProgress bar,
    metrics.jsonl lines, and epoch_<n> folders (copies of the base model)."""
    from ocx.adapters.train.progress import MetricsLog, TrainProgress

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = MetricsLog(out, None)
    with TrainProgress(cfg.epochs * STEPS, 0, True) as bar:
        for epoch in range(cfg.epochs):
            for k in range(STEPS):
                record = {
                    "kind": "step",
                    "step": epoch * STEPS + k + 1,
                    "epoch": epoch,
                    "loss": 2.0 / (k + 1),
                    "lr": 1e-3,
                    "packing_efficiency": 0.9,
                }
                metrics.write(record)
                bar.update(record, 100.0)
            metrics.write(
                {"kind": "epoch", "step": (epoch + 1) * STEPS, "epoch": epoch, "steps": STEPS}
            )
            shutil.copytree(cfg.model, out / f"epoch_{epoch}")
            bar.log(f"epoch {epoch}: {STEPS} steps")
            on_epoch_end(epoch, out / f"epoch_{epoch}")
    metrics.close()


@pytest.fixture
def terminal():
    """The process's rich console, pointed at a buffer that behaves as a terminal.

    Live displays are on.
    """
    import rich

    console = rich.get_console()
    saved = dict(console.__dict__)
    buffer = io.StringIO()
    rich.reconfigure(file=buffer, force_terminal=True, width=160, color_system=None)
    yield buffer
    console.__dict__ = saved


@pytest.mark.slow  # ~15 s: a tiny model is loaded and evaluated 4 times (2 epochs x 2 conditions)
def test_a_recipe_run_prints_one_table_per_epoch_and_no_third_party_bars(
    tmp_path, monkeypatch, capsys, terminal
):
    import transformers

    import ocx.adapters.train
    from ocx.recipes import load_recipe
    from ocx.recipes.runner import run_recipe

    for name in HF_SWITCHES:  # as a user's shell: Hugging Face's bars and warnings on
        monkeypatch.delenv(name, raising=False)
    transformers.utils.logging.enable_progress_bar()
    monkeypatch.setattr(ocx.adapters.train, "run_training", stand_in_training)
    recipe = load_recipe("tiny-crlft", ["train.epochs=2", "eval.limit=2", "eval.max_tokens=2"])
    recipe.output = tmp_path / "run"
    for spec in recipe.data:
        spec.count = 8
    recipe.tiny = {**recipe.tiny, "hidden_size": 32, "intermediate_size": 64}

    run_recipe(recipe)

    captured = capsys.readouterr()
    shown = terminal.getvalue() + captured.out + captured.err
    for third_party in ("Loading weights", "Writing model shards", "it/s]", "Generating"):
        assert third_party not in shown
    assert shown.count("accuracy (%) after each epoch") == 2  # one table per epoch
    assert "matcher)" not in shown  # not the evaluation's own table after every condition
    lines = shown.replace("\r", "\n").split("\n")
    starts = [i for i, line in enumerate(lines) if "after each epoch" in line]
    ends = [i for i, line in enumerate(lines) if "└" in line]
    assert len(starts) == len(ends) == 2
    for start, end in zip(starts, ends):
        assert not any("sup tok/s" in line for line in lines[start : end + 1]), (
            "the training bar was drawn inside a table"
        )
    assert "best epoch:" in shown and re.search(r"run/train/epoch_[01]\)", shown)
    report = json.loads((recipe.output / "report.json").read_text())
    assert [e["epoch"] for e in report["epochs"]] == [0, 1]
    assert [e["checkpoint"] for e in report["epochs"]] == ["train/epoch_0", "train/epoch_1"]
