"""Run untrusted code (model-generated programs) in a throwaway, confined process.

    >>> run = run_sandboxed("import os; os.write(1, b'%d' % sum(range(10)))")
    >>> run.status, run.stdout
    ('ok', b'45')

The sandbox has no verdict channel: a program writes *data* to its stdout, which the parent
reads (capped in size and time) and judges itself, in trusted code. What confines it:

* ``isolation="namespace"`` (the default): bubblewrap (``bwrap``) gives it new PID, network,
  IPC, UTS and mount namespaces. Its root is a fresh tmpfs holding read-only binds of the
  Python installation (the interpreter and its stdlib, site-packages hidden) and the system
  libraries; no /root, /home, /etc, project or other samples. /proc is a new one showing only
  the sandbox's processes (/proc/sys read-only); /dev is a minimal one; the working folder is a
  private size-limited tmpfs; the environment is empty; the only network is the sandbox's
  own loopback. As root, the sample runs under an unprivileged uid (one per concurrent run,
  from ``UID_BASE``) with no capabilities; otherwise bubblewrap's user namespace maps it to
  the caller's uid, and nested user namespaces are disabled.
* ``isolation="process"`` (only when asked for by name): the same bootstrap in a plain
  process: empty environment, rlimits, seccomp and the audit-hook guard, but the caller's
  uid and view of the filesystem. Not safe against hostile code.
* Always (``sandbox_child.py``): no_new_privs, rlimits, a seccomp filter (no exec, no new
  namespaces, mounts, ptrace, or sockets other than AF_UNIX), a wall-clock timeout after which
  the whole process group is SIGKILLed, and at most ``output_bytes`` of stdout kept.

A caller may judge the output as it streams (``watch``, called with each piece of stdout) and
stop the run early: once ``watch`` returns True the whole run is killed (status "stopped").

Many programs in a row: :class:`ocx.harness.sandbox_worker.SandboxWorker` keeps one sandbox and
runs each program in it as a job with the same confinement, without a sandbox start per program.

bubblewrap is Debian's/Fedora's ``bubblewrap`` package (``apt-get install -y bubblewrap``);
``OCX_BWRAP`` names another binary.
"""

from __future__ import annotations

import functools
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

CHILD = Path(__file__).with_name("sandbox_child.py")
SETUP_FAILED = 70  # must equal sandbox_child.SETUP_FAILED
ISOLATIONS = ("namespace", "process")
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install -y bubblewrap; "
    "Fedora: dnf install bubblewrap), "
    "or set OCX_BWRAP to its path"
)
UID_BASE, UID_SLOTS = 61000, 256  # unprivileged uids for samples when ocx runs as root
WORKDIR = "/work"  # the sample's folder inside the namespace sandbox
_STDERR_KEEP = 4096


@dataclass(frozen=True)
class SandboxLimits:
    """What one sandboxed run may use."""

    timeout_s: float = 10.0
    """Wall-clock seconds before the whole process group is killed."""
    cpu_seconds: int = 10
    """RLIMIT_CPU: CPU seconds (SIGXCPU, then SIGKILL one second later)."""
    memory_bytes: int = 4 << 30
    """RLIMIT_AS, RLIMIT_DATA and RLIMIT_STACK (EvalPlus's 4 GiB)."""
    max_processes: int = 32
    """RLIMIT_NPROC, counted per uid (each concurrent run has its own uid when ocx runs as root)."""
    file_bytes: int = 16 << 20
    """RLIMIT_FSIZE: largest file the sample may write."""
    disk_bytes: int = 64 << 20
    """Size of the private tmpfs working folder (namespace isolation)."""
    output_bytes: int = 64 << 20
    """Stdout kept; a program writing more is killed (status "output_limit")."""


@dataclass(frozen=True)
class SandboxRun:
    """How a sandboxed run ended. ``status``: "ok" (exit 0), "error" (non-zero exit), "timeout"
    (wall clock), "killed" (a signal: CPU, memory), "output_limit" (wrote over ``output_bytes``),
    "stopped" (killed because the caller's ``watch`` asked)."""

    status: str
    stdout: bytes
    stderr: str
    returncode: int | None
    wall_s: float
    isolation: str

    def to_dict(self) -> dict:
        record = asdict(self)
        record["stdout"] = self.stdout[:_STDERR_KEEP].decode("utf-8", errors="replace")
        return record


