"""Run sympy in a separate worker process with a time limit, so no answer can hang an eval run.

Why a process and not ``signal.alarm``: an alarm only fires in the main thread and only between
Python bytecodes, but sympy evaluates ``2^(2^(2^100))`` inside one long C-level integer power
that no signal interrupts. A worker process can always be killed. On a timeout the worker is
killed and restarted lazily; the call reports ``TimeoutError``.

The worker is ``python -m ocx.benchmarks.sympy_worker`` talking JSON lines over stdin/stdout
(not ``multiprocessing``, whose spawn method re-imports the caller's ``__main__``). It imports
sympy before it reports ready, so the first call's time limit does not pay for sympy's import.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import select
import subprocess
import sys
import threading
from typing import Any

DEFAULT_TIMEOUT_S = 5.0
_STARTUP_TIMEOUT_S = 120.0


def _serve() -> None:
    """Worker loop: read {"module", "function", "args"} lines; answer {"ok": result} or
    {"error": msg}."""
    import sympy  # noqa: F401  (imported here so calls are timed without the import)

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            func = getattr(importlib.import_module(request["module"]), request["function"])
            reply = {"ok": func(*request["args"])}
        except Exception as exc:  # reported to the caller, who decides; the worker keeps serving
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


class SympyWorker:
    """One worker process; ``call`` is thread-safe (calls are serialised)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def _read_line(self, timeout: float) -> dict | None:
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self._process.stdout.readline()
        if not line:
            self._stop()
            raise RuntimeError("sympy worker exited unexpectedly")
        return json.loads(line)

    def _start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ocx.benchmarks.sympy_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        if self._read_line(_STARTUP_TIMEOUT_S) is None:
            self._stop()
            raise RuntimeError(f"sympy worker did not start within {_STARTUP_TIMEOUT_S:.0f} s")

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=5)
            self._process.stdin.close()
            self._process.stdout.close()
        self._process = None

    def call(
        self, module: str, function: str, args: tuple, timeout: float = DEFAULT_TIMEOUT_S
    ) -> Any:
        """``module.function(*args)`` in the worker (JSON-able arguments and result);
        TimeoutError past ``timeout`` seconds, RuntimeError if it raised."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()
            try:
                self._process.stdin.write(
                    json.dumps({"module": module, "function": function, "args": list(args)}) + "\n"
                )
                self._process.stdin.flush()
            except (BrokenPipeError, OSError):
                self._stop()
                raise RuntimeError("sympy worker died") from None
            reply = self._read_line(timeout)
            if reply is None:
                self._stop()
                raise TimeoutError(f"{module}.{function} took longer than {timeout:g} s")
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["ok"]

    def close(self) -> None:
        with self._lock:
            self._stop()


@functools.cache
def default_worker() -> SympyWorker:
    """The process-wide worker, created on first use and killed at exit."""
    worker = SympyWorker()
    atexit.register(worker.close)
    return worker


if __name__ == "__main__":
    _serve()
