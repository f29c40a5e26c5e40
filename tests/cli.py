"""Run the `ocx` CLI in-process, as a user types it, for tests that check exit codes and messages."""

from __future__ import annotations

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