class SandboxUnavailableError(RuntimeError):
    """The requested isolation cannot be set up on this machine (the message says how to fix it)."""


def bwrap_path() -> str | None:
    """The bubblewrap binary: ``$OCX_BWRAP`` or ``bwrap`` on PATH (None if neither exists)."""
    named = os.environ.get("OCX_BWRAP")
    if named:
        return named if os.path.isfile(named) and os.access(named, os.X_OK) else None
    return shutil.which("bwrap")


def check_isolation(isolation: str) -> None:
    """Raise ``SandboxUnavailableError`` (or ValueError for an unknown mode) unless
    ``isolation`` works here."""
    if isolation not in ISOLATIONS:
        raise ValueError(f"unknown isolation {isolation!r}; choose one of {', '.join(ISOLATIONS)}")
    if sys.platform != "linux":
        raise SandboxUnavailableError(f"the sandbox needs Linux (this is {sys.platform})")
    if isolation == "namespace":
        if bwrap_path() is None:
            raise SandboxUnavailableError(
                f"namespace sandbox: bubblewrap (bwrap) not found; {INSTALL_HINT}"
            )
        _probe_namespace()


@functools.lru_cache(maxsize=4)
def _probe_namespace_cached(bwrap: str) -> str | None:
    run = _run(
        bwrap, "import os; os.write(1, b'ok')", b"", SandboxLimits(timeout_s=60), "namespace"
    )
    return None if run.stdout == b"ok" else f"exit {run.returncode}: {run.stderr.strip()[-500:]}"


def _probe_namespace() -> None:
    error = _probe_namespace_cached(bwrap_path())
    if error:
        raise SandboxUnavailableError(
            f"namespace sandbox: bubblewrap could not start a sandbox here ({error})"
        )


def run_sandboxed(
    program: str,
    payload: bytes = b"",
    *,
    limits: SandboxLimits | None = None,
    isolation: str = "namespace",
    watch: Callable[[bytes], bool] | None = None,
) -> SandboxRun:
    """Run ``program`` (Python source, trusted harness code) confined; it sees ``PAYLOAD`` (bytes)
    and ``install_guard()``, and whatever untrusted code it ``exec``s runs under the same
    confinement.
    ``watch`` (optional) sees each piece of stdout as it arrives; True kills the run ("stopped")."""
    check_isolation(isolation)
    return _run(bwrap_path(), program, payload, limits or SandboxLimits(), isolation, watch)


class _UidPool:
    """One unprivileged uid per concurrent run, so RLIMIT_NPROC and signals stay per run."""

    def __init__(self) -> None:
        self._free = list(range(UID_BASE + UID_SLOTS - 1, UID_BASE - 1, -1))
        self._cond = threading.Condition()

    def take(self) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._free)
            return self._free.pop()

    def give(self, uid: int) -> None:
        with self._cond:
            self._free.append(uid)
            self._cond.notify()


_UIDS = _UidPool()


