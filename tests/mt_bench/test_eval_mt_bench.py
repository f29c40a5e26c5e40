"""`ocx eval --sets mt_bench` and `ocx report` on its results, against fake servers on 127.0.0.1."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from click.testing import CliRunner

from ocx.benchmarks.mt_bench_data import load_mt_bench
from ocx.cli import cli

from .test_mt_bench import judge_responder, model_responder, planned_judgment


def expected_rows_for(questions) -> list[list[str]]:
    """The table for the first questions only, computed from the planned judgments."""
    from statistics import mean

    from ocx.harness.judge import parse_rating

    ratings: dict[str, dict[int, list[float]]] = {}
    for q in questions:
        for turn in (1, 2):
            rating = parse_rating(planned_judgment(q.id, turn))
            ratings.setdefault(q.category, {1: [], 2: []})
            if rating is not None:
                ratings[q.category][turn].append(rating)

    def fmt(values):
        return f"{mean(values):.2f}" if values else "–"

    rows = [[c, fmt(r[1]), fmt(r[2]), fmt(r[1] + r[2])] for c, r in ratings.items()]
    all1 = [x for r in ratings.values() for x in r[1]]
    all2 = [x for r in ratings.values() for x in r[2]]
    return rows + [["overall", fmt(all1), fmt(all2), fmt(all1 + all2)]]


def _eval_args(model_url, judge_url, mt_dir, out):
    return [
        "eval",
        "--endpoint",
        model_url,
        "--model-name",
        "m",
        "--sets",
        "mt_bench",
        "--mt-bench-data",
        str(mt_dir),
        "--judge-endpoint",
        judge_url,
        "--judge-model",
        "j",
        "--limit",
        "4",
        "--output",
        str(out),
        "--quiet",
    ]


def test_eval_with_mt_bench_writes_its_summary_and_prints_the_mt_bench_table(
    data, mock_server, shared_dir, tmp_path
):
    model, judge = mock_server(model_responder), mock_server(judge_responder(data))
    mt_dir, out = shared_dir / "data" / "mt_bench", tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [*_eval_args(model.url, judge.url, mt_dir, out), "--condition", "GPT4 Correct"],
        terminal_width=120,
    )
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    mt = document["summary"]["mt_bench"]
    assert mt["n"] == 8 and set(mt["categories"]) == {q.category for q in data.questions[:4]}
    assert document["mt_bench_data"] == str(mt_dir) and document["requests"] == {
        "sent": 16,
        "cached": 0,
    }
    assert document["suites"]["mt_bench"]["data_sha256"] == load_mt_bench(mt_dir).sha256
    assert model.total_received == 8 and judge.total_received == 8
    assert all(b.get("condition") == "GPT4 Correct" for b in model.bodies)
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 8 and all(r["suite"] == "mt_bench" and r["judgment"] for r in records)
    for row in expected_rows_for(data.questions[:4]):
        assert re.search(r"[\s│]+".join(re.escape(cell) for cell in row), result.output), row

    again = CliRunner().invoke(
        cli, [*_eval_args(model.url, judge.url, mt_dir, out), "--condition", "GPT4 Correct"]
    )
    assert again.exit_code == 0, again.output
    assert model.total_received == 8 and judge.total_received == 8, "a rerun asked again"
    assert json.loads((out / "results.json").read_text())["requests"] == {"sent": 0, "cached": 16}


def test_mt_bench_without_a_judge_endpoint_exits_2_naming_the_option(shared_dir, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "ocx.cli",
        "eval",
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--model-name",
        "m",
        "--sets",
        "mt_bench",
        "--mt-bench-data",
        str(shared_dir / "data" / "mt_bench"),
        "--judge-model",
        "j",
        "--output",
        str(tmp_path / "o"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--judge-endpoint: required for mt_bench" in done.stderr
    assert "--judge-model" not in done.stderr and not (tmp_path / "o").exists()


def test_report_on_an_mt_bench_result_embeds_the_radar_chart(
    data, mock_server, shared_dir, tmp_path
):
    model, judge = mock_server(model_responder), mock_server(judge_responder(data))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli, _eval_args(model.url, judge.url, shared_dir / "data" / "mt_bench", out)
    )
    assert result.exit_code == 0, result.output
    html_path = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", str(out), "--html", str(html_path)])
    assert result.exit_code == 0, result.output
    page = html_path.read_text()
    assert 'aria-label="MT-Bench radar chart"' in page and "<h2>MT-Bench</h2>" in page
    radar = page[page.index('aria-label="MT-Bench radar chart"') :]
    assert all(q.category in radar for q in data.questions[:4])


def test_report_without_mt_bench_has_no_radar_chart(tmp_path):
    from ocx.harness.report import RunColumn, html_report

    page = html_report([RunColumn("a", "a/results.json", {"gsm8k": 0.5}, {"gsm8k": 0.0})])
    assert "MT-Bench" not in page and "gsm8k" in page
