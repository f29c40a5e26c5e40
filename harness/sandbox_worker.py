"""A reusable sandbox: one bubblewrap sandbox that runs many jobs, each in a fresh process.

Starting a sandbox (bubblewrap's namespaces and mounts, then a Python interpreter) costs far
more than a HumanEval program runs, so a scorer keeps one :class:`SandboxWorker` per worker
thread and runs every program of that thread through it. Isolation per job is what
:func:`ocx.harness.sandbox.run_sandboxed` gives one run (see ``sandbox_child.py``, serve mode):

* the job is a process forked from a *zygote* that never reads any job's program or payload
  (the job reads them from the pipe itself), is not dumpable (a job cannot read or write its
  memory) and holds no descriptor a job keeps; as root each job gets an unprivileged uid from
  the same pool as one-shot runs, which clears the zygote's capabilities in the job;
* each job has its own rlimits and an empty working folder; when it ends, every process in the
  sandbox but the zygote and init is killed and the folder emptied before the next job starts;
  /dev and the root are read-only, and System V / message-queue IPC is refused by seccomp, so
  nothing of one job is left for the next;
* the job's end is reported on a separate pipe only the zygote holds, after all its processes
  are dead, so the bytes of a job's stdout are exactly what that job wrote.

A job that overruns its wall clock or output cap takes the whole sandbox down (it is killed
and started afresh on the next job), as does anything unexpected on the zygote's side.

A caller that judges a job's output as it streams (``run(..., watch=...)``) can stop the job
early: when ``watch`` returns True, the parent writes ``stop <job>`` on a control pipe that only
the zygote holds, and the zygote kills the job (status "stopped"). Nothing else goes into the
sandbox: the job itself never sees that pipe, and the sandbox stays up for the next job.
"""

from __future__ import annotations

import fcntl
import functools
import json
import marshal
import os
import select
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ocx.harness.sandbox import (
    _STDERR_KEEP,
    _UIDS,
    SETUP_FAILED,
    WORKDIR,
    SandboxLimits,
    SandboxRun,
    _bwrap_argv,
    _exit_status,
    _kill_group,
    _python_argv,
    bwrap_path,
    check_isolation,
)

PIPE_BYTES = 1 << 20
# A job that writes many small frames (one per output) would wake this process for each; after
# a small read, wait this long (or until the job ends) so that they arrive together.
GATHER_BELOW, GATHER_S = 64 << 10, 0.002


def _header(record: dict) -> bytes:
    data = json.dumps(record).encode()
    return len(data).to_bytes(8, "big") + data


