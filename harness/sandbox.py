"""Run untrusted code (model-generated programs) in a confined, throwaway child process.

    >>> result = run_in_sandbox("report(sum(range(10)))")
    >>> result.status, result.result
    ('ok', 45)

Every call starts a fresh ``python -I -B`` process (``sandbox_child.py``) in its own session,
with a throwaway working directory that is deleted afterwards. What confines it:

* ``isolation="namespace"`` (used when the kernel allows it; root in CI, or unprivileged user
  namespaces): private mount, network, PID, IPC and UTS namespaces. Every mount is read-only,
  the working directory is a private size-limited tmpfs, there is no network device but a
  down loopback, and the sample holds no capabilities (in its own user namespace, so
  RLIMIT_NPROC counts only its own processes). When its PID 1 dies the kernel kills everything
  the sample started.
* ``isolation="process"`` (the fallback): capabilities are still dropped, but the sample keeps
  the caller's uid, so writes, deletes, sockets and forks are refused only by the audit-hook
  guard below, and only the process group is killed on timeout.
* Always: rlimits on address space, CPU seconds, processes, file size and core dumps; a
  wall-clock timeout after which the whole process group is SIGKILLed; stdout/stderr go to
  size-limited files, never into the parent's memory; ``guard=True`` adds an audit hook that
  refuses sockets, process creation, ctypes and filesystem changes outside the working dir.

The child talks back only through JSON lines on a private file descriptor; the parent never
unpickles anything a sandboxed process wrote.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

CHILD = Path(__file__).with_name("sandbox_child.py")
SETUP_FAILED = 70  # must equal sandbox_child.SETUP_FAILED
ISOLATIONS = ("auto", "namespace", "process")
_OUTPUT_KEEP = 16_384  # bytes of stdout/stderr kept for the record


@dataclass(frozen=True)
class SandboxLimits:
    """What one sandboxed run may use."""

    timeout_s: float = 10.0
    """Wall-clock seconds before the whole process group is killed."""
    cpu_seconds: int = 10
    """RLIMIT_CPU: CPU seconds (SIGXCPU, then SIGKILL one second later)."""
    memory_bytes: int = 2 << 30
    """RLIMIT_AS: address space, so allocating without bound raises MemoryError."""
    max_processes: int = 32
    """RLIMIT_NPROC (the kernel ignores it for uid 0). In namespace isolation the PID
    namespace's pid_max is also set to max(301, this + 1), a bound that holds for root too
    (Linux >= 6.14)."""
    file_bytes: int = 16 << 20
    """RLIMIT_FSIZE: largest file the sample may write (stdout and stderr included)."""
    disk_bytes: int = 64 << 20
    """Size of the private tmpfs working directory (namespace isolation)."""


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed run ended.

    ``status``: ``"ok"`` (exit 0), ``"error"`` (non-zero exit), ``"timeout"`` (wall clock),
    ``"killed"`` (a signal: CPU limit, memory, file size).
    """

    status: str
    result: object = None
    """The last object the program passed to ``report()`` (JSON), or None."""
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0
    isolation: str = "process"
    setup_warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class SandboxSetupError(RuntimeError):
    """The requested isolation could not be set up on this machine."""


def run_in_sandbox(program: str, payload: bytes = b"", *, limits: SandboxLimits | None = None,
                   isolation: str = "auto", guard: bool = True) -> SandboxResult:
    """Run ``program`` (Python source) confined; it sees ``PAYLOAD`` (bytes) and ``report(obj)``.

    The program itself is trusted harness code (e.g. a checker); whatever untrusted code it
    ``exec``s runs under the same confinement.
    """
    if isolation not in ISOLATIONS:
        raise ValueError(f"unknown isolation {isolation!r}; choose one of {', '.join(ISOLATIONS)}")
    limits = limits or SandboxLimits()
    mode = best_isolation() if isolation == "auto" else isolation
    result = _run_once(program, payload, limits, mode, guard)
    if result is None:
        raise SandboxSetupError(f"{mode} isolation could not be set up on this machine")
    return result


@functools.lru_cache(maxsize=1)
def best_isolation() -> str:
    """``"namespace"`` when this machine lets us build one (probed once per process), else ``"process"``."""
    if sys.platform != "linux":
        return "process"
    try:
        probe = _run_once("report(1)", b"", SandboxLimits(timeout_s=30), "namespace", True)
    except OSError:
        return "process"
    return "namespace" if probe is not None and probe.result == 1 else "process"


def _run_once(program: str, payload: bytes, limits: SandboxLimits, isolation: str,
              guard: bool) -> SandboxResult | None:
    """One confined run; None when the isolation could not be set up."""
    base = Path(tempfile.mkdtemp(prefix="ocx-sandbox-"))
    try:
        work, io_dir = base / "work", base / "io"
        work.mkdir()
        io_dir.mkdir(mode=0o700)
        os.chmod(work, 0o700)
        return _launch(program, payload, limits, isolation, guard, work, io_dir)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _launch(program, payload, limits, isolation, guard, work, io_dir) -> SandboxResult | None:
    report_r = os.open(io_dir / "report", os.O_RDWR | os.O_CREAT, 0o600)
    config = {"isolation": isolation, "guard": guard, "workdir": str(work), "report_fd": report_r,
              "payload_len": len(payload), "limits": asdict(limits), "program": program}
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    start = time.monotonic()
    with open(io_dir / "stdout", "wb") as out, open(io_dir / "stderr", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-I", "-B", str(CHILD)], stdin=subprocess.PIPE, stdout=out,
                                stderr=err, cwd=work, env=env, pass_fds=(report_r,), start_new_session=True)
        os.close(report_r)
        timed_out = _feed_and_wait(proc, json.dumps(config).encode() + b"\n" + payload, limits.timeout_s)
    wall = time.monotonic() - start
    lines = _report_lines(io_dir / "report")
    if proc.returncode == SETUP_FAILED and any("setup_error" in line for line in lines):
        return None
    setup = next((line["setup"] for line in lines if "setup" in line), {})
    results = [line["result"] for line in lines if "result" in line]
    if timed_out:
        status = "timeout"
    elif proc.returncode == 0:
        status = "ok"
    else:
        status = "killed" if proc.returncode < 0 else "error"
    return SandboxResult(
        status=status, result=results[-1] if results else None, returncode=proc.returncode,
        stdout=_head(io_dir / "stdout"), stderr=_head(io_dir / "stderr"), wall_s=round(wall, 4),
        isolation=isolation, setup_warnings=list(setup.get("read_only_failures", [])),
    )


def _feed_and_wait(proc: subprocess.Popen, data: bytes, timeout_s: float) -> bool:
    """Send the config, wait for exit; on timeout SIGKILL the whole group. True if timed out."""
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the child died before reading everything; its exit status tells why
    try:
        proc.wait(timeout=timeout_s)
        return False
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait()
        return True
    finally:
        # Anything the sample left in its group dies with it (namespace isolation needs no
        # help: PID 1 exiting takes the whole PID namespace along).
        _kill_group(proc.pid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _report_lines(path: Path) -> list[dict]:
    lines = []
    with open(path, "rb") as f:
        for raw in f.read(_OUTPUT_KEEP * 64).splitlines():
            try:
                obj = json.loads(raw)
            except ValueError:
                continue  # a line the sample scribbled or cut short: not a report
            if isinstance(obj, dict):
                lines.append(obj)
    return lines


def _head(path: Path) -> str:
    with open(path, "rb") as f:
        return f.read(_OUTPUT_KEEP).decode("utf-8", errors="replace")
