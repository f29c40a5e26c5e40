"""Run the `ocx` CLI in-process, as a user types it, for tests of exit codes and messages."""

from __future__ import annotations

import os
import subprocess
import sys

PROCESS_GROUP_ENV = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def child_env(drop: tuple[str, ...] = (), **settings: str) -> dict:
    """This process's environment for a child ocx process, without the rank/port variables an
    in-process training test may have left (their port is still held), so the child makes its
    own process group; without `drop`, with `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in PROCESS_GROUP_ENV and k not in drop}
    env.update(settings)
    return env


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
