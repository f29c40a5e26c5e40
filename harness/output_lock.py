"""One `ocx eval` at a time per output folder (and per response cache).

Two runs writing one folder would each send every uncached request (they plan from the same
empty cache) and then overwrite each other's results. The second run therefore refuses at once,
naming the folder and the process that holds it. The lock is an advisory `flock` on a file in the
folder: the kernel drops it when the holder exits, however it exits (SIGKILL included), so a
killed run never leaves a stale lock behind and a rerun resumes as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ocx.harness.errors import InputError, InputProblem

LOCK_FILE = ".ocx-eval.lock"


def _acquire(path: Path, flag: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise InputError(
            InputProblem(
                str(path.parent),
                None,
                flag,
                f"in use by another ocx eval ({holder}); wait for it to finish, or pass "
                f"another {flag}",
            )
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


@contextlib.contextmanager
def output_lock(output: Path, cache: Path | None = None) -> Iterator[None]:
    """Hold the output folder (and a cache kept elsewhere) for the duration of a run."""
    paths = [(Path(output) / LOCK_FILE, "--output")]
    if cache is not None and Path(cache).resolve().parent != Path(output).resolve():
        paths.append((Path(f"{cache}.lock"), "--cache"))
    handles = []
    try:
        for path, flag in paths:
            handles.append(_acquire(path, flag))
        yield
    finally:
        for handle in handles:
            handle.close()  # closing releases the flock
