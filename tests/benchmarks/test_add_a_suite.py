"""The "Adding a suite" steps of docs/extending.md, followed once: one module and one registry line
(the built-in table, or an entry point from another package), then `ocx eval` scores it."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from ocx.benchmarks import BUILTIN_SUITES, get_suite
from ocx.benchmarks.base import Suite
from ocx.cli import cli
from ocx.testing.mock_server import last_user_content

# The module of the guide, as a user writes it.
SUITE_MODULE = '''
"""Capitals: which city is the capital of a country (a toy suite from the extending guide)."""

from ocx.benchmarks.matched import EvalDataSuite


class Capitals(EvalDataSuite):
    name = "capitals"
    version = "1"
    source = "ocx extending guide: capitals of four countries"
    generation = {"max_tokens": 16, "temperature": 0.0}
    folder = "capitals"  # FOLDER/capitals/*.jsonl under --data FOLDER, one file per subset

    def answer_key(self, record, subset):
        return record["answer"], {"subset": subset}

    def find_answer(self, response, sample):
        words = response.replace(".", " ").split()
        return words[-1] if words else None

    def is_correct(self, answer, sample):
        return answer.casefold() == sample.gold.casefold()


SUITE = Capitals()
'''

QUESTIONS = {
    "What is the capital of France?": ("Paris", "The capital of France is Paris."),
    "What is the capital of Japan?": ("Tokyo", "Tokyo."),
    "What is the capital of Italy?": ("Rome", "Milan."),  # wrong
    "What is the capital of Peru?": ("Lima", ""),  # no answer: unmatched
}


def _write_module(tmp_path, monkeypatch) -> None:
    (tmp_path / "capitals_suite.py").write_text(textwrap.dedent(SUITE_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "capitals_suite", raising=False)


def _register_builtin(tmp_path, monkeypatch) -> None:
    # The registry line: `"capitals": "capitals_suite:SUITE",` in ocx.benchmarks.BUILTIN_SUITES.
    monkeypatch.setitem(BUILTIN_SUITES, "capitals", "capitals_suite:SUITE")


def _register_entry_point(tmp_path, monkeypatch) -> None:
    # Another package's pyproject.toml: [project.entry-points."ocx.benchmarks"] capitals = "...".
    info = tmp_path / "ocx_capitals-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ocx-capitals\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ocx.benchmarks]\ncapitals = capitals_suite:SUITE\n")


@pytest.mark.parametrize("register", [_register_builtin, _register_entry_point])
def test_a_new_suite_is_one_module_and_one_registry_line_and_ocx_eval_scores_it(
    register, mock_server, tmp_path, monkeypatch
):
    _write_module(tmp_path, monkeypatch)
    register(tmp_path, monkeypatch)
    data = tmp_path / "data" / "capitals"
    data.mkdir(parents=True)
    lines = [json.dumps({"question": q, "answer": gold}) for q, (gold, _) in QUESTIONS.items()]
    (data / "test.jsonl").write_text("\n".join(lines) + "\n")
    assert isinstance(get_suite("capitals"), Suite)

    server = mock_server(lambda body: QUESTIONS[last_user_content(body)][1])
    out = tmp_path / "run"
    argv = ["eval", "--endpoint", server.url, "--model-name", "fake", "--sets", "capitals"]
    result = CliRunner().invoke(
        cli, [*argv, "--data", str(tmp_path / "data"), "--output", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert "capitals" in result.output and "50.00" in result.output
    document = json.loads((out / "results.json").read_text())
    scores = document["summary"]["capitals"]
    assert (scores["accuracy"], scores["n"], scores["unmatched"]) == (0.5, 4, 1)
    assert document["suites"]["capitals"]["version"] == "1"
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {r["gold"]: (r["answer"], r["correct"]) for r in records} == {
        "Paris": ("Paris", True),
        "Tokyo": ("Tokyo", True),
        "Rome": ("Milan", False),
        "Lima": (None, False),
    }
