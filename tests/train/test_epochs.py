"""Every epoch trains every conversation exactly once, on 1 and on 2 processes, and says so;
a diverging loss stops the run; a tokenizer that is not the data's is refused before training."""

from __future__ import annotations

import json
import random
import shlex
import subprocess
import sys

import pytest

from tests.train.conftest import clean_env, run_cli, write_token_dataset

pytest.importorskip("deepspeed")
pytestmark = [pytest.mark.deepspeed, pytest.mark.slow]

from ocx.adapters.train.progress import read_metrics  # noqa: E402

FAST = ["--lr", "1e-3", "--no-gradient-checkpointing", "--no-progress"]


@pytest.fixture(scope="module")
def conversations_300(tmp_path_factory):
    """300 short conversations (8-40 tokens), so 3 epochs take a few steps each; only each one's
    last 2 tokens are supervised, since the LM head's cost (most of a step's) is per such token."""
    rng = random.Random(1)
    rows = []
    for _ in range(300):
        n = rng.randint(8, 40)
        rows.append(([rng.randrange(32000) for _ in range(n)], [0.0] * (n - 2) + [1.0] * 2))
    return write_token_dataset(tmp_path_factory.mktemp("data300") / "data", rows)


def assert_every_epoch_trained_all(out, epochs: int, sequences: int, tokens: int):
    summaries = read_metrics(out, kind="epoch")
    assert [s["epoch"] for s in summaries] == list(range(epochs))
    for s in summaries:
        assert (s["sequences"], s["dataset_sequences"], s["tokens"], s["truncated"]) == (
            sequences,
            sequences,
            tokens,
            0,
        ), s
    steps = read_metrics(out)
    for epoch in range(epochs):
        assert sum(m["sequences"] for m in steps if m["epoch"] == epoch) == sequences


def test_three_epochs_on_one_process_train_all_300_conversations_each(
    tiny_run_inputs, conversations_300, tmp_path
):
    model, _ = tiny_run_inputs
    out = tmp_path / "run"
    proc = run_cli(
        [
            "--data",
            str(conversations_300),
            "--model",
            str(model),
            "--out",
            str(out),
            "--epochs",
            "3",
            "--batch-max-len",
            "2048",
            *FAST,
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    tokens = json.loads((conversations_300 / "manifest.json").read_text())["counts"]["tokens"]
    assert_every_epoch_trained_all(out, 3, 300, tokens)
    assert "epoch 2: 300 of 300 sequences" in proc.stdout
    meta = json.loads((out / "epoch_2" / "ocx.json").read_text())
    assert meta["training"]["trained"]["sequences"] == 300


def test_three_epochs_on_two_processes_started_by_the_printed_launch_command_train_all_300_each(
    tiny_run_inputs, conversations_300, tmp_path
):
    model, _ = tiny_run_inputs
    out = tmp_path / "run"
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocx.cli",
            "train",
            "--data",
            str(conversations_300),
            "--model",
            str(model),
            "--out",
            str(out),
            "--epochs",
            "3",
            "--batch-max-len",
            "1024",
            *FAST,
            "--nnodes",
            "1",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(_port()),
            "--print-launch-command",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )
    assert printed.returncode == 0, printed.stderr
    proc = subprocess.run(
        shlex.split(printed.stdout.strip().splitlines()[-1]),
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "train.json").read_text())["world_size"] == 2
    tokens = json.loads((conversations_300 / "manifest.json").read_text())["counts"]["tokens"]
    assert_every_epoch_trained_all(out, 3, 300, tokens)


def test_one_conversation_on_two_processes_trains_in_epoch_0(tiny_run_inputs, tmp_path):
    from safetensors.torch import load_file

    model, _ = tiny_run_inputs
    data = write_token_dataset(
        tmp_path / "data", [(list(range(100, 140)), [0.0] * 10 + [1.0] * 30)]
    )
    out = tmp_path / "run"
    proc = run_cli(
        [
            "--data",
            str(data),
            "--model",
            str(model),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-max-len",
            "512",
            *FAST,
        ],
        nproc=2,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (step,) = read_metrics(out)
    assert (step["epoch"], step["sequences"], step["tokens"]) == (0, 1, 40)
    before, after = (
        load_file(model / "model.safetensors"),
        load_file(out / "epoch_0" / "model.safetensors"),
    )
    assert any(not (before[k] == after[k]).all() for k in before), "epoch_0 is the untrained model"


def test_a_nan_loss_stops_the_run_with_exit_1_and_a_clear_error(tiny_run_inputs, tmp_path):
    model, _ = tiny_run_inputs
    # A NaN loss weight (a corrupt dataset) makes the first step's loss NaN, deterministically.
    data = write_token_dataset(
        tmp_path / "data", [(list(range(100, 140)), [0.0] * 10 + [float("nan")] * 30)] * 4
    )
    out = tmp_path / "run"
    proc = run_cli(
        [
            "--data",
            str(data),
            "--model",
            str(model),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--batch-max-len",
            "1024",
            *FAST,
        ]
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "error: ocx train: the loss is nan at step 1 (epoch 0)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "epoch_0").exists()


def test_a_base_model_whose_tokenizer_is_not_the_datas_is_refused_before_loading(
    tiny_run_inputs, llama2_tokenizer_file, tmp_path
):
    import shutil

    _, data = tiny_run_inputs
    other = tmp_path / "llama2-base"  # only a tokenizer: the check runs before any weights load
    other.mkdir()
    shutil.copy(llama2_tokenizer_file, other / "tokenizer.model")
    for args in (
        ["--model", str(other)],
        ["--model", str(tiny_run_inputs[0]), "--tokenizer", str(llama2_tokenizer_file)],
    ):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "ocx.cli",
                "train",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "o"),
                *args,
            ],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=300,
        )
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "tokenizer sha256" in proc.stderr and "differs from the one" in proc.stderr
        assert "Traceback" not in proc.stderr


def _port() -> int:
    from tests.train.conftest import _free_port

    return _free_port()
