"""Gradient accumulation: N micro-steps make the same optimizer step as one N-times-larger
batch, because the C-RLFT loss is normalised by the weight sum of all of them."""

from __future__ import annotations

import json

import pytest

from tests.train.conftest import write_token_dataset

pytest.importorskip("deepspeed")
pytestmark = [pytest.mark.deepspeed, pytest.mark.slow]

from ocx.adapters.train import TrainConfig, run_training  # noqa: E402
from ocx.adapters.train.progress import read_metrics  # noqa: E402

FAST = dict(gradient_checkpointing=False, progress=False, lr=1e-2, epochs=1)


def four_conversations_of_32_tokens(out):
    """Unequal supervision per conversation (30, 5, 20 and 10 tokens, weights 1, 1, 0.5, 2): a
    loss normalised per micro-step instead of globally weighs the two halves differently."""
    plan = [(30, 1.0), (5, 1.0), (20, 0.5), (10, 2.0)]
    rows = [
        ([(97 * i + 13 * t) % 31000 + 100 for t in range(32)], [0.0] * (32 - n) + [w] * n)
        for i, (n, w) in enumerate(plan)
    ]
    return write_token_dataset(out, rows)


def test_two_accumulated_micro_steps_give_the_parameters_of_one_twice_larger_step(
    tiny_run_inputs, tmp_path
):
    from safetensors.torch import load_file

    model, _ = tiny_run_inputs
    data = four_conversations_of_32_tokens(tmp_path / "data")
    accumulated, single = tmp_path / "accumulated", tmp_path / "single"
    # 64 tokens per row hold 2 conversations: 2 micro-steps; 128 hold all 4: 1 step.
    run_training(
        TrainConfig(
            data=data,
            model=str(model),
            out=accumulated,
            batch_max_len=64,
            grad_accum_steps=2,
            **FAST,
        )
    )
    run_training(TrainConfig(data=data, model=str(model), out=single, batch_max_len=128, **FAST))

    (a,), (b,) = read_metrics(accumulated), read_metrics(single)
    assert (a["step"], a["micro_steps"], a["sequences"], b["micro_steps"], b["sequences"]) == (
        1,
        2,
        4,
        1,
        4,
    )
    # The loss and the gradient norm (before clipping) are those of the whole batch: a 1/N or a
    # per-micro-step normalisation would change them even where Adam's first step would not.
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    assert (
        json.loads((accumulated / "train.json").read_text())["fingerprint"]["deepspeed"][
            "gradient_accumulation_steps"
        ]
        == 2
    )

    after_a = load_file(accumulated / "epoch_0" / "model.safetensors")
    after_b = load_file(single / "epoch_0" / "model.safetensors")
    before = load_file(model / "model.safetensors")
    moved = max(float((after_b[k] - before[k]).abs().max()) for k in before)
    assert moved > 1e-3  # the step did change the weights
    for key in before:
        assert (after_a[key] - after_b[key]).abs().max() <= 1e-5 + 1e-4 * moved, key


class Killed(Exception):
    pass


def test_a_run_killed_between_accumulated_steps_resumes_onto_the_same_trajectory(
    tiny_run_inputs, tmp_path, monkeypatch
):
    from safetensors.torch import load_file

    from ocx.adapters.train import checkpoint

    model, _ = tiny_run_inputs
    data = four_conversations_of_32_tokens(tmp_path / "data")
    # 32 tokens per row: 4 micro-steps per epoch, 2 optimizer steps of 2; 2 epochs.
    settings = dict(
        data=data,
        model=str(model),
        batch_max_len=32,
        grad_accum_steps=2,
        save_every_steps=1,
        **{**FAST, "epochs": 2},
    )
    run_training(TrainConfig(out=tmp_path / "straight", **settings))

    save_state, saved = checkpoint.save_state, []

    def save_then_die(engine, out, step, client):
        save_state(engine, out, step, client)
        saved.append(client["position"])
        if step == 1:  # mid-epoch, after the first accumulated step: 2 of 4 micro-steps done
            raise Killed

    monkeypatch.setattr(checkpoint, "save_state", save_then_die)
    with pytest.raises(Killed):
        run_training(TrainConfig(out=tmp_path / "resumed", **settings))
    monkeypatch.setattr(checkpoint, "save_state", save_state)
    assert saved == [{"epoch": 0, "step_in_epoch": 2, "global_step": 1}]
    run_training(TrainConfig(out=tmp_path / "resumed", resume=True, **settings))

    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "resumed")
    assert (
        [(m["step"], m["epoch"], m["sequences"]) for m in resumed]
        == [(m["step"], m["epoch"], m["sequences"]) for m in straight]
        == [(1, 0, 2), (2, 0, 2), (3, 1, 2), (4, 1, 2)]
    )
    for a, b in zip(straight, resumed):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["lr"] == b["lr"]
    after_a = load_file(tmp_path / "straight" / "epoch_1" / "model.safetensors")
    after_b = load_file(tmp_path / "resumed" / "epoch_1" / "model.safetensors")
    for key in after_a:
        assert (after_a[key] - after_b[key]).abs().max() <= 1e-5, key