class SandboxWorker:
    """Runs programs one at a time, each confined as one ``run_sandboxed`` run, in a sandbox that
    is started once (lazily) and reused. Not thread-safe: one per thread. Close it (or use
    ``with``)."""

    def __init__(
        self, isolation: str = "namespace", disk_bytes: int = SandboxLimits().disk_bytes
    ) -> None:
        if (
            isolation != "namespace"
        ):  # the zygote kills every process it can see: only in its own PID namespace
            raise ValueError(
                f"a reused sandbox needs namespace isolation, not {isolation!r}; use run_sandboxed"
            )
        check_isolation(isolation)
        self.isolation, self.disk_bytes = isolation, disk_bytes
        self._proc: subprocess.Popen | None = None
        self._jobs = 0
        self._busy = False  # a job was sent and its end not reported

    def __enter__(self) -> SandboxWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        self._scratch = Path(tempfile.mkdtemp(prefix="ocx-sandbox-worker-"))
        self._status_r, status_w = os.pipe()
        control_r, self._control_w = os.pipe()
        os.set_blocking(self._control_w, False)  # a stop is a few bytes; never wait on the zygote
        self._stderr = open(self._scratch / "stderr", "w+b")
        limits = SandboxLimits(disk_bytes=self.disk_bytes)
        workdir = WORKDIR
        argv = (
            _bwrap_argv(bwrap_path(), limits, os.geteuid() == 0, keep_kill=True)
            + _python_argv()
            + ["serve"]
        )
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={},
            cwd=self._scratch,
            start_new_session=True,
            pass_fds=(status_w, control_r),
        )
        os.close(status_w)
        os.close(control_r)
        self._proc.stdin.write(
            _header({"workdir": workdir, "status_fd": status_w, "control_fd": control_r})
        )
        self._proc.stdin.flush()
        self._status, self._busy = b"", False
        try:  # room for a big output in fewer, larger reads
            fcntl.fcntl(self._proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # above /proc/sys/fs/pipe-max-size: the default size works too

    def close(self) -> None:
        """Stop the sandbox (a later ``run`` starts a new one)."""
        if self._proc is None:
            return
        import shutil

        if (
            not self._busy
        ):  # between jobs: end of input makes the zygote exit, and the sandbox with it
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=5)  # a normal exit: each process is reaped by its parent
            except (OSError, subprocess.TimeoutExpired):
                pass
        _kill_group(self._proc.pid)  # a job still running, or a zygote that did not exit
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        os.close(self._status_r)
        os.close(self._control_w)
        self._stderr.close()
        shutil.rmtree(self._scratch, ignore_errors=True)
        self._proc = None

    def run(
        self,
        program: str,
        payload: bytes = b"",
        limits: SandboxLimits | None = None,
        watch: Callable[[bytes], bool] | None = None,
    ) -> SandboxRun:
        """Run one job. ``watch`` gets each piece of its stdout as it arrives; once it returns
        True the job is killed (status "stopped", unless it had already ended by itself)."""
        limits = limits or SandboxLimits()
        if limits.disk_bytes != self.disk_bytes:
            self.close()
            self.disk_bytes = limits.disk_bytes
        if self._proc is None:
            self._start()
        as_root = os.geteuid() == 0
        uid = _UIDS.take() if as_root else None
        try:
            return self._run_job(*_compiled(program), payload, limits, uid, watch)
        finally:
            if uid is not None:
                _UIDS.give(uid)

    def _run_job(
        self,
        program: bytes,
        compiled: bool,
        payload: bytes,
        limits: SandboxLimits,
        uid: int | None,
        watch: Callable[[bytes], bool] | None,
    ) -> SandboxRun:
        self._jobs += 1
        self._busy = True
        job = self._jobs
        err_start = self._stderr.seek(0, os.SEEK_END)
        header = _header(
            {
                "job": job,
                "program_len": len(program),
                "compiled": compiled,
                "payload_len": len(payload),
                "limits": asdict(limits),
                "uid": uid,
                "gid": uid,
            }
        )
        start = time.monotonic()
        feeder = threading.Thread(
            target=_feed_open, args=(self._proc, header + program + payload), daemon=True
        )
        feeder.start()
        self._watch, self._stopped = watch, False
        try:
            stdout, how = self._collect(job, start + limits.timeout_s, limits.output_bytes)
        except BaseException:  # the caller's watch failed: never leave a job running in the sandbox
            self.close()
            raise
        feeder.join(timeout=5 if how.startswith("done") else 0)
        self._stderr.seek(err_start)
        stderr = self._stderr.read(_STDERR_KEEP).decode("utf-8", errors="replace")
        wall = round(time.monotonic() - start, 4)
        if not how.startswith("done"):
            self.close()  # timeout, output cap, or the sandbox died: a fresh one for the next job
            status = {"timeout": "timeout", "output": "output_limit"}.get(how, "killed")
            return SandboxRun(status, stdout, stderr or how, None, wall, self.isolation)
        code = int(how.split()[2])
        if (
            code == SETUP_FAILED or feeder.is_alive()
        ):  # unread input would be taken for the next job's header
            self._busy = True  # so close() kills the sandbox at once instead of letting it read on
            self.close()
        status = "stopped" if self._stopped and code != 0 else _exit_status(code)
        return SandboxRun(status, stdout, stderr, code, wall, self.isolation)

    def _collect(self, job: int, deadline: float, cap: int) -> tuple[bytes, str]:
        """The job's stdout until the zygote reports it done (then what is left in the pipe)."""
        out_fd = self._proc.stdout.fileno()
        chunks, size = [], 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(chunks), "timeout"
            ready, _, _ = select.select([out_fd, self._status_r], [], [], left)
            if out_fd in ready:
                chunk = os.read(out_fd, 1 << 20)
                if not chunk:
                    return b"".join(chunks), "sandbox exited"
                size += len(chunk)
                if size > cap:
                    return b"".join(chunks), "output"
                chunks.append(chunk)
                self._look(job, chunk)
                if len(chunk) < GATHER_BELOW:
                    select.select([self._status_r], [], [], min(GATHER_S, max(left, 0)))
                continue
            if self._status_r in ready:
                line = self._read_status()
                if line is None:
                    return b"".join(chunks), "sandbox exited"
                if not line:
                    continue
                if line.split()[:2] != ["done", str(job)]:
                    return b"".join(chunks), f"unexpected status {line[:80]!r}"
                self._busy = False
                rest, over = _drain(out_fd, cap - size)
                self._look(job, rest)
                return b"".join(chunks) + rest, "output" if over else line

    def _look(self, job: int, chunk: bytes) -> None:
        """Show ``chunk`` to the caller's watch; at its first True, ask the zygote to stop the
        job."""
        if self._watch is None or not chunk or not self._watch(chunk) or self._stopped:
            return
        self._stopped = True
        try:
            os.write(self._control_w, f"stop {job}\n".encode())
        except OSError:
            pass  # the sandbox died (the status pipe says so) or the pipe is full of stale stops

    def _read_status(self) -> str | None:
        """A complete status line, "" if only part of one has arrived, None at EOF."""
        chunk = os.read(self._status_r, 4096)
        if not chunk:
            return None
        self._status += chunk
        if b"\n" not in self._status:
            return ""
        line, self._status = self._status.split(b"\n", 1)
        return line.decode("ascii", errors="replace")


@functools.lru_cache(maxsize=8)
def _compiled(program: str) -> tuple[bytes, bool]:
    """(``program`` compiled as the job would compile it and marshalled, True): a job loads it
    instead of compiling the same harness program again (milliseconds per job). A program that
    does not compile goes as source (False), so that the job reports its error as before."""
    try:
        code = compile(program, "<sandbox-program>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return program.encode("utf-8"), False
    return marshal.dumps(code), True


def _drain(fd: int, room: int) -> tuple[bytes, bool]:
    """What is already in the pipe (every writer has exited), at most ``room`` bytes."""
    chunks, size = [], 0
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        size += len(chunk)
        if size > room:
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


def _feed_open(proc: subprocess.Popen, data: bytes) -> None:
    """Write a job to the zygote's stdin, leaving it open for the next job."""
    try:
        proc.stdin.write(data)
        proc.stdin.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass  # the sandbox died; the status pipe says so
