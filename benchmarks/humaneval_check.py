"""HumanEval+ output producer: runs inside the sandbox (``run_sandboxed``), never imported by ocx.

It *produces outputs only*; it knows no expected output and decides no verdict. ``PAYLOAD`` is
JSON: ``code``, ``entry_point``, ``parts`` (each ``{"name", "inputs", "limits", "budget"}``, and
``"times": true`` for the reference), ``mode`` ("candidate" or "reference"). For each part a
forked child installs the guard, loads the code with output swallowed (EvalPlus's
``swallow_io``), calls the entry point on each input (with EvalPlus's per-input ``time_limit``
alarm when ``limits`` is given) and writes one JSON line per input to stdout:
``["out", i, value]`` (``["out", i, value, seconds]`` in a part with ``times``: only the
reference's times are used) or ``["err", i, reason]``. This process waits for the child at most
``budget`` seconds (EvalPlus's per-run timeout), kills it and its descendants, and writes
``["end", part, how]``.

Values are written in a restricted form that the trusted parent decodes: exact ``int`` (hex
past 2**53), ``float`` (non-finite ones tagged), ``str``, ``bool``, ``None``, ``list`` (a long
list of numbers with floats among them as a blob of float64 bytes: ``_number_blob``),
``tuple`` and ``dict``; anything else (a subclass, an object with its own ``__eq__``, a set, a
cycle, nesting past 100) is ``["err", i, "unserialisable output: ..."]``. The untrusted code can
write anything to stdout too: the parent parses it strictly and compares every value with its
own expected outputs, so all that can reach a verdict are output values.
"""

import array
import base64
import copy
import gc
import itertools
import json
import math
import os
import select
import signal
import sys
import time

MAX_DEPTH = 100
_channel = [1]  # the fd frames go to; the code's own fds 1 and 2 point at /dev/null


def _frame_encoder():
    """``json.dumps(frame, allow_nan=False, separators=(",", ":"))``, the same bytes, without
    building an encoder per call (json.dumps with options does; that was most of a frame's cost).
    No check for cycles: ``encode`` returns only fresh or flat containers."""
    options = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
    make = json.encoder.c_make_encoder
    if make is None:  # an interpreter without the _json accelerator
        return options.encode
    encode = make(
        None,
        options.default,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )
    return lambda frame: "".join(encode(frame, 0))


_encode_frame = _frame_encoder()


class Unserialisable(Exception):
    pass


class _Timeout(BaseException):
    """A BaseException, so that `except Exception` in a sample does not swallow it."""


def _on_alarm(signum, frame):
    raise _Timeout()


class _Swallow:
    """Where a sample's prints go: nowhere; reading raises (EvalPlus's WriteOnlyStringIO)."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass

    def read(self, *args):
        raise OSError

    readline = readlines = read

    def readable(self):
        return False


def encode(x, depth=0):
    t = type(x)
    if x is None or t is str or t is bool:
        return x
    if t is int:
        return x if -(1 << 53) < x < (1 << 53) else {"i": format(x, "x")}
    if t is float:
        return x if math.isfinite(x) else {"f": repr(x)}
    if depth >= MAX_DEPTH:
        raise Unserialisable(f"nested deeper than {MAX_DEPTH}")
    if t is list:
        kinds = set(map(type, x))
        if len(x) >= BLOB_MIN and float in kinds and kinds <= _NUMBERS:
            blob = _number_blob(x, kinds)
            if blob is not None:
                return blob
        return x if _flat(x, kinds) else [encode(v, depth + 1) for v in x]
    if t is tuple:
        return {"t": list(x) if _flat(x) else [encode(v, depth + 1) for v in x]}
    if t is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]}
    raise Unserialisable(f"type {t.__name__}")


_FLAT_TYPES = {str, bool, type(None), int, float}
_NUMBERS = {int, float}
BLOB_MIN = 16  # a list of numbers this long or longer, floats among them, goes as a blob


def _number_blob(x, kinds):
    """A list of exact ints and floats, at least one a float, as the bytes of the float64 values
    (native order: producer and parent run on one machine), base64: ``{"F": blob}`` when all are
    floats, else ``{"M": [blob, mask]}``, ``mask`` one byte per item (1: an int, 0: a float).
    Writing a float as text (its shortest repr) costs ten times computing it; a blob is exact
    and costs a few C loops. None (write the list as JSON) for a non-finite float (tagged as
    text one by one) or an int past 2**53."""
    try:
        values = array.array("d", x)
    except OverflowError:  # an int past the float range
        return None
    if not all(map(math.isfinite, values)):
        return None
    blob = base64.b64encode(values.tobytes()).decode("ascii")
    if kinds == {float}:
        return {"F": blob}
    ints = bytes(map(int.__instancecheck__, x))  # exact types only: ``kinds`` has no bool
    whole = list(itertools.compress(x, ints))
    if not -(1 << 53) < min(whole) or not max(whole) < (1 << 53):
        return None
    return {"M": [blob, base64.b64encode(ints).decode("ascii")]}


def _flat(x, kinds=None):
    """True if every item of ``x`` is written as is (what ``encode`` would give item by item):
    exact str, bool, None, int within 2**53 and finite float; checked with C loops, so that a
    list of a million numbers costs no Python call per item. ``kinds``: the items' types."""
    kinds = set(map(type, x)) if kinds is None else kinds
    if not kinds <= _FLAT_TYPES:
        return False
    if not kinds & _NUMBERS:
        return True
    numbers = x if kinds <= _NUMBERS else [v for v in x if type(v) is int or type(v) is float]
    if float in kinds:
        try:
            if not all(map(math.isfinite, numbers)):
                return False
        except OverflowError:  # an int too large for a float
            return False
    if int in kinds:
        return -(1 << 53) < min(numbers) and max(numbers) < (1 << 53)
    return True


