import json
import subprocess
import sys
import xml.etree.ElementTree as ET

from click.testing import CliRunner
from rich.console import Console

from ocx.cli import cli
from ocx.harness.report import comparison_table, html_report, load_runs


def _results(folder, name, scores):
    folder.mkdir(parents=True)
    summary = {
        s: {"accuracy": a, "n": 10, "unmatched": 1, "unmatched_rate": 0.1}
        for s, a in scores.items()
    }
    (folder / "results.json").write_text(json.dumps({"model_name": name, "summary": summary}))
    return folder


def _render(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_runs_are_compared_in_one_table_with_an_average_column(tmp_path):
    a = _results(tmp_path / "a", "ep1", {"mmlu": 0.5, "gsm8k": 0.25})
    b = _results(tmp_path / "b", "ep2", {"mmlu": 0.75, "gsm8k": 0.5, "math": 0.1})
    runs = load_runs([a, b / "results.json"])
    text = _render(comparison_table(runs))
    assert "average" in text
    lines = {
        line.split("│")[1].strip(): line
        for line in text.splitlines()
        if "│" in line and "ep" in line
    }
    assert "37.50" in lines["ep1"] and "–" in lines["ep1"]  # (50 + 25) / 2; math not run
    assert "45.00" in lines["ep2"]  # (75 + 50 + 10) / 3


def test_repeated_model_names_are_told_apart_by_their_folder(tmp_path):
    runs = load_runs(
        [_results(tmp_path / "e1", "m", {"x": 1.0}), _results(tmp_path / "e2", "m", {"x": 0.0})]
    )
    assert [r.label for r in runs] == ["m (e1)", "m (e2)"]


def test_html_report_is_self_contained_with_one_svg_chart_per_suite_and_the_average(tmp_path):
    runs = load_runs(
        [
            _results(tmp_path / "a", "<b>&model", {"mmlu": 0.5, "gsm8k": 0.25}),
            _results(tmp_path / "b", "other", {"mmlu": 0.75}),
        ]
    )
    page = html_report(runs)
    assert page.count("<svg") == 3  # average, mmlu, gsm8k
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "&lt;b&gt;&amp;model" in page and "<b>&model" not in page
    for svg in page.split("<svg")[1:]:
        ET.fromstring("<svg" + svg.split("</svg>")[0] + "</svg>")  # each chart is well-formed XML
    assert "not run" in page  # "other" has no gsm8k


def test_report_command_prints_the_table_and_writes_the_html(tmp_path):
    a = _results(tmp_path / "a", "ep1", {"mmlu": 0.5})
    out = tmp_path / "r" / "report.html"
    result = CliRunner().invoke(cli, ["report", str(a), "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert "ep1" in result.output and "50.00" in result.output
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_a_broken_results_file_is_a_clear_error_with_exit_code_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"summary": {"mmlu": {"n": 3}}}')
    done = subprocess.run(
        [sys.executable, "-m", "ocx.cli", "report", str(bad), "--html", str(tmp_path / "r.html")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"{bad}: summary.mmlu.accuracy: missing or not a number" in done.stderr
    assert not (tmp_path / "r.html").exists()


def test_a_results_file_with_malformed_mt_bench_categories_is_a_clear_input_error(tmp_path):
    import json

    import pytest

    from ocx.harness.errors import InputError
    from ocx.harness.results import load_results

    path = tmp_path / "results.json"
    path.write_text(
        json.dumps(
            {"summary": {"mt_bench": {"accuracy": 0.5, "categories": {"math": {"turn_1": 3}}}}}
        )
    )
    with pytest.raises(InputError) as err:
        load_results(path)
    assert [p.field for p in err.value.problems] == ["summary.mt_bench.categories.math.average"]


def test_bars_carry_the_95_percent_interval_and_the_html_cells_match_the_terminal(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    summary = {
        "mmlu": {"accuracy": 0.5, "n": 100, "stderr": 0.05, "ci95": [0.4, 0.6]},
        "gsm8k": {"accuracy": 0.25, "n": 100, "stderr": 0.04, "ci95": [0.18, 0.34]},
    }
    (folder / "results.json").write_text(
        json.dumps({"model_name": "m", "summary": summary, "average_ci95": [0.3, 0.45]})
    )
    runs = load_runs([folder])
    page = html_report(runs)
    assert page.count('class="whisker"') == 3  # mmlu, gsm8k and the average
    assert "95% interval 40.00-60.00" in page
    terminal = _render(comparison_table(runs))
    assert "50.00 ± 9.80" in terminal and "<td>50.00 ± 9.80</td>" in page
    assert "37.50" in terminal and "<td>37.50</td>" in page  # one average, defined once
