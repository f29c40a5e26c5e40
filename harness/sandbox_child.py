"""The process that runs untrusted code for :mod:`ocx.harness.sandbox` (never imported by ocx).

It is started as ``python -I -B sandbox_child.py`` with a JSON config line and a payload on
stdin, confines itself, then runs the harness-supplied *program* (e.g. the HumanEval checker),
which in turn runs the untrusted code. It only uses the standard library so that nothing from
the ocx package is loaded into a process that runs untrusted code.

Confinement, in order (each step is explained where it is done):
1. ``namespace`` isolation: new mount, network, PID, IPC and UTS namespaces (plus a user
   namespace); every mount re-mounted read-only; a private tmpfs as the only
   writable place; a fresh /proc.
2. Every capability dropped, ``no_new_privs`` set, and the process dies with its parent.
3. rlimits: address space, CPU seconds, processes, file size, no core dumps.
4. An audit hook (``guard``) that refuses sockets, process creation, ctypes and any write,
   delete or rename outside the working directory, as a second line behind the kernel.
"""

import ctypes
import json
import os
import resource
import signal
import sys

SETUP_FAILED = 70  # exit code: confinement could not be set up (the parent may fall back)

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
# Per-mount flags that must be kept on a bind re-mount: inside a user namespace the kernel
# refuses (EPERM) a re-mount that would clear any of them.
_KEEP_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024,
               "nodiratime": 2048, "relatime": 1 << 21, "strictatime": 1 << 24}
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38


class SetupError(Exception):
    pass


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.unshare.argtypes = [ctypes.c_int]
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return libc


