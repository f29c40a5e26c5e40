"""A recipe's report: one average definition and one epoch numbering in the table, the HTML and
report.json, the best epoch marked, loss and score line charts that a browser renders."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from ocx.recipes.report import (
    load_recipe_info,
    recipe_table,
    recorded_rows,
    report_document,
    write_recipe_report,
)
from tests.recipes.recorded_run import ACCURACY, CONDITIONS, SUITES, write_recorded_run

CHROMIUM = Path("/usr/bin/chromium")


def _document(out: Path) -> dict:
    info = load_recipe_info(out)
    return report_document(out, info, recorded_rows(out, info["conditions"]))


def _terminal(document: dict) -> str:
    console = Console(width=220, record=True, file=open(os.devnull, "w"))
    console.print(recipe_table(document))
    return console.export_text()


def test_the_average_is_per_condition_and_the_same_in_the_table_the_html_and_the_json(tmp_path):
    out = write_recorded_run(tmp_path / "run")
    document = _document(out)
    write_recipe_report(out, document)
    saved = json.loads((out / "report.json").read_text())
    table, page = _terminal(document), (out / "report.html").read_text()
    for epoch in range(3):
        for condition in CONDITIONS:
            expected = sum(ACCURACY[(s, condition)][epoch] for s in SUITES) / len(SUITES)
            assert saved["epochs"][epoch]["averages"][condition] == pytest.approx(expected)
        row = next(line for line in table.splitlines() if re.match(rf"│\s+{epoch} │", line))
        cells = [c.strip() for c in row.split("│")[1:-1]]
        # epoch, train loss, val loss, arithmetic [GPT4], gsm8k [GPT4], average [GPT4], ... [GPT3]
        assert cells[5] == f"{100 * saved['epochs'][epoch]['averages']['GPT4']:.1f}"
        assert cells[8] == f"{100 * saved['epochs'][epoch]['averages']['GPT3']:.1f}"
        assert f"<td>{cells[5]} <span" in page and f"<td>{cells[8]} <span" in page
    assert (
        saved["epochs"][2]["average"] == saved["epochs"][2]["averages"]["GPT4"]
    )  # what the best epoch is chosen by
    assert "average [GPT4]" in page and "average [GPT3]" in page


def test_epochs_are_numbered_as_the_checkpoint_folders_everywhere_and_the_result_links_resolve(
    tmp_path,
):
    out = write_recorded_run(tmp_path / "run")
    document = _document(out)
    write_recipe_report(out, document)
    assert [e["epoch"] for e in document["epochs"]] == [0, 1, 2]
    assert [e["checkpoint"] for e in document["epochs"]] == [
        "train/epoch_0",
        "train/epoch_1",
        "train/epoch_2",
    ]
    page = (out / "report.html").read_text()
    links = re.findall(r'href="([^"]+)"', page)
    assert len(links) == 6 and all((out / link).is_file() for link in links)
    for epoch, link in zip([0, 0, 1, 1, 2, 2], links):
        assert link.startswith(f"eval/epoch_{epoch}/")
    assert "<code>train/epoch_2</code>" in page and "Best epoch: 2" in page
    elsewhere = (
        tmp_path / "pages" / "r.html"
    )  # `ocx report RUN --html elsewhere`: links still reach the files
    write_recipe_report(out, document, elsewhere)
    assert all(
        (elsewhere.parent / link).resolve().is_file()
        for link in re.findall(r'href="([^"]+)"', elsewhere.read_text())
    )


def test_the_best_epoch_and_the_epochs_a_paired_test_cannot_tell_from_it_are_marked(tmp_path):
    out = write_recorded_run(tmp_path / "run")
    document = _document(out)
    assert document["best_epoch"] == 2 and document["best_checkpoint"] == "train/epoch_2"
    assert document["indistinguishable_from_best"] == {}  # 94% against 65%: a real gap
    table = _terminal(document)
    assert re.search(r"│\s+2 │.*│ best\s+│", table)
    write_recipe_report(out, document)
    assert '<tr class="best"><td>2</td>' in (out / "report.html").read_text()


def test_loss_and_score_charts_are_lines_with_interval_bands_and_a_best_epoch_marker(tmp_path):
    out = write_recorded_run(tmp_path / "run")
    write_recipe_report(out, _document(out))
    page = (out / "report.html").read_text()
    charts = page.split("<svg")[1:]
    assert len(charts) == 1 + 1 + len(SUITES)  # loss, average per condition, one per suite
    loss, *scores = charts
    assert loss.count("<polyline") == 2  # train and validation loss
    assert "validation loss" in loss and loss.count('class="epoch-end"') == 3
    for chart in scores:
        assert chart.count("<polyline") == len(CONDITIONS) and chart.count("<polygon") == len(
            CONDITIONS
        )
        assert "best: epoch 2" in chart
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert len(page.encode()) < 60_000  # 17 kB here; the same page with plotly inlined: ~4.9 MB


def test_a_hostile_run_folder_still_gives_a_readable_page(tmp_path):
    out = write_recorded_run(tmp_path / "run", epochs=2, validation=False)
    metrics = out / "train" / "metrics.jsonl"
    metrics.write_text(
        metrics.read_text() + '{"kind": "step", "step": 81, "epoch": 2, "loss": NaN}\n{"kind": "st'
    )
    info = json.loads((out / "report.json").read_text())
    info["recipe"] = "<script>alert(1)</script>"
    info["conditions"] = [
        "GPT4",
        "GPT3",
        "[bold]never evaluated",
    ]  # a condition with no results yet
    (out / "report.json").write_text(json.dumps(info))
    document = _document(out)
    assert document["epochs"] == []  # no epoch has every condition evaluated
    write_recipe_report(out, document)
    page = (out / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "no data yet" in page and "No epoch evaluated yet" in page
    assert "[bold]never evaluated" in _terminal(
        document
    )  # shown as written, not taken as rich markup


def test_ocx_report_on_a_recipe_folder_prints_the_table_and_redraws_the_report(
    tmp_path, monkeypatch, capsys
):
    from tests.cli import invoke_ocx

    out = write_recorded_run(tmp_path / "run")
    code, stdout, _ = invoke_ocx(monkeypatch, capsys, "report", out)
    assert code == 0 and "after each epoch" in stdout and "best" in stdout
    assert (out / "report.html").is_file() and json.loads((out / "report.json").read_text())[
        "best_epoch"
    ] == 2
    code, _, stderr = invoke_ocx(
        monkeypatch, capsys, "report", out, out / "eval" / "epoch_0" / "condition_0"
    )
    assert code == 2 and "one recipe output folder on its own" in stderr


def _chromium(*args: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(
                "CI is set, so the report must be checked in a browser: "
                "/usr/bin/chromium is missing"
            )
        pytest.skip(
            "headless Chromium test: /usr/bin/chromium is missing (apt-get install chromium)"
        )
    flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run(
        [str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120
    )


def test_the_report_renders_in_headless_chromium_with_every_chart_drawn(tmp_path):
    out = write_recorded_run(tmp_path / "run")
    write_recipe_report(out, _document(out))
    url = (out / "report.html").as_uri()
    dom = _chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr and "SyntaxError" not in dom.stderr
    assert dom.stdout.count("<svg") == 4 and dom.stdout.count("<polyline") == 2 + 3 * len(
        CONDITIONS
    )
    shot = tmp_path / "report.png"
    done = _chromium("--window-size=1200,1400", f"--screenshot={shot}", url)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    image = pytest.importorskip("PIL.Image").open(shot).convert("RGB")
    colours = {colour for _, colour in image.getcolors(1 << 20)}
    assert (0x4E, 0x79, 0xA7) in colours and (
        0xF2,
        0x8E,
        0x2B,
    ) in colours  # the two conditions' lines were drawn
