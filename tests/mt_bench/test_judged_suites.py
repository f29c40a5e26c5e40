"""Judged suites (benchmarks/judged.py): `ocx eval`, results.json and `ocx report` know them only
through the protocol, and a judge's score is never averaged with accuracies."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass

from click.testing import CliRunner

from ocx.benchmarks import BUILTIN_SUITES
from ocx.benchmarks.judged import JudgedSuite
from ocx.cli import cli
from ocx.harness.backends import Request, Sampling
from ocx.harness.cache import request_key
from ocx.harness.cached_requests import CachedRequests
from ocx.harness.errors import InputError, InputProblem

from .test_eval_mt_bench import _eval_args
from .test_mt_bench import judge_responder, model_responder


@dataclass
class LengthRecord:
    id: str
    response: str

    def to_dict(self) -> dict:
        return {"suite": "length_judged", "id": self.id, "response": self.response}


@dataclass
class LengthSummary:
    name: str
    version: str
    source: str
    data_sha256: str
    sampling: dict
    n: int
    sent: int
    cached: int
    ratings: list[int]

    def scores(self) -> dict:
        mean = sum(self.ratings) / len(self.ratings)
        return {"accuracy": mean / 5, "score": mean, "n": self.n, "unmatched": 0}


class LengthJudged:
    """A judge-based suite written the way the extending guide says: one module, one registry line.
    The "judge" rates each answer 0-5 by its length; answers go through the cached request loop."""

    name, version, source, generation = "length_judged", "1", "test suite", {}
    title = "length (0-5)"

    def check_options(self, opts) -> list:
        if opts.judge_model:
            return []
        return [InputProblem("command line", None, "--judge-model", "required for length_judged")]

    def settings(self, opts) -> dict:
        return {"length_judge": opts.judge_model}

    def run_for_eval(self, backend, cache, opts, progress=None):
        chats = [[{"role": "user", "content": f"say {'hi ' * i}"}] for i in range(3)]
        sampling = Sampling.for_suite({"max_tokens": 16}, {})
        keys = [request_key(backend.identity(), c, None, sampling.as_dict()) for c in chats]
        loop = CachedRequests(cache, progress, label="length_judged")
        loop.lookup(keys)
        todo = [(loop.add(k, None, i, "{}"), c) for i, (k, c) in enumerate(zip(keys, chats))]
        requests = [Request(i, tuple(c), None, sampling) for i, c in todo if i is not None]
        loop.send(backend.generate, requests)
        answers = [loop.answers[k] for k in keys]
        ratings = [min(5, len(a) // 10) for a in answers]
        summary = LengthSummary(
            self.name, self.version, self.source, "-", {}, 3, loop.sent, len(loop.cached), ratings
        )
        return summary, [LengthRecord(f"length_judged/{i}", a) for i, a in enumerate(answers)]

    def table(self, scores: dict, opts) -> str:
        return f"length table: {scores['score']:.2f} by {opts.judge_model}"

    def headline(self, scores: dict) -> str:
        return f"{scores['score']:.2f}"

    def results_problems(self, path: str, scores: dict) -> list:
        if isinstance(scores.get("score"), (int, float)):
            return []
        return [InputProblem(path, None, "summary.length_judged.score", "not a number")]

    def report_html(self, documents) -> str:
        found = [label for label, d in documents if "length_judged" in d["summary"]]
        return f"<h2>length judged</h2><p>{', '.join(found)}</p>" if found else ""


def _register(monkeypatch) -> None:
    module = types.ModuleType("ocx_test_length_judged")
    module.SUITE = LengthJudged()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(BUILTIN_SUITES, "length_judged", f"{module.__name__}:SUITE")


def test_a_new_judged_suite_runs_saves_prints_and_reports_through_the_protocol_alone(
    mock_server, tmp_path, monkeypatch
):
    _register(monkeypatch)
    assert isinstance(LengthJudged(), JudgedSuite)
    model = mock_server(model_responder)
    out = tmp_path / "run"
    args = ["eval", "--endpoint", model.url, "--model-name", "m", "--output", str(out)]
    args += ["--sets", "arithmetic", "length_judged", "--limit", "4", "--quiet"]
    missing = CliRunner().invoke(cli, args).exception  # `ocx` prints it and exits 2
    assert isinstance(missing, InputError) and missing.exit_code == 2
    assert str(missing) == "command line: --judge-model: required for length_judged"
    assert not (out / "results.json").exists()

    done = CliRunner().invoke(cli, [*args, "--judge-model", "ruler"], terminal_width=120)
    assert done.exit_code == 0, done.output
    assert "length table:" in done.output and "by ruler" in done.output
    document = json.loads((out / "results.json").read_text())
    length, arithmetic = document["summary"]["length_judged"], document["summary"]["arithmetic"]
    assert document["length_judge"] == "ruler" and document["suites"]["length_judged"]["version"]
    assert document["average"] == arithmetic["accuracy"] != length["accuracy"]
    assert document["requests"]["sent"] == 4 + 3 and model.total_received == 7
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sum(r["suite"] == "length_judged" for r in records) == 3

    again = CliRunner().invoke(cli, [*args, "--judge-model", "ruler"])
    assert again.exit_code == 0 and model.total_received == 7, "the judged suite asked again"

    page = tmp_path / "report.html"
    shown = CliRunner().invoke(cli, ["report", str(out), "--html", str(page)], terminal_width=160)
    assert shown.exit_code == 0, shown.output
    assert "length (0-5)" in shown.output and f"{length['score']:.2f}" in shown.output
    assert "<h2>length judged</h2><p>m</p>" in page.read_text()

    document["summary"]["length_judged"]["score"] = "high"
    (out / "results.json").write_text(json.dumps(document))
    broken = CliRunner().invoke(cli, ["report", str(out), "--html", str(page)]).exception
    assert isinstance(broken, InputError)
    assert "summary.length_judged.score: not a number" in str(broken)


def test_mt_bench_score_is_reported_beside_the_accuracy_average_never_inside_it(
    data, mock_server, shared_dir, tmp_path
):
    model, judge = mock_server(model_responder), mock_server(judge_responder(data))
    out = tmp_path / "run"
    args = _eval_args(model.url, judge.url, shared_dir / "data" / "mt_bench", out)
    args[args.index("--sets") + 1 : args.index("--sets") + 2] = ["arithmetic", "mt_bench"]
    done = CliRunner().invoke(cli, args, terminal_width=120)
    assert done.exit_code == 0, done.output
    document = json.loads((out / "results.json").read_text())
    mt, arithmetic = document["summary"]["mt_bench"], document["summary"]["arithmetic"]
    assert mt["accuracy"] == mt["score"] / 10 != arithmetic["accuracy"]  # the old shape, kept
    assert document["average"] == arithmetic["accuracy"]

    page = tmp_path / "report.html"
    shown = CliRunner().invoke(cli, ["report", str(out), "--html", str(page)], terminal_width=160)
    assert shown.exit_code == 0, shown.output
    run_rows = [line for line in shown.output.splitlines() if line.startswith("│ m ")]
    accuracy_row, judged_row = run_rows
    assert f"{100 * arithmetic['accuracy']:.2f}" in accuracy_row and "mt_bench" not in accuracy_row
    assert f"{mt['score']:.2f}" in judged_row and "MT-Bench (1-10)" in shown.output
    html = page.read_text()
    assert html.count("<svg") == 2 + 1  # the average, arithmetic, and MT-Bench's radar
    assert f"<td>{mt['score']:.2f}" in html


def test_a_results_file_from_before_the_fix_is_reported_with_the_accuracy_average(tmp_path):
    from rich.console import Console

    from ocx.harness.report import comparison_table, html_report, load_runs

    category = {"turn1": 8.0, "turn2": 8.0, "average": 8.0}
    summary = {
        "mmlu": {"accuracy": 0.5, "n": 100, "stderr": 0.05, "ci95": [0.4, 0.6]},
        "mt_bench": {"accuracy": 0.8, "score": 8.0, "n": 4, "categories": {"writing": category}},
    }
    old = {"model_name": "old", "summary": summary, "average": 0.65, "average_ci95": [0.55, 0.75]}
    (tmp_path / "results.json").write_text(json.dumps(old))  # average = (0.5 + 8 / 10) / 2
    (run,) = runs = load_runs([tmp_path])
    assert run.scores == {"mmlu": 0.5} and run.judged == {"mt_bench": summary["mt_bench"]}
    assert run.average_interval(["mmlu"]) is None, "the recorded interval is of the old average"
    console = Console(width=160, record=True)
    console.print(comparison_table(runs))
    terminal = console.export_text()
    assert "65.00" not in terminal and "8.00" in terminal
    assert terminal.count("50.00") == 2  # mmlu, and the average of the accuracy suites
    page = html_report(runs)
    assert "65.00" not in page and page.count('class="whisker"') == 1  # mmlu's interval only