def _check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def _mount(libc, source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _unescape(path):
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and i + 4 <= len(path) and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def _mounts():
    """(mount point, per-mount flags) for every mount, parents before children."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            flags = 0
            for opt in fields[5].split(","):
                flags |= _KEEP_FLAGS.get(opt, 0)
            found.append((_unescape(fields[4]), flags))
    return found


def _read_only_root(libc):
    """Re-mount every mount read-only in this (private) mount namespace; returns failures."""
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    failures = []
    for point, flags in _mounts():
        try:
            _mount(libc, None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | flags)
        except SetupError as exc:
            if point == "/":
                raise
            failures.append(str(exc))
    return failures


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _enter_namespaces(libc, config):
    """Unshare, then fork: this process waits and relays, the child is PID 1 of the new namespace.

    A user namespace is made even as root: its root keeps our uid (so it can still read a
    Python installed under /root) but, once its capabilities are dropped, cannot undo the
    read-only mounts, and RLIMIT_NPROC counts only the processes inside it.
    """
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    _check(libc.unshare(flags), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")
    pid = os.fork()
    if pid:
        _relay_exit(pid, is_init=False)
    # PID 1 of the namespace: when it dies the kernel kills every process in it, so a sample
    # cannot leave anything running behind (a fork bomb included).
    failures = _read_only_root(libc)
    try:
        _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        # Linux >= 6.14 keeps pid_max per PID namespace: a hard bound on processes that holds
        # even where RLIMIT_NPROC does not (the kernel never applies it to uid 0). 301 is the minimum.
        _write("/proc/sys/kernel/pid_max", str(max(301, config["limits"]["max_processes"] + 1)))
    except SetupError as exc:
        failures.append(str(exc))
    except OSError as exc:
        failures.append(f"pid_max: {exc.strerror}")
    size = config["limits"]["disk_bytes"]
    _mount(libc, "tmpfs", config["workdir"], "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=0700")
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(pdeathsig)")
    # The sample runs in a child of PID 1, not as PID 1: the kernel ignores signals without a
    # handler sent to a namespace's init, so SIGXCPU or an alarm would not stop it.
    pid = os.fork()
    if pid:
        _relay_exit(pid, is_init=True)
    return failures


def _relay_exit(pid, is_init):
    """Wait for the child and end the same way it did (orphans the sample leaves to init are
    not waited for: they die with the namespace)."""
    os.close(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if is_init:  # init cannot kill itself with a signal: encode it as a shell would
            os._exit(128 + sig)
        _die_by(sig)
    code = os.WEXITSTATUS(status)
    if not is_init and code > 128:
        _die_by(code - 128)
    os._exit(code)


def _die_by(sig):
    # So the parent sees e.g. SIGXCPU or SIGKILL as it happened.
    if sig not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)


def _drop_capabilities(libc):
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset")


def _drop_privileges(libc):
    # Without capabilities the sample cannot re-mount anything writable, ignore file
    # permissions, signal other users' processes or escape RLIMIT_NPROC. no_new_privs keeps
    # it from regaining any through a setuid binary.
    _drop_capabilities(libc)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    # Die with the parent (which waits on us), so nothing outlives a killed run.
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(pdeathsig)")


def _set_limits(limits):
    def cap(which, value):
        resource.setrlimit(which, (value, value))

    cap(resource.RLIMIT_AS, limits["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1))
    cap(resource.RLIMIT_NPROC, limits["max_processes"])
    cap(resource.RLIMIT_FSIZE, limits["file_bytes"])
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_NOFILE, 256)


_BLOCKED_EVENTS = ("socket.", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                   "os.fork", "os.forkpty", "os.kill", "os.killpg", "ctypes.", "pty.spawn", "os.startfile",
                   "sys.remote_exec", "webbrowser.open")
_PATH_EVENTS = {"os.remove": 1, "os.rmdir": 1, "os.rename": 2, "os.mkdir": 1, "os.chmod": 1, "os.chown": 1,
                "os.symlink": 2, "os.link": 2, "os.truncate": 1, "os.utime": 1, "shutil.rmtree": 1,
                "os.chdir": 1, "os.chflags": 1, "os.lchflags": 1}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _install_guard(workdir):
    """An audit hook, which Python code cannot remove, refusing what a solution never needs."""
    root = os.path.realpath(workdir)
    realpath, fspath, isinstance_, str_ = os.path.realpath, os.fspath, isinstance, str

    def inside(path):
        if isinstance_(path, int):
            return False  # a file descriptor: cannot tell where it points, refuse
        full = realpath(fspath(path) if not isinstance_(path, bytes) else path.decode(errors="replace"))
        return full == root or full.startswith(root + "/")

    def hook(event, args):
        if event.startswith(_BLOCKED_EVENTS):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writes = any(c in mode for c in "wax+") if isinstance_(mode, str_) else bool(flags & _WRITE_FLAGS)
            if writes and path is not None and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the working directory")
        elif event in _PATH_EVENTS:
            for path in args[:_PATH_EVENTS[event]]:
                if path is not None and not inside(path):
                    raise PermissionError(f"sandbox: {event} on {path!r} outside the working directory")

    sys.addaudithook(hook)


def main():
    config = json.loads(sys.stdin.buffer.readline())
    payload = sys.stdin.buffer.read(config["payload_len"])
    report_file = os.fdopen(config["report_fd"], "w", encoding="utf-8")
    try:
        libc = _libc()
        failures = []
        if config["isolation"] == "namespace":
            failures = _enter_namespaces(libc, config)
        os.chdir(config["workdir"])
        _drop_privileges(libc)
        _set_limits(config["limits"])
    except (SetupError, OSError) as exc:
        report_file.write(json.dumps({"setup_error": str(exc)}) + "\n")
        report_file.flush()
        os._exit(SETUP_FAILED)
    report_file.write(json.dumps({"setup": {"read_only_failures": failures}}) + "\n")
    report_file.flush()

    def report(obj):
        report_file.write(json.dumps({"result": obj}) + "\n")
        report_file.flush()

    if config["guard"]:
        _install_guard(config["workdir"])
    namespace = {"__name__": "__sandbox__", "PAYLOAD": payload, "report": report}
    code = 0
    try:
        exec(compile(config["program"], "<sandbox-program>", "exec"), namespace)
    except BaseException:  # the program's own failure: shown on stderr, exit code 1
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: atexit handlers the untrusted code registered


if __name__ == "__main__":
    main()
