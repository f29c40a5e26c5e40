"""ZeRO-3 for real: 2 processes on CPU (gloo) match 1-process ZeRO-2, save consolidated HF
checkpoints, and resume."""

from __future__ import annotations

import json
import math

import pytest

from tests.train.conftest import run_cli

pytest.importorskip("deepspeed")
pytestmark = [pytest.mark.deepspeed, pytest.mark.slow]

from ocx.adapters.train.progress import read_metrics  # noqa: E402


def test_two_process_zero3_matches_zero2_saves_consolidated_checkpoints_and_resumes(
    tiny_run_inputs, zero2_first_step, tmp_path
):
    import torch
    from transformers import AutoModelForCausalLM

    model, _ = tiny_run_inputs
    # 16 sequences of 64 tokens and a 1-process ZeRO-2 run's first (and only) step on them,
    # shared with test_deepspeed_run.py: one step per epoch, as 1 x 1024 or 2 x 512 tokens.
    data, z2 = zero2_first_step
    common = [
        "--data",
        str(data),
        "--model",
        str(model),
        "--lr",
        "1e-3",
        "--no-gradient-checkpointing",
        "--no-progress",
    ]
    out = tmp_path / "z3"
    first = run_cli(
        [
            *common,
            "--out",
            str(out),
            "--epochs",
            "3",
            "--batch-max-len",
            "512",
            "--zero-stage",
            "3",
            "--max-steps",
            "2",
        ],
        nproc=2,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    info = json.loads((out / "train.json").read_text())
    assert (info["world_size"], info["zero_stage"]) == (2, 3)
    z3 = read_metrics(out)
    assert z3[0]["tokens"] == z2["tokens"] == 1024
    assert math.isclose(z3[0]["loss"], z2["loss"], rel_tol=1e-5), (z3[0], z2)

    base = AutoModelForCausalLM.from_pretrained(model)
    for epoch in (0, 1):
        saved = AutoModelForCausalLM.from_pretrained(out / f"epoch_{epoch}")
        shapes = {k: v.shape for k, v in saved.state_dict().items()}
        assert shapes == {k: v.shape for k, v in base.state_dict().items()}
        assert not torch.equal(saved.lm_head.weight, base.lm_head.weight), (
            "the consolidated head was not trained"
        )
    assert not (out / "epoch_2").exists()

    # Continue to epoch 3 (without --max-steps, a changed setting, hence --force-resume).
    resumed = run_cli(
        [
            *common,
            "--out",
            str(out),
            "--epochs",
            "3",
            "--batch-max-len",
            "512",
            "--zero-stage",
            "3",
            "--resume",
            "--force-resume",
        ],
        nproc=2,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "--max-steps: the run has 2, now None" in resumed.stdout
    assert [m["step"] for m in read_metrics(out)] == [1, 2, 3]
    assert [s["epoch"] for s in read_metrics(out, kind="epoch")] == [0, 1, 2]
    assert (
        AutoModelForCausalLM.from_pretrained(out / "epoch_2").config.vocab_size
        == base.config.vocab_size
    )
