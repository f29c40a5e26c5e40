"""Bootstrap of a sandboxed process for :mod:`ocx.harness.sandbox` (never imported by ocx).

The parent starts ``python -I -S -B -c <this source>`` (inside bubblewrap in namespace mode),
with a JSON config line and a payload on stdin. Before the harness *program* runs, this code:

1. drops to the unprivileged uid/gid the parent chose (namespace mode as root: bubblewrap
   keeps only CAP_SETUID/CAP_SETGID for this step, and changing uid clears them);
2. sets ``no_new_privs`` and dies with its parent;
3. sets rlimits: address space, data and stack (EvalPlus's memory cap), CPU seconds,
   processes, file size, open files, no core dumps;
4. installs a seccomp filter (x86_64 and aarch64): no execve/execveat, no new namespaces,
   mounts, ptrace (nor reading or writing other processes' memory), bpf, keyrings,
   userfaultfd, perf events, System V or POSIX message-queue IPC (they would outlive a sample
   in a reused sandbox), and sockets only of AF_UNIX.

With ``"serve": true`` in the config it is instead a *zygote*
(:class:`ocx.harness.sandbox_worker.SandboxWorker`): confined once (no_new_privs, not
dumpable, seccomp), with the stdlib of ``PRELOAD`` imported and its heap frozen out of the
garbage collector's sight, it reads job headers from stdin and forks a fresh process per job,
which reads its program (compiled by the parent, marshalled) and payload itself (so the zygote
never holds any sample's data), takes the job's uid, rlimits and a fresh working folder, and
runs the program. After each job the zygote kills every process but itself and the namespace's init,
empties the working folder as the job's uid, and reports the exit status on a separate
descriptor that no job process holds. While a job runs, the zygote also listens on a control
descriptor no job holds either: ``stop <job>`` from the parent kills that job at once (the
parent has already judged the job's outputs so far and needs no more of them); a ``stop`` for
any other job number (one that ended meanwhile) is ignored.

The program gets ``PAYLOAD`` (bytes) and ``install_guard()`` (an audit hook refusing sockets,
process creation, signals, ctypes and writes outside the working folder: a second line
behind the kernel, installed by the program just before it runs untrusted code). Only the
standard library is used, so nothing of ocx is loaded into a process that runs untrusted code.
"""

import ctypes
import gc
import json
import marshal
import os
import resource
import select
import signal
import struct
import sys
import traceback

SETUP_FAILED = 70  # exit code: confinement could not be set up (must equal sandbox.SETUP_FAILED)
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 38, 22, 2
PR_SET_DUMPABLE = 4
# Imported once by the zygote, not once per job: the stdlib the harness programs use, and what
# HumanEval programs import most (``from typing import List`` costs a cold interpreter ~10 ms).
PRELOAD = (
    "array",
    "base64",
    "copy",
    "math",
    "select",
    "shutil",
    "time",
    "encodings.idna",
    "typing",
    "collections",
    "functools",
    "itertools",
    "re",
    "hashlib",
    "heapq",
    "string",
)
RET_ALLOW, RET_KILL, RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
EPERM, EACCES = 1, 13
NAMESPACE_FLAGS = (
    0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
)
# (audit arch, x32 bit, {name: number}) per machine; syscalls refused with EPERM.
SYSCALLS = {
    "x86_64": (
        0xC000003E,
        0x40000000,
        {
            "execve": 59,
            "execveat": 322,
            "unshare": 272,
            "setns": 308,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "ptrace": 101,
            "bpf": 321,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "userfaultfd": 323,
            "perf_event_open": 298,
            "socket": 41,
            "clone": 56,
            "clone3": 435,
            "mount_setattr": 442,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "pidfd_getfd": 438,
            "shmget": 29,
            "semget": 64,
            "msgget": 68,
            "mq_open": 240,
        },
    ),
    "aarch64": (
        0xC00000B7,
        None,
        {
            "execve": 221,
            "execveat": 281,
            "unshare": 97,
            "setns": 268,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "ptrace": 117,
            "bpf": 280,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "userfaultfd": 282,
            "perf_event_open": 241,
            "socket": 198,
            "clone": 220,
            "clone3": 435,
            "mount_setattr": 442,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "pidfd_getfd": 438,
            "shmget": 194,
            "semget": 190,
            "msgget": 186,
            "mq_open": 180,
        },
    ),
}


class SetupError(Exception):
    pass


