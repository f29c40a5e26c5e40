"""Helpers for the harness tests (the ochat_data and mock_server fixtures: tests/conftest.py)."""

from __future__ import annotations

from ocx.testing.mock_server import last_user_content


def samples_by_prompt(suites, data, limit):
    """Map each sample's last user message to (suite, sample): how a fake server finds the gold."""
    table = {}
    for suite in suites:
        for sample in suite.load(data, limit=limit):
            table[last_user_content({"messages": suite.prompt(sample)})] = (suite, sample)
    return table
