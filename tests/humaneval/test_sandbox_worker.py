"""A reused sandbox keeps jobs apart: nothing of one job reaches the next, or the zygote.

Each test runs hostile jobs back to back in one ``SandboxWorker`` (as ``check_many`` does)
and asserts, as the next job sees it, that the previous job's files, processes, late writes
and payload are gone, and that the zygote which forks the jobs cannot be read or written.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from ocx.harness.sandbox import SandboxLimits
from ocx.harness.sandbox_worker import SandboxWorker

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="the sandbox relies on Linux namespaces"),
    pytest.mark.bwrap,
]
FAST = SandboxLimits(timeout_s=20, cpu_seconds=10, memory_bytes=1 << 30)

LEAVE_TRACES = r"""
import os, time
open("secret.txt", "w").write(PAYLOAD.decode())
open("/work/beside.txt", "w").write(PAYLOAD.decode())
if os.fork() == 0:  # outlives the job and keeps writing to stdout
    while True:
        time.sleep(0.05)
        os.write(1, b"FORGED")
os.write(1, b"A")
"""
LOOK_AROUND = r"""
import json, os, time
time.sleep(0.5)  # a leftover of the last job would write now
found = {"cwd": os.listdir("."), "work": os.listdir("/work"), "uid": os.getuid(),
         "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}
def probe(name, action):
    try:
        found[name] = "allowed: %r" % (action(),)
    except BaseException as exc:
        found[name] = "denied: " + type(exc).__name__
zygote = os.getppid()
probe("zygote_mem", lambda: open("/proc/%d/mem" % zygote, "rb").read(1))
probe("zygote_fds", lambda: os.listdir("/proc/%d/fd" % zygote))
probe("zygote_environ", lambda: open("/proc/%d/environ" % zygote, "rb").read())
probe("dev_shm", lambda: open("/dev/shm/x", "w").write("x"))
probe("sysv_shm", lambda: __import__("ctypes").CDLL(None).shmget(1234, 4096, 0o1666))
found["inherited_fds"] = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
os.write(1, json.dumps(found).encode())
"""


@pytest.fixture
def worker():
    with SandboxWorker() as w:
        yield w


def test_the_next_job_sees_no_file_process_or_late_write_of_the_last(worker):
    first = worker.run(LEAVE_TRACES, b"the first job's secret", FAST)
    assert (first.status, first.stdout) == ("ok", b"A"), first
    second = worker.run(LOOK_AROUND, b"", FAST)
    assert second.status == "ok", second
    found = json.loads(second.stdout)  # stdout is JSON only: no FORGED bytes from the leftover
    assert found["cwd"] == [] and found["work"] == ["job"], found
    assert len(found["pids"]) == 3, f"only init, the zygote and this job may run: {found['pids']}"
    assert found["inherited_fds"] == [0, 1, 2, 3], found  # 3: listdir's own descriptor


def test_a_job_cannot_read_the_zygote_or_leave_ipc_or_dev_files(worker):
    found = json.loads(worker.run(LOOK_AROUND, b"", FAST).stdout)
    for probe in ("zygote_mem", "zygote_fds", "zygote_environ", "dev_shm"):
        assert found[probe].startswith("denied"), (probe, found[probe])
    assert found["sysv_shm"] in ("allowed: -1", "denied: PermissionError"), found["sysv_shm"]
    if os.geteuid() == 0:
        assert found["uid"] != 0


def test_a_job_that_overruns_its_clock_takes_the_sandbox_down_and_the_next_job_gets_a_fresh_one(
    worker,
):
    slow = worker.run("import time\ntime.sleep(30)", b"", SandboxLimits(timeout_s=1, cpu_seconds=5))
    assert slow.status == "timeout"
    after = worker.run("import os\nos.write(1, b'fresh')", b"", FAST)
    assert (after.status, after.stdout) == ("ok", b"fresh"), after


def test_a_job_that_kills_its_zygote_fails_alone(worker):
    # As root the job's uid cannot signal the zygote; without root it can, which only ends this job.
    worker.run(
        "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\n"
        "except OSError:\n    pass",
        b"",
        FAST,
    )
    after = worker.run("import os\nos.write(1, b'still works')", b"", FAST)
    assert (after.status, after.stdout) == ("ok", b"still works"), after


def test_closing_an_idle_sandbox_lets_it_exit_by_itself_so_every_process_is_reaped():
    worker = SandboxWorker()
    assert worker.run("import os\nos.write(1, b'x')", b"", FAST).stdout == b"x"
    sandbox = worker._proc
    worker.close()
    assert sandbox.returncode == 0, "an idle sandbox ends at end of input, not by SIGKILL"
