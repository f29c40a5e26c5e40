"""`ocx train` validates its flags before loading anything heavy."""

from __future__ import annotations

import subprocess
import sys

from tests.train.conftest import clean_env


def test_bad_flags_are_reported_together_with_exit_code_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ocx.cli", "train", "--data", str(tmp_path / "missing"), "--model", "m",
                           "--out", str(tmp_path / "o"), "--epochs", "0", "--lr", "-1"],
                          capture_output=True, text=True, env=clean_env(), timeout=60)
    assert proc.returncode == 2
    for flag in ("--data", "--epochs", "--lr"):
        assert flag in proc.stderr