def _run(bwrap, program, payload, limits, isolation, watch=None) -> SandboxRun:
    as_root = os.geteuid() == 0
    uid = _UIDS.take() if as_root else None
    scratch = Path(tempfile.mkdtemp(prefix="ocx-sandbox-"))
    try:
        workdir = WORKDIR if isolation == "namespace" else str(scratch / "work")
        if isolation == "process":
            os.mkdir(workdir, 0o700)
        config = {
            "workdir": workdir,
            "limits": asdict(limits),
            "program": program,
            "payload_len": len(payload),
            "uid": uid if isolation == "namespace" else None,
            "gid": uid,
        }
        argv = _python_argv()
        if isolation == "namespace":
            argv = _bwrap_argv(bwrap, limits, as_root) + argv
        return _execute(
            argv, json.dumps(config).encode() + b"\n" + payload, limits, isolation, scratch, watch
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if uid is not None:
            _UIDS.give(uid)


def _python_argv() -> list[str]:
    source = CHILD.read_text(encoding="utf-8")
    return [os.path.realpath(sys.executable), "-I", "-S", "-B", "-c", source]


def _bwrap_argv(
    bwrap: str, limits: SandboxLimits, as_root: bool, keep_kill: bool = False
) -> list[str]:
    argv = [
        bwrap,
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ]
    if (
        as_root
    ):  # no user namespace: the bootstrap changes to an unprivileged uid, which clears these
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        if keep_kill:  # a reused sandbox's zygote kills each job's leftovers (sandbox_worker.py)
            argv += ["--cap-add", "CAP_KILL"]
    else:
        argv += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    return argv + _filesystem_args(limits)


@functools.lru_cache(maxsize=1)
def _runtime_binds() -> tuple[str, ...]:
    """Read-only binds: the Python installation (site-packages hidden) and system libraries."""
    args: list[str] = []
    for path in ("/lib", "/lib64", "/lib32", "/usr/lib", "/usr/lib64", "/usr/lib32"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            if path.startswith("/usr/") and "/usr" not in args:
                # bwrap would make /usr 0700: a sample's uid could not load a system library
                # after the start (zlib for binascii, libffi for ctypes...)
                args += ["--perms", "0755", "--dir", "/usr"]
            args += ["--ro-bind", path, path]
    prefix = os.path.realpath(sys.base_prefix)
    # bwrap copies the modes of the parents it creates (/root is 0700): open them up.
    for parent in reversed(Path(prefix).parents[:-1]):
        args += ["--perms", "0755", "--dir", str(parent)]
    args += ["--ro-bind", prefix, prefix]
    exe_dir = os.path.dirname(os.path.realpath(sys.executable))
    if not exe_dir.startswith(prefix + "/"):
        args += ["--ro-bind", exe_dir, exe_dir]
    stdlib = Path(prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for hidden in ("site-packages", "dist-packages"):
        if (stdlib / hidden).is_dir():
            args += ["--tmpfs", str(stdlib / hidden)]
    return tuple(args)


def _filesystem_args(limits: SandboxLimits) -> list[str]:
    return [
        *_runtime_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(limits.disk_bytes),
        "--perms",
        "0777",
        "--tmpfs",
        WORKDIR,
        "--remount-ro",
        "/",
        "--remount-ro",
        "/dev",
        "--chdir",
        "/",
    ]  # /dev's tmpfs would be writable


def _execute(argv, stdin_data, limits, isolation, scratch, watch=None) -> SandboxRun:
    start = time.monotonic()
    with open(scratch / "stderr", "w+b") as err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env={},
            cwd=scratch,
            start_new_session=True,
            close_fds=True,
        )
        feeder = threading.Thread(target=_feed, args=(proc, stdin_data), daemon=True)
        feeder.start()
        try:
            stdout, over = _read_capped(proc, start + limits.timeout_s, limits.output_bytes, watch)
            timed_out = over == "timeout"
            if not over:
                try:
                    proc.wait(timeout=max(0.1, start + limits.timeout_s - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
        finally:
            _kill_group(proc.pid)
            proc.wait()
            feeder.join(timeout=5)
        err.seek(0)
        stderr = err.read(_STDERR_KEEP).decode("utf-8", errors="replace")
    status = (
        "timeout"
        if timed_out
        else "output_limit"
        if over == "output"
        else "stopped"
        if over == "stopped"
        else _exit_status(proc.returncode)
    )
    return SandboxRun(
        status, stdout, stderr, proc.returncode, round(time.monotonic() - start, 4), isolation
    )


def _exit_status(code: int) -> str:
    return "ok" if code == 0 else "killed" if code < 0 or code > 128 else "error"


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except (BrokenPipeError, ValueError, OSError):
        pass  # the child died before reading everything; its exit status tells why


def _read_capped(
    proc: subprocess.Popen, deadline: float, cap: int, watch: Callable[[bytes], bool] | None = None
) -> tuple[bytes, str | None]:
    """Stdout until EOF; stops early at the deadline ("timeout"), past ``cap`` bytes ("output"),
    or when ``watch`` returns True ("stopped")."""
    chunks, size = [], 0
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(chunks), "timeout"
            if not selector.select(timeout=left):
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks), None
            size += len(chunk)
            if size > cap:
                return b"".join(chunks), "output"
            chunks.append(chunk)
            if watch is not None and watch(chunk):
                return b"".join(chunks), "stopped"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
