"""The MT-Bench data both test modules read."""

from __future__ import annotations

import pytest

from ocx.benchmarks.mt_bench_data import load_mt_bench


@pytest.fixture(scope="module")
def data(shared_dir):
    return load_mt_bench(shared_dir / "data" / "mt_bench")