def _emit(frame):
    data = (_encode_frame(frame) + "\n").encode()
    view = memoryview(data)
    while view:
        view = view[os.write(_channel[0], view) :]


def _short(exc):
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:
        text = type(exc).__name__
    return text[:200]


def _run_inputs(fn, part):
    limits, timed = part.get("limits"), part.get("times")
    for index, inp in enumerate(part["inputs"]):
        try:
            if part.get("copy_inputs"):  # the reference, as EvalPlus's trusted_exec (untimed)
                inp = copy.deepcopy(inp)
            if limits:
                signal.setitimer(signal.ITIMER_REAL, limits[index])
            start = time.time()
            out = fn(*inp)
            elapsed = time.time() - start
            signal.setitimer(signal.ITIMER_REAL, 0)
        except _Timeout:
            _emit(["err", index, f"timeout: over {limits[index]:.2f} s"])
            return
        except BaseException as exc:  # anything the sample raises (SystemExit included) fails it
            signal.setitimer(signal.ITIMER_REAL, 0)
            _emit(["err", index, _short(exc)])
            return
        try:
            value = encode(out)
        except (Unserialisable, RecursionError) as exc:
            _emit(["err", index, f"unserialisable output: {exc}"[:200]])
            return
        _emit(["out", index, value, round(elapsed, 6)] if timed else ["out", index, value])


def _child(cfg, part):
    """The forked process that runs the code (untrusted in candidate mode)."""
    os.setpgid(0, 0)
    _channel[0] = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    signal.signal(signal.SIGALRM, _on_alarm)
    if cfg["mode"] == "candidate":
        install_guard()  # noqa: F821 (given by the sandbox bootstrap)
    sys.stdout = sys.stderr = sys.stdin = _Swallow()
    try:
        namespace = {"__name__": "__candidate__"}
        exec(compile(cfg["code"], "<program>", "exec"), namespace)
        fn = namespace[cfg["entry_point"]]
    except BaseException as exc:
        _emit(["err", 0, f"load: {_short(exc)}"])
        os._exit(0)
    _run_inputs(fn, part)
    os._exit(0)


def _wait(pid, budget):
    """Wait for ``pid`` at most ``budget`` seconds; returns how it ended."""
    fd = os.pidfd_open(pid)
    ready, _, _ = select.select([fd], [], [], budget)
    os.close(fd)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return "timeout"
    _, status = os.waitpid(pid, 0)
    return "exit" if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else f"died ({status})"


def _kill_leftovers(pgid, own_pid_namespace):
    """Anything the code left running must not write later: its process group, and in a PID
    namespace of our own every process but us and the namespace's init (all the sample's)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    if not own_pid_namespace:
        return
    spared = (
        1,
        os.getpid(),
        os.getppid(),
    )  # init, us, and a reused sandbox's zygote (or init again)
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in spared:
            try:
                os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass


def _main(cfg):
    # The inputs are never collected: out of the collector's sight, so that a collection in a
    # part's child does not walk them (nor copy their pages from this process, copy-on-write).
    gc.freeze()
    for part in cfg["parts"]:
        _emit(["part", part["name"]])
        pid = os.fork()
        if pid == 0:
            _child(cfg, part)
        how = _wait(pid, part["budget"])
        _kill_leftovers(pid, cfg.get("own_pid_namespace", False))
        _emit(["end", part["name"], how])


if __name__ == "__sandbox__":  # run by the sandbox; importing this module does nothing
    _main(json.loads(PAYLOAD))  # noqa: F821 (PAYLOAD is given by the sandbox bootstrap)
