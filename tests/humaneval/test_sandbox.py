"""The sandbox: hostile samples fail as samples and leave the machine and the run intact."""

from __future__ import annotations

import socket
import sys
import threading

import pytest

from ocx.harness.sandbox import SandboxLimits, best_isolation, run_in_sandbox

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox relies on Linux rlimits")

FAST = SandboxLimits(timeout_s=3, cpu_seconds=2, memory_bytes=1 << 30, max_processes=16)


def isolations():
    return ["namespace", "process"] if best_isolation() == "namespace" else ["process"]


@pytest.fixture
def victim(tmp_path):
    """A world-writable folder with a file, as /tmp is: only the sandbox may protect it."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    folder.chmod(0o777)
    (folder / "keep.txt").chmod(0o666)
    tmp_path.chmod(0o755)
    return folder


def assert_intact(folder):
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"], "the sample changed a folder outside its own"
    assert (folder / "keep.txt").read_text() == "keep", "the sample changed a file outside its folder"


def test_a_well_behaved_program_reports_its_result_and_may_use_its_own_folder():
    for isolation in isolations():
        result = run_in_sandbox("open('a.txt', 'w').write('x')\nreport([open('a.txt').read(), 2 + 2])",
                                isolation=isolation, limits=FAST)
        assert (result.status, result.result) == ("ok", ["x", 4]), (isolation, result)


@pytest.mark.parametrize("program", [
    "open({path!r} + '/keep.txt', 'w').write('gone')",
    "open({path!r} + '/new.txt', 'w').write('new')",
    "import os; os.remove({path!r} + '/keep.txt')",
    "import shutil; shutil.rmtree({path!r})",
    "import os; os.rename({path!r} + '/keep.txt', 'stolen.txt')",
    "import pathlib; pathlib.Path({path!r}, 'keep.txt').unlink()",
])
def test_writing_or_deleting_files_outside_the_working_folder_fails_and_leaves_them_intact(victim, program):
    for isolation in isolations():
        result = run_in_sandbox(program.format(path=str(victim)) + "\nreport('done')", isolation=isolation,
                                limits=FAST)
        assert result.status == "error" and result.result is None, (isolation, result)
        assert_intact(victim)


def test_the_kernel_alone_keeps_files_outside_read_only_in_namespace_isolation(victim):
    if best_isolation() != "namespace":
        pytest.skip("namespaces are not available on this machine")
    result = run_in_sandbox(f"open({str(victim)!r} + '/keep.txt', 'w').write('gone')", isolation="namespace",
                            guard=False, limits=FAST)
    assert result.status == "error" and "Read-only file system" in result.stderr, result
    assert_intact(victim)


def test_an_endless_loop_is_stopped_by_the_cpu_limit_or_the_wall_clock():
    for isolation in isolations():
        result = run_in_sandbox("while True:\n    pass", isolation=isolation, limits=FAST)
        assert result.status in ("killed", "timeout") and result.wall_s < FAST.timeout_s + 2, (isolation, result)


def test_a_sleeping_program_is_killed_at_the_wall_clock_timeout():
    limits = SandboxLimits(timeout_s=1, cpu_seconds=2)
    for isolation in isolations():
        result = run_in_sandbox("import time\ntime.sleep(60)", isolation=isolation, limits=limits)
        assert result.status == "timeout" and result.wall_s < 3, (isolation, result)


@pytest.mark.parametrize("program", ["x = bytearray(64 << 30)", "x = [0] * (10 ** 10)",
                                     "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 26))"])
def test_allocating_unbounded_memory_fails_with_memory_error(program):
    for isolation in isolations():
        result = run_in_sandbox(program + "\nreport('allocated')", isolation=isolation, limits=FAST)
        # On a loaded machine zeroing the chunks can outlast the wall clock: a timeout fails too.
        assert result.status in ("error", "killed", "timeout") and result.result is None, (isolation, result)


def test_forking_is_refused_by_the_guard():
    for isolation in isolations():
        result = run_in_sandbox("import os\nwhile True:\n    os.fork()", isolation=isolation, limits=FAST)
        assert result.status == "error" and "os.fork is not allowed" in result.stderr, (isolation, result)


def test_a_fork_bomb_without_the_guard_is_bounded_by_the_kernel_and_cleaned_up():
    if best_isolation() != "namespace":
        pytest.skip("namespaces are not available on this machine")
    program = ("import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
               "            time.sleep(60)\n            os._exit(0)\n        n += 1\n"
               "except OSError:\n    report(n)\n")
    result = run_in_sandbox(program, isolation="namespace", guard=False,
                            limits=SandboxLimits(timeout_s=20, max_processes=16))
    assert result.status == "ok" and isinstance(result.result, int), result
    assert result.result <= 300, f"{result.result} processes forked: not bounded"
    # The forked sleepers died with the namespace: nothing of the sample is left running.
    leftovers = run_in_sandbox("report(1)", isolation="namespace", limits=FAST)
    assert leftovers.status == "ok"


def test_opening_a_socket_fails_even_to_a_local_server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    try:
        for isolation in isolations():
            program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nreport('connected')"
            result = run_in_sandbox(program, isolation=isolation, limits=FAST)
            assert result.status == "error" and result.result is None, (isolation, result)
        if best_isolation() == "namespace":
            result = run_in_sandbox(program, isolation="namespace", guard=False, limits=FAST)
            assert result.status == "error" and "unreachable" in result.stderr, result
        assert not accepted, "a sandboxed sample reached a server on this machine"
    finally:
        server.close()


def test_the_working_folder_is_deleted_afterwards():
    result = run_in_sandbox("import os\nopen('left.txt', 'w').write('x')\nreport(os.getcwd())", isolation="process",
                            limits=FAST)
    from pathlib import Path

    assert result.status == "ok" and not Path(result.result).exists()


def test_output_floods_are_capped_and_do_not_reach_the_parent_memory():
    limits = SandboxLimits(timeout_s=5, cpu_seconds=4, file_bytes=1 << 20)
    result = run_in_sandbox("while True:\n    print('x' * 10000)", limits=limits)
    assert result.status in ("killed", "error", "timeout") and len(result.stdout) <= 16_384, result.status
