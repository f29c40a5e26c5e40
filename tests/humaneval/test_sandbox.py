"""The sandbox as a hostile sample sees it: every capability probe is denied by the kernel.

The probes run without the audit-hook guard (``install_guard`` is not called), so what is
asserted is what namespace isolation, the unprivileged uid, rlimits and seccomp enforce.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

import pytest

from ocx.harness.sandbox import (
    SandboxLimits,
    SandboxUnavailableError,
    check_isolation,
    run_sandboxed,
)

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the sandbox relies on Linux namespaces"
)
FAST = SandboxLimits(timeout_s=20, cpu_seconds=10, memory_bytes=1 << 30)

PROBES = r"""
import json, os, signal, socket, sys
cfg = json.loads(PAYLOAD)
found = {}
def probe(name, action):
    try:
        found[name] = "allowed: %r" % (action(),)
    except BaseException as exc:
        found[name] = "denied: " + type(exc).__name__
probe("core_pattern", lambda: open("/proc/sys/kernel/core_pattern", "w").write("|/tmp/x"))
def via_dir_fd():
    d = os.open("/proc/sys", os.O_RDONLY)
    return os.write(os.open("kernel/core_pattern", os.O_WRONLY, dir_fd=d), b"|/tmp/x")
probe("core_pattern_dir_fd", via_dir_fd)
probe("shadow", lambda: open("/etc/shadow").read())
probe("root_ssh", lambda: os.listdir("/root/.ssh"))
probe("host_file", lambda: open(cfg["host_file"]).read())
probe("project", lambda: os.listdir(cfg["project"]))
probe("write_outside", lambda: open("/outside.txt", "w").write("x"))
probe("write_host_dir", lambda: open(cfg["host_dir"] + "/planted.txt", "w").write("x"))
probe("loopback", lambda: socket.create_connection(("127.0.0.1", cfg["port"]), timeout=2))
probe("inet_socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
probe("signal_parent", lambda: os.kill(cfg["parent_pid"], signal.SIGTERM))
probe("signal_init", lambda: os.kill(1, signal.SIGKILL))
probe("exec_shell", lambda: os.execv("/bin/sh", ["sh", "-c", "id"]))
probe("exec_python", lambda: os.execv(sys.executable, [sys.executable, "-c", "pass"]))
probe("new_user_namespace", lambda: os.unshare(os.CLONE_NEWUSER))
found["env"] = sorted(os.environ)
found["uid"] = [line.split()[1:] for line in open("/proc/self/status") if line.startswith("Uid")][0]
found["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
os.write(1, json.dumps(found).encode())
"""


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    check_isolation("namespace")
    host = tmp_path_factory.mktemp("host")
    (host / "secret.txt").write_text("host secret")
    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    os.environ["OPENAI_API_KEY"] = "sk-parent-secret"
    try:
        config = {
            "host_file": str(host / "secret.txt"),
            "host_dir": str(host),
            "port": server.getsockname()[1],
            "parent_pid": os.getpid(),
            "project": os.getcwd(),
        }
        run = run_sandboxed(PROBES, json.dumps(config).encode(), limits=FAST)
    finally:
        del os.environ["OPENAI_API_KEY"]
        server.close()
    assert run.status == "ok", run
    return json.loads(run.stdout), host


@pytest.mark.parametrize(
    "probe",
    [
        "core_pattern",
        "core_pattern_dir_fd",
        "shadow",
        "root_ssh",
        "host_file",
        "project",
        "write_outside",
        "write_host_dir",
        "loopback",
        "inet_socket",
        "signal_parent",
        "signal_init",
        "exec_shell",
        "exec_python",
        "new_user_namespace",
    ],
)
@pytest.mark.bwrap
def test_a_capability_probe_is_denied_by_the_kernel_without_the_guard(probed, probe):
    found, _ = probed
    assert found[probe].startswith("denied"), found[probe]


@pytest.mark.bwrap
def test_the_sample_sees_an_empty_environment_an_unprivileged_uid_and_only_its_own_processes(
    probed,
):
    found, host = probed
    assert "OPENAI_API_KEY" not in found["env"] and len(found["env"]) <= 2, found["env"]
    if os.geteuid() == 0:
        assert all(int(uid) >= 61000 for uid in found["uid"]), found["uid"]
    assert max(found["pids"]) < 10, found["pids"]
    assert (
        not (host / "planted.txt").exists() and (host / "secret.txt").read_text() == "host secret"
    )


@pytest.mark.bwrap
def test_a_sample_under_its_own_uid_can_import_modules_that_load_system_libraries():
    # binascii and zlib load libz from /usr/lib after the bootstrap has dropped to the sample's
    # uid (EvalPlus's samples can import them; the producer's float blobs need base64).
    run = run_sandboxed(
        "import os, base64, zlib\nos.write(1, b'%o' % (os.stat('/usr').st_mode & 0o777))"
    )
    assert (run.status, run.stdout) == ("ok", b"755"), run.stderr


@pytest.mark.bwrap
def test_one_sample_cannot_read_what_another_wrote_even_while_it_runs():
    writer = (
        "import os, time\nopen('/work/answer.txt', 'w').write('sample A')\n"
        "os.write(1, b'written')\ntime.sleep(3)"
    )
    reader = (
        "import os, time\ntime.sleep(1)\n"
        "seen = [p for p in os.listdir('/work')]"
        " + [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "os.write(1, repr(seen).encode())"
    )
    runs = {}
    threads = [
        threading.Thread(target=lambda k=k, p=p: runs.__setitem__(k, run_sandboxed(p, limits=FAST)))
        for k, p in (("writer", writer), ("reader", reader))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runs["writer"].stdout == b"written"
    assert b"answer" not in runs["reader"].stdout and runs["reader"].status == "ok", runs["reader"]


@pytest.mark.bwrap
def test_a_sleeping_program_is_killed_at_the_wall_clock_and_an_endless_loop_by_the_cpu_limit():
    start = time.monotonic()
    run = run_sandboxed("import time\ntime.sleep(60)", limits=SandboxLimits(timeout_s=1.5))
    assert run.status == "timeout" and time.monotonic() - start < 6, run
    run = run_sandboxed("while True:\n    pass", limits=SandboxLimits(timeout_s=30, cpu_seconds=1))
    assert run.status == "killed" and run.wall_s < 10, run


@pytest.mark.bwrap
def test_unbounded_memory_fails_with_memory_error_and_a_fork_bomb_is_bounded():
    run = run_sandboxed(
        "try:\n    x = bytearray(8 << 30)\n"
        "except MemoryError:\n    import os; os.write(1, b'refused')",
        limits=FAST,
    )
    assert run.stdout == b"refused", run
    bomb = (
        "import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            import time; time.sleep(30)\n"
        "        n += 1\nexcept OSError:\n    os.write(1, str(n).encode())"
    )
    run = run_sandboxed(bomb, limits=SandboxLimits(timeout_s=20, max_processes=16))
    assert run.status == "ok" and int(run.stdout) < 16, run


@pytest.mark.bwrap
def test_output_floods_are_capped_in_the_parent():
    run = run_sandboxed(
        "import os\nwhile True:\n    os.write(1, b'x' * 65536)",
        limits=SandboxLimits(timeout_s=20, output_bytes=1 << 20),
    )
    assert run.status == "output_limit" and len(run.stdout) <= 1 << 20, run.status


def test_namespace_mode_without_bubblewrap_is_an_error_that_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv("OCX_BWRAP", "/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailableError, match="apt-get install -y bubblewrap"):
        run_sandboxed("pass")
