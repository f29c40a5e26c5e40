"""One real run with a held-out validation set, accumulated steps and both trackers: the
validation loss is the checkpoint's weighted C-RLFT loss on the held-out conversations, and
TensorBoard's event files and W&B's offline run hold what metrics.jsonl holds."""

from __future__ import annotations

import json
import math

import pytest

from tests.train.wandb_records import wandb_history

pytest.importorskip("deepspeed")
pytest.importorskip("tensorboard")
pytest.importorskip("wandb")
pytestmark = [pytest.mark.deepspeed, pytest.mark.slow]

from ocx.adapters.train import (  # noqa: E402
    TrainConfig,
    run_training,
    tracking,  # noqa: E402
)
from ocx.adapters.train.progress import read_metrics  # noqa: E402

SCORES = {
    0: {"gsm8k [GPT4 Correct]": 0.25, "gsm8k [GPT3]": 0.125},
    1: {"gsm8k [GPT4 Correct]": 0.5, "gsm8k [GPT3]": 0.25},
}


@pytest.fixture(scope="module")
def tracked_run(tiny_run_inputs, tmp_path_factory):
    model, data = tiny_run_inputs
    out = tmp_path_factory.mktemp("tracked") / "run"
    mp = pytest.MonkeyPatch()
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR"):
        mp.delenv(key, raising=False)
    mp.setenv("WANDB_SILENT", "true")
    mp.setenv("WANDB_CONFIG_DIR", str(out.parent / "wandb-config"))
    mp.setenv("WANDB_CACHE_DIR", str(out.parent / "wandb-cache"))

    def evaluate(epoch, checkpoint):  # what the recipe runner does after each epoch's evaluation
        tracking.log_eval_scores(epoch, SCORES[epoch], out)

    cfg = TrainConfig(
        data=data,
        model=str(model),
        out=out,
        epochs=2,
        batch_max_len=1024,
        lr=3e-3,
        seed=7,
        gradient_checkpointing=False,
        progress=False,
        grad_accum_steps=2,
        val_fraction=0.25,
        val_every_steps=1,
        report_to=["tensorboard", "wandb"],
    )
    try:
        run_training(cfg, on_epoch_end=evaluate)
    finally:
        mp.undo()
    return cfg, out


def test_a_quarter_of_the_conversations_is_held_out_and_never_trained(tracked_run):
    cfg, out = tracked_run
    epochs = read_metrics(out, kind="epoch")
    assert [(e["sequences"], e["dataset_sequences"]) for e in epochs] == [(18, 18), (18, 18)]
    assert {v["val_sequences"] for v in read_metrics(out, kind="val")} == {6}


def test_accumulated_epochs_count_optimizer_steps_and_the_schedule_follows_them(tracked_run):
    from ocx.adapters.train.schedule import cosine_with_warmup

    cfg, out = tracked_run
    steps, info = read_metrics(out), json.loads((out / "train.json").read_text())
    assert [s["step"] for s in steps] == list(range(1, info["total_steps"] + 1))
    assert sum(s["micro_steps"] for s in steps) > len(steps)  # two micro-steps per optimizer step
    for s in steps:
        expected = cfg.lr * cosine_with_warmup(
            s["step"],
            warmup_steps=info["warmup_steps"],
            total_steps=info["total_steps"],
            min_ratio=cfg.lr_min_ratio,
        )
        assert s["lr"] == pytest.approx(expected)
        assert s["grad_norm"] > 0 and s["tokens_per_s"] > 0 and 0 < s["packing_efficiency"] <= 1


def test_validation_loss_is_logged_every_step_and_at_each_epoch_end(tracked_run):
    cfg, out = tracked_run
    steps, vals = read_metrics(out), read_metrics(out, kind="val")
    epoch_ends = [e["step"] for e in read_metrics(out, kind="epoch")]
    assert sorted(v["step"] for v in vals) == [s["step"] for s in steps]  # K=1: every step, once
    assert [v["step"] for v in vals if v["epoch_end"]] == epoch_ends
    for summary in read_metrics(out, kind="epoch"):
        (at_end,) = [v for v in vals if v["epoch_end"] and v["epoch"] == summary["epoch"]]
        assert summary["val_loss"] == at_end["val_loss"]
        assert math.isfinite(summary["val_loss"])


def test_the_validation_loss_equals_the_checkpoints_weighted_loss_on_the_held_out_conversations(
    tracked_run,
):
    import torch
    from transformers import AutoModelForCausalLM

    from ocx.adapters.train.loss import full_logits_loss_sum
    from ocx.adapters.train.validation import split_by_conversation
    from ocx.harness.data import load_tokenized

    cfg, out = tracked_run
    data = load_tokenized(cfg.data)
    _, held = split_by_conversation(data, cfg.val_fraction, cfg.seed)
    lm = AutoModelForCausalLM.from_pretrained(out / "epoch_1", dtype=torch.float32)
    loss_sum = weight_sum = 0.0
    with torch.no_grad():
        for i in held:
            row = data[int(i)]
            hidden = lm.model(
                input_ids=torch.tensor(row["input_ids"], dtype=torch.long)[None]
            ).last_hidden_state
            weights = torch.tensor(row["weights"])
            loss_sum += float(
                full_logits_loss_sum(
                    hidden, lm.lm_head.weight, torch.tensor(row["labels"]), weights
                )
            )
            weight_sum += float(weights.sum())
    (summary,) = [e for e in read_metrics(out, kind="epoch") if e["epoch"] == 1]
    assert summary["val_loss"] == pytest.approx(loss_sum / weight_sum, rel=1e-4)


def test_tensorboard_event_files_hold_the_step_validation_and_eval_scalars(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg, out = tracked_run
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    steps = read_metrics(out)
    for key, tag in tracking.STEP_SCALARS.items():
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert logged == [(s["step"], pytest.approx(s[key], rel=1e-6)) for s in steps], tag
    vals = read_metrics(out, kind="val")
    assert [(e.step, e.value) for e in events.Scalars("val/loss")] == [
        (v["step"], pytest.approx(v["val_loss"], rel=1e-6)) for v in vals
    ]
    ends = [e["step"] for e in read_metrics(out, kind="epoch")]
    for name in SCORES[0]:
        assert [(e.step, e.value) for e in events.Scalars(f"eval/{name}")] == [
            (ends[epoch], SCORES[epoch][name]) for epoch in (0, 1)
        ]


def test_wandb_runs_offline_under_the_output_folder_with_the_same_history(tracked_run):
    cfg, out = tracked_run
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    history = wandb_history(run_file)
    by_step = {}
    for row in history:
        by_step.setdefault(row["trainer/global_step"], {}).update(row)
    for s in read_metrics(out):
        assert by_step[s["step"]]["train/loss"] == pytest.approx(s["loss"], rel=1e-6)
        assert by_step[s["step"]]["train/grad_norm"] == pytest.approx(s["grad_norm"], rel=1e-6)
    for v in read_metrics(out, kind="val"):
        assert by_step[v["step"]]["val/loss"] == pytest.approx(v["val_loss"], rel=1e-6)
    ends = [e["step"] for e in read_metrics(out, kind="epoch")]
    assert by_step[ends[1]]["eval/gsm8k [GPT4 Correct]"] == 0.5
