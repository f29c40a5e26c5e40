"""`ocx train` validates its flags before loading anything heavy."""

from __future__ import annotations

from tests.train.conftest import run_cli


def train_with(tmp_path, *flags: str):
    """`ocx train` (in a child process, as a user runs it) on a dataset that does not exist."""
    args = ["--data", str(tmp_path / "missing"), "--model", "m", "--out", str(tmp_path / "o")]
    return run_cli([*args, *flags], timeout=60)


def test_bad_flags_are_reported_together_with_exit_code_2(tmp_path):
    proc = train_with(tmp_path, "--epochs", "0", "--lr", "-1")
    assert proc.returncode == 2
    for flag in ("--data", "--epochs", "--lr"):
        assert flag in proc.stderr


def test_infinite_or_nan_float_settings_are_refused_before_training(tmp_path):
    proc = train_with(tmp_path, "--lr", "inf", "--grad-clip", "nan")
    assert proc.returncode == 2
    assert "--lr: must be a finite number > 0 and <= 1, got inf" in proc.stderr
    assert "--grad-clip: must be a finite number" in proc.stderr


def test_the_adamw_flags_reach_the_settings_and_are_range_checked(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ocx.cli.train import train_command
    from tests.train.conftest import write_token_dataset

    data = write_token_dataset(tmp_path / "data", [([5, 6, 7, 8], [0.0, 1.0, 1.0, 1.0])])
    received = []
    monkeypatch.setattr("ocx.adapters.train.run_training", lambda cfg: received.append(cfg))
    monkeypatch.setattr("ocx.cli.train._report", lambda result: None)
    args = ["--data", str(data), "--model", "m", "--out", str(tmp_path / "o")]
    adamw = ["--beta1", "0.8", "--beta2", "0.99", "--eps", "1e-6", "--weight-decay", "0"]
    result = CliRunner().invoke(train_command(), [*args, *adamw])
    assert result.exit_code == 0, result.output
    assert [(c.beta1, c.beta2, c.eps, c.weight_decay) for c in received] == [(0.8, 0.99, 1e-6, 0)]
    result = CliRunner().invoke(train_command(), [*args, "--beta2", "1", "--eps", "0"])
    assert str(result.exception).splitlines() == [
        "ocx train: --beta2: must be a finite number >= 0 and < 1, got 1.0",
        "ocx train: --eps: must be a finite number > 0 and <= 1, got 0.0",
    ]