def _seccomp_program(machine):
    """Classic BPF for seccomp: refuse the syscalls above, allow the rest.

    ``socket`` is allowed for AF_UNIX only; ``clone`` only without namespace flags (a plain
    fork); ``clone3`` gets ENOSYS so that libc falls back to ``clone``, whose flags we can see.
    """
    arch, x32, nr = SYSCALLS[machine]
    ld_nr, ld_arch, ld_arg0 = (0x20, 0, 0), (0x20, 0, 4), (0x20, 0, 16)
    prog = [ld_arch, (0x15, 1, 0, arch), (0x06, 0, 0, RET_KILL), ld_nr]
    if x32 is not None:
        prog.append((0x35, 0, 1, x32))  # x32 ABI numbers: refuse them all
        prog.append((0x06, 0, 0, RET_ERRNO | EPERM))
    denied = [n for name, n in nr.items() if name not in ("socket", "clone", "clone3")]
    for number in denied:
        prog += [(0x15, 0, 1, number), (0x06, 0, 0, RET_ERRNO | EPERM)]
    prog += [(0x15, 0, 1, nr["clone3"]), (0x06, 0, 0, RET_ERRNO | 38)]  # ENOSYS
    prog += [
        (0x15, 0, 4, nr["socket"]),
        ld_arg0,
        (0x15, 1, 0, 1),  # AF_UNIX
        (0x06, 0, 0, RET_ERRNO | EACCES),
        (0x06, 0, 0, RET_ALLOW),
    ]
    prog += [
        (0x15, 0, 3, nr["clone"]),
        ld_arg0,
        (0x45, 0, 1, NAMESPACE_FLAGS),
        (0x06, 0, 0, RET_ERRNO | EPERM),
    ]
    prog.append((0x06, 0, 0, RET_ALLOW))
    return [(op[0], op[1], op[2], op[3]) if len(op) == 4 else (op[0], 0, 0, op[2]) for op in prog]


def _install_seccomp(libc):
    machine = os.uname().machine
    if machine not in SYSCALLS:
        return f"no seccomp filter for {machine}"
    insns = _seccomp_program(machine)
    raw = b"".join(struct.pack("HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Prog(len(insns), ctypes.cast(buf, ctypes.c_void_p))
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0), "seccomp")
    return None


def _check(rc, what):
    if rc != 0:
        raise SetupError(f"{what}: {os.strerror(ctypes.get_errno())}")


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    return libc


def _drop_user(uid, gid):
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise SetupError("could not change uid")


def _set_limits(limits):
    def cap(which, value):
        resource.setrlimit(which, (value, value))

    for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA, resource.RLIMIT_STACK):
        cap(which, limits["memory_bytes"])  # as EvalPlus's reliability_guard
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1))
    cap(resource.RLIMIT_NPROC, limits["max_processes"])
    cap(resource.RLIMIT_FSIZE, limits["file_bytes"])
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_NOFILE, 64)


