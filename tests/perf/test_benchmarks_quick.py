"""Every benchmark in quick mode, one round, as a pytest test (`pytest tests/perf -m perf`).

The same thing `python -m tests.perf --quick` does, one test per benchmark, so
`pytest tests/perf -m perf -k train` runs one. Marked `perf`: the default suite leaves them
to CI's separate quick-run line. Nothing here asserts a timing: a benchmark passes when it runs,
its figures are sane (finite, non-negative) and its own invariants hold (identical rows,
equal losses, ...); a peer venv or device that is missing makes it skip with the reason.
"""

from __future__ import annotations

import pytest

from tests.perf.runner import discover, run_benchmark

MODULES = discover()


@pytest.mark.perf
@pytest.mark.parametrize("name", [n for n, m in MODULES.items() if not getattr(m, "GPU", False)])
def test_benchmark_runs_in_quick_mode_and_produces_sane_figures(name):
    result = run_benchmark(MODULES[name], quick=True, repeats=1, build_peers=True, say=print)
    if result["status"] == "skipped":
        pytest.skip(result["reason"])
    assert result["status"] == "ok", result.get("traceback", result.get("reason"))
    assert result["figures"], f"{name} measured nothing"
    for variant, reason in result["skipped_variants"].items():
        print(f"{name}: {variant} not measured: {reason}")


@pytest.mark.perf
@pytest.mark.gpu
@pytest.mark.parametrize("name", [n for n, m in MODULES.items() if getattr(m, "GPU", False)])
def test_gpu_benchmark_runs_in_quick_mode_where_cuda_is_available(name):
    result = run_benchmark(MODULES[name], quick=True, repeats=1, build_peers=True, say=print)
    if result["status"] == "skipped":
        pytest.skip(result["reason"])
    assert result["status"] == "ok", result.get("traceback", result.get("reason"))
