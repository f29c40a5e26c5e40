"""The HumanEval+ checker: runs inside the sandbox (``run_in_sandbox``), never imported by ocx.

``PAYLOAD`` is JSON: the candidate program, the reference program (prompt + canonical solution),
the entry point, the base and plus inputs and the tolerance. For each input it calls the
reference (timing it) and the candidate on separate deep copies and compares as EvalPlus does
(``evalplus/eval/__init__.py``, v0.3.1): exact ``==``, or, for floats or a non-zero ``atol``, same
type and length and ``|out - exp| <= atol + 1e-7 * |exp|``; ``find_zero`` is checked through its
polynomial. Each candidate call has EvalPlus's time limit: max(1 s, 4 x the reference's time).

Expected outputs are computed here rather than shipped in: for HumanEval+ they total ~290 MB
pickled (string_sequence's largest inputs alone ~150 MB), too much to cache or pass around.
The first failure ends the check (EvalPlus's ``fast_check``). ``report()`` is called after the
base inputs and again at the end, so a run killed during the plus inputs still has its base result.
"""

import copy
import json
import math
import signal
import sys
import time

class _Timeout(BaseException):
    """Raised by the per-input alarm; a BaseException so that `except Exception` in a sample
    does not swallow it."""


def _on_alarm(signum, frame):
    raise _Timeout()


class _Discard:
    """Where a sample's prints go: nowhere (EvalPlus's swallow_io)."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass


def _load(code, entry_point):
    namespace = {"__name__": "__candidate__"}
    exec(compile(code, "<program>", "exec"), namespace)
    return namespace[entry_point]


def _is_floats(x):
    if isinstance(x, float):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x)


def _flat(x):
    return [v for item in x for v in _flat(item)] if isinstance(x, (list, tuple)) else [x]


def _close(out, exp, atol):
    a, b = _flat(out), _flat(exp)
    return len(a) == len(b) and all(abs(x - y) <= atol + 1e-07 * abs(y) for x, y in zip(a, b))


def _poly(xs, x):
    return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))


def _matches(out, exp, inp, atol, entry_point):
    if entry_point == "find_zero":  # any root will do: check it, as EvalPlus's special oracle
        return abs(_poly(*inp, out)) <= atol
    if out == exp:
        return True
    if atol == 0 and _is_floats(exp):
        atol = 1e-6
    if atol == 0 or type(out) is not type(exp):
        return False
    if isinstance(exp, (list, tuple)) and len(out) != len(exp):
        return False
    return _close(out, exp, atol)


def _call(fn, inp, limit):
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return fn(*copy.deepcopy(inp))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _check(part, inputs, reference, candidate, result):
    for index, inp in enumerate(inputs):
        start = time.perf_counter()
        expected = reference(*copy.deepcopy(inp))
        limit = max(_cfg["min_time_limit"], _cfg["time_factor"] * (time.perf_counter() - start))
        try:
            out = _call(candidate, inp, limit)
            ok = _matches(out, expected, inp, _cfg["atol"], _cfg["entry_point"])
        except _Timeout:
            result[part] = "timeout"
            result["failure"] = {"part": part, "input": index, "error": f"over {limit:.2f} s"}
            return False
        except BaseException as exc:  # anything the sample raises (SystemExit included) fails it
            result[part] = "fail"
            result["failure"] = {"part": part, "input": index, "error": f"{type(exc).__name__}: {exc}"[:300]}
            return False
        if not ok:
            result[part] = "fail"
            result["failure"] = {"part": part, "input": index, "error": "wrong output"}
            return False
        result["passed"][part] += 1
    result[part] = "pass"
    return True


def _main():
    signal.signal(signal.SIGALRM, _on_alarm)
    result = {"base": "not run", "plus": "not run", "passed": {"base": 0, "plus": 0}, "failure": None}
    reference = _load(_cfg["reference"], _cfg["entry_point"])
    sys.stdout = sys.stderr = _Discard()
    try:
        candidate = _load(_cfg["code"], _cfg["entry_point"])
    except BaseException as exc:
        result["base"] = result["plus"] = "fail"
        result["failure"] = {"part": "load", "input": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
        report(result)  # noqa: F821
        return
    base_ok = _check("base", _cfg["base_input"], reference, candidate, result)
    report(result)  # noqa: F821
    if base_ok:
        _check("plus", _cfg["plus_input"], reference, candidate, result)
    else:
        result["plus"] = "fail"
    report(result)  # noqa: F821


if __name__ == "__sandbox__":  # run by the sandbox; importing this module does nothing
    _cfg = json.loads(PAYLOAD)  # noqa: F821 (PAYLOAD and report() are given by the sandbox)
    _main()
