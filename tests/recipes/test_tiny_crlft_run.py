"""`ocx recipe run tiny-crlft`: C-RLFT visibly works; a finished run resumes without retraining."""

from __future__ import annotations

import json

import pytest

from tests.cli import child_env, ocx_process

pytest.importorskip("torch")
pytest.importorskip("deepspeed")
pytest.importorskip("mistral_common")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-crlft")
    result = ocx_process(
        "recipe", "run", "tiny-crlft", "--output", out, env=child_env(), timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


@pytest.mark.slow
def test_accuracy_rises_over_epochs_and_the_expert_condition_beats_the_weak_one(tiny_run):
    out, _ = tiny_run
    report = json.loads((out / "report.json").read_text())
    epochs = report["epochs"]
    assert [e["epoch"] for e in epochs] == [
        0,
        1,
        2,
        3,
    ]  # as the checkpoint folders train/epoch_0..3
    gpt4 = [e["scores"]["arithmetic [GPT4]"] for e in epochs]
    gpt3 = [e["scores"]["arithmetic [GPT3]"] for e in epochs]
    assert gpt4[-1] >= gpt4[0] + 0.3, f"accuracy under GPT4 did not rise: {gpt4}"
    assert gpt4[-1] > gpt3[-1] + 0.2, f"GPT4 {gpt4} is not clearly above GPT3 {gpt3}"
    assert report["best_epoch"] == max(epochs, key=lambda e: (e["average"], -e["epoch"]))["epoch"]


@pytest.mark.slow
def test_the_run_prints_the_table_and_writes_checkpoints_and_reports(tiny_run):
    out, stdout = tiny_run
    assert "accuracy (%) after each epoch" in stdout and "best epoch: " in stdout
    assert sorted(p.name for p in (out / "train").glob("epoch_*")) == [
        "epoch_0",
        "epoch_1",
        "epoch_2",
        "epoch_3",
    ]
    meta = json.loads((out / "train" / "epoch_3" / "ocx.json").read_text())
    assert meta["model_type"] == "openchat_3.5" and meta["training"]["recipe"] == "tiny-crlft"
    page = (out / "report.html").read_text()
    assert "<svg" in page and "<polyline" in page  # the loss curve and the score lines


@pytest.mark.slow
def test_running_a_finished_recipe_again_trains_nothing_and_reports_the_same(tiny_run):
    out, _ = tiny_run
    before = json.loads((out / "report.json").read_text())
    steps_before = len((out / "train" / "metrics.jsonl").read_text().splitlines())
    again = ocx_process(
        "recipe", "run", "tiny-crlft", "--output", out, env=child_env(), timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "data: reusing" in again.stdout
    assert len((out / "train" / "metrics.jsonl").read_text().splitlines()) == steps_before
    assert json.loads((out / "report.json").read_text())["epochs"] == before["epochs"]
