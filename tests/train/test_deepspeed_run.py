"""Real DeepSpeed runs on CPU (gloo): the loss falls, a killed run resumes, 2 ranks == 1 rank."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.train.conftest import clean_env, run_cli

pytest.importorskip("deepspeed")
pytestmark = [pytest.mark.deepspeed, pytest.mark.slow]

from ocx.adapters.train import TrainConfig, run_training  # noqa: E402
from ocx.adapters.train.progress import read_metrics  # noqa: E402

COMMON = dict(batch_max_len=1024, lr=3e-3, seed=7, gradient_checkpointing=False, progress=False)


@pytest.fixture(scope="module")
def reference_run(tiny_run_inputs, tmp_path_factory):
    """An uninterrupted 3-epoch run on the small ShareGPT-like dataset."""
    model, data = tiny_run_inputs
    out = tmp_path_factory.mktemp("reference") / "run"
    result = run_training(TrainConfig(data=data, model=str(model), out=out, epochs=3, **COMMON))
    return result, read_metrics(out)


def test_a_tiny_models_loss_falls_on_a_small_dataset(reference_run):
    result, metrics = reference_run
    first = [m["loss"] for m in metrics if m["epoch"] == 0]
    last = [m["loss"] for m in metrics if m["epoch"] == 2]
    # ln(32002) = 10.4 at the start; the unigram statistics alone are worth > 1 nat.
    assert sum(last) / len(last) < sum(first) / len(first) - 1.0, (first, last)
    assert [m["step"] for m in metrics] == list(range(1, result.steps + 1))
    assert {"step", "epoch", "loss", "lr", "tokens", "supervised_tokens", "time"} <= set(metrics[0])


def test_each_epoch_is_checkpointed_as_a_loadable_hf_folder_with_template_and_metadata(
    reference_run, tiny_run_inputs
):
    from transformers import AutoModelForCausalLM

    from ocx.adapters.hf.checkpoint import read_ocx_metadata
    from ocx.harness.templates import get_template

    result, _ = reference_run
    assert [p.name for p in result.checkpoints] == ["epoch_0", "epoch_1", "epoch_2"]
    last = result.checkpoints[-1]
    assert (last / "model.safetensors").is_file() and (last / "chat_template.jinja").is_file()
    meta = read_ocx_metadata(last)
    assert meta["model_type"] == "openchat_3.5"
    assert meta["template_sha256"] == get_template("openchat_3.5").sha256
    manifest = json.loads((tiny_run_inputs[1] / "manifest.json").read_text())
    assert meta["tokenizer_sha256"] == manifest["tokenizer_sha256"]
    assert meta["training"]["epoch"] == 2 and meta["training"]["global_step"] == result.steps
    assert AutoModelForCausalLM.from_pretrained(last).config.vocab_size == 32002
    assert not [p for p in result.out.iterdir() if p.name.startswith(".")], (
        "temporary folders left behind"
    )


def test_a_run_killed_mid_epoch_resumes_and_finishes(reference_run, tiny_run_inputs, tmp_path):
    model, data = tiny_run_inputs
    ref_result, ref_metrics = reference_run
    out = tmp_path / "run"
    per_epoch = sum(1 for m in ref_metrics if m["epoch"] == 0)
    kill_after = per_epoch + 2  # inside epoch 1, after epoch 0's checkpoint
    args = [
        "--data",
        str(data),
        "--model",
        str(model),
        "--out",
        str(out),
        "--epochs",
        "3",
        "--batch-max-len",
        "1024",
        "--lr",
        "3e-3",
        "--seed",
        "7",
        "--no-gradient-checkpointing",
        "--no-progress",
        "--save-every-steps",
        "1",
    ]
    child = subprocess.Popen(
        [sys.executable, "-m", "ocx.adapters.train", *args],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and child.poll() is None:
            if (out / "metrics.jsonl").is_file() and len(read_metrics(out)) >= kill_after:
                break
            time.sleep(0.2)
        assert child.poll() is None, "the run ended before it could be killed"
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert not (out / "epoch_2").exists()

    result = run_training(
        TrainConfig(data=data, model=str(model), out=out, epochs=3, resume=True, **COMMON)
    )
    metrics = read_metrics(out)
    assert result.steps == ref_result.steps
    assert [m["step"] for m in metrics] == list(range(1, ref_result.steps + 1))
    assert [p.name for p in result.checkpoints] == ["epoch_0", "epoch_1", "epoch_2"]
    # The resumed run continues the same trajectory (same data order, weights, optimizer state).
    for mine, ref in zip(metrics, ref_metrics):
        assert mine["tokens"] == ref["tokens"]
        assert math.isclose(mine["loss"], ref["loss"], rel_tol=1e-3), (mine, ref)


def test_two_process_zero2_run_on_cpu_matches_a_one_process_runs_first_step_loss(
    tiny_run_inputs, zero2_first_step, tmp_path
):
    model, _ = tiny_run_inputs
    data, first_one = zero2_first_step  # 16 x 64 tokens: one step, as 1 x 1024 or 2 x 512
    common = [
        "--data",
        str(data),
        "--model",
        str(model),
        "--epochs",
        "1",
        "--lr",
        "1e-3",
        "--max-steps",
        "1",
        "--no-gradient-checkpointing",
        "--no-progress",
    ]
    two = run_cli([*common, "--out", str(tmp_path / "two"), "--batch-max-len", "512"], nproc=2)
    assert two.returncode == 0, two.stderr[-3000:]
    (first_two,) = read_metrics(tmp_path / "two")
    assert first_one["tokens"] == first_two["tokens"] == 1024
    assert json.loads((tmp_path / "two" / "train.json").read_text())["world_size"] == 2
    assert math.isclose(first_one["loss"], first_two["loss"], rel_tol=1e-5), (first_one, first_two)
