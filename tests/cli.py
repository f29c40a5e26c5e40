"""Run the `ocx` CLI in-process, as a user types it, for tests of exit codes and messages."""

from __future__ import annotations

import subprocess
import sys


def invoke_ocx(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `ocx ARGS...` run through the real entry point."""
    from ocx.cli import main

    monkeypatch.setattr(sys, "argv", ["ocx", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def ocx_process(*args, env: dict | None = None, timeout: float = 120, cwd=None):
    """`python -m ocx.cli ARGS...` in a child process, output captured as text: for what cannot
    run in the test's process (a launcher, a process that must exit before any model loads)."""
    return subprocess.run(
        [sys.executable, "-m", "ocx.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=cwd,
    )


def invoke_train(monkeypatch, capsys, data, out, *flags) -> tuple[int, str, str]:
    """`ocx train --data DATA --model m --out OUT FLAGS...`, for tests of its flag checks."""
    return invoke_ocx(
        monkeypatch, capsys, "train", "--data", data, "--model", "m", "--out", out, *flags
    )