_BLOCKED_EVENTS = (
    "socket.",
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "signal.pthread_kill",
    "ctypes.",
    "pty.spawn",
    "os.startfile",
    "sys.remote_exec",
    "webbrowser.open",
    "os.setuid",
)
_PATH_EVENTS = {
    "os.remove": 1,
    "os.rmdir": 1,
    "os.rename": 2,
    "os.mkdir": 1,
    "os.chmod": 1,
    "os.chown": 1,
    "os.symlink": 2,
    "os.link": 2,
    "os.truncate": 1,
    "os.utime": 1,
    "shutil.rmtree": 1,
    "os.chflags": 1,
    "os.lchflags": 1,
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _install_guard(workdir):
    """An audit hook, which Python code cannot remove. A relative path given with ``dir_fd``
    is refused: where the descriptor points cannot be told reliably."""
    root = os.path.realpath(workdir)
    realpath, fspath, isinstance_, str_ = os.path.realpath, os.fspath, isinstance, str

    def inside(path):
        if isinstance_(path, int):
            return False
        text = fspath(path)
        text = text.decode(errors="replace") if isinstance_(text, bytes) else text
        full = realpath(text)
        return full == root or full.startswith(root + "/")

    def hook(event, args):
        if event.startswith(_BLOCKED_EVENTS):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writes = (
                any(c in mode for c in "wax+")
                if isinstance_(mode, str_)
                else bool(flags & _WRITE_FLAGS)
            )
            if writes and path is not None and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the working folder")
        elif event in _PATH_EVENTS:
            for path in args[: _PATH_EVENTS[event]]:
                if path is not None and not inside(path):
                    raise PermissionError(
                        f"sandbox: {event} on {path!r} outside the working folder"
                    )

    sys.addaudithook(hook)


def _confine(config):
    libc = _libc()
    if config.get("uid") is not None:
        _drop_user(config["uid"], config["gid"])
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(pdeathsig)")
    _set_limits(config["limits"])
    return _install_seccomp(libc)


def _run_program(program, payload, workdir):
    """Run the harness program (source, or a code object the parent compiled); never returns
    (skips interpreter teardown: atexit handlers untrusted code registered)."""
    namespace = {
        "__name__": "__sandbox__",
        "PAYLOAD": payload,
        "install_guard": lambda: _install_guard(workdir),
    }
    code = 0
    try:
        if isinstance(program, str):  # a reused sandbox's job gets it compiled (sandbox_worker.py)
            program = compile(program, "<sandbox-program>", "exec", dont_inherit=True)
        exec(program, namespace)
    except BaseException:  # the program's own failure: shown on stderr, exit code 1
        traceback.print_exc()
        code = 1
    os._exit(code)


def _read_exact(fd, size):
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_header(fd):
    """A job header: 8-byte big-endian length, then JSON. None at end of input."""
    size = _read_exact(fd, 8)
    if size is None:
        return None
    return json.loads(_read_exact(fd, int.from_bytes(size, "big")))


def _job(header, status_fd, control_fd, root):
    """The forked job process: read program and payload, take the job's uid and limits, run."""
    try:
        os.close(status_fd)
        os.close(control_fd)
        program = _read_exact(0, header["program_len"])
        program = marshal.loads(program) if header["compiled"] else program.decode("utf-8")
        payload = _read_exact(0, header["payload_len"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.closerange(3, 4096)
        if header.get("uid") is not None:
            _drop_user(header["uid"], header["gid"])
        _set_limits(header["limits"])
        workdir = os.path.join(root, "job")
        os.mkdir(workdir, 0o700)
        os.chdir(workdir)
    except BaseException as exc:
        os.write(2, f"sandbox job setup failed: {exc}\n".encode())
        os._exit(SETUP_FAILED)
    _run_program(program, payload, workdir)


def _kill_all_but_me():
    """SIGKILL every process in the PID namespace but its init and this one, until none is left."""
    me = os.getpid()
    while True:
        alive = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in (1, me):
                try:
                    with open(f"/proc/{name}/stat", "rb") as f:
                        if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                            continue  # a zombie writes nothing; init or we reap it
                    os.kill(int(name), signal.SIGKILL)
                    alive.append(name)
                except OSError:
                    pass
        if not alive:
            return
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass


def _empty_folder(root, uid, gid):
    """Remove everything in ``root`` as the job's uid (the zygote may not enter its folders)."""
    try:
        if os.listdir(root) == ["job"]:
            os.rmdir(os.path.join(root, "job"))  # the usual case: the job left its folder empty
            return True
    except OSError:
        pass
    pid = os.fork()
    if pid == 0:
        try:
            if uid is not None:
                _drop_user(uid, gid)
            import shutil  # preloaded

            for name in os.listdir(root):
                path = os.path.join(root, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.listdir(root) == []


def _wait_job(pid, job, control):
    """The job's exit status; kills it first if ``stop <job>`` arrives on the control descriptor.
    ``control`` is ``[fd, unfinished line]`` (fd None once the parent closed its end)."""
    child = os.pidfd_open(pid)
    try:
        while control[0] is not None:
            ready, _, _ = select.select([child, control[0]], [], [])
            if child in ready:
                break
            data = os.read(control[0], 4096)
            if not data:
                control[0] = None  # the parent closed its end: no more stops
                break
            *lines, control[1] = (control[1] + data).split(b"\n")
            if f"stop {job}".encode() in lines:
                os.kill(pid, signal.SIGKILL)  # the rest of its processes: _kill_all_but_me
                break
    finally:
        os.close(child)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _set_up_or_exit(confine) -> None:
    """Run a confinement step; a process that cannot confine itself runs nothing.

    `confine()` returns a warning to pass on (a protection the kernel lacks) or None.
    """
    try:
        warning = confine()
    except (SetupError, OSError) as exc:
        os.write(2, f"sandbox setup failed: {exc}\n".encode())
        os._exit(SETUP_FAILED)
    if warning:
        os.write(2, f"sandbox: {warning}\n".encode())


def _confine_zygote() -> str | None:
    libc = _libc()
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(pdeathsig)")
    # Jobs cannot read or write the zygote's memory.
    _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(dumpable)")
    return _install_seccomp(libc)


def serve(config):
    """The zygote loop (see the module docstring). Exits at end of input, or if it cannot clean
    up."""
    root, status_fd = config["workdir"], config["status_fd"]
    control = [config["control_fd"], b""]
    _set_up_or_exit(_confine_zygote)
    for name in PRELOAD:  # imported once here, not once per job
        __import__(name)
    # Out of the collector's sight: a collection in a job would otherwise write to every object
    # the zygote holds, copying each page of them (copy-on-write), in every job.
    gc.freeze()
    os.chdir(root)
    while True:
        header = _read_header(0)
        if header is None:
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            _job(header, status_fd, config["control_fd"], root)
        code = _wait_job(pid, header["job"], control)
        _kill_all_but_me()
        if not _empty_folder(root, header.get("uid"), header.get("gid")):
            os._exit(SETUP_FAILED)  # never hand a dirty folder to the next job
        os.write(status_fd, f"done {header['job']} {code}\n".encode())


def main():
    if sys.argv[1:] == ["serve"]:
        serve(_read_header(0))
    config = json.loads(sys.stdin.buffer.readline())
    payload = sys.stdin.buffer.read(config["payload_len"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.chdir(config["workdir"])
    _set_up_or_exit(lambda: _confine(config))
    _run_program(config["program"], payload, config["workdir"])


if __name__ == "__main__":
    main()
