"""`ocx train` validates its flags before loading anything heavy."""

from __future__ import annotations

import subprocess
import sys

from tests.train.conftest import clean_env


def test_bad_flags_are_reported_together_with_exit_code_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocx.cli",
            "train",
            "--data",
            str(tmp_path / "missing"),
            "--model",
            "m",
            "--out",
            str(tmp_path / "o"),
            "--epochs",
            "0",
            "--lr",
            "-1",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    for flag in ("--data", "--epochs", "--lr"):
        assert flag in proc.stderr


def test_infinite_or_nan_float_settings_are_refused_before_training(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocx.cli",
            "train",
            "--data",
            str(tmp_path / "missing"),
            "--model",
            "m",
            "--out",
            str(tmp_path / "o"),
            "--lr",
            "inf",
            "--grad-clip",
            "nan",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--lr: must be a positive finite number, got inf" in proc.stderr
    assert "--grad-clip: must be a finite number" in proc.stderr
