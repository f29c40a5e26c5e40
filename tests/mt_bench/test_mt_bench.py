"""MT-Bench end to end against a fake model server and a fake judge server on 127.0.0.1."""

from __future__ import annotations

import re
from statistics import mean

import pytest

from ocx.benchmarks.mt_bench import CATEGORIES, SUITE
from ocx.benchmarks.mt_bench_data import load_mt_bench
from ocx.benchmarks.mt_bench_report import mt_bench_table, radar_svg, table_rows
from ocx.harness.backends.openai_http import OpenAIBackend
from ocx.harness.cache import ResponseCache
from ocx.harness.errors import InputError
from ocx.harness.judge import parse_rating
from ocx.harness.runner import RequestsFailedError


def model_responder(body):
    """Turn 1: names the question; turn 2 quotes its own first answer (proving it saw it)."""
    messages = body["messages"]
    if len(messages) == 1:
        return f"first answer to: {messages[0]['content'][:40]}"
    return f"second answer; before I said <{messages[1]['content']}>"


def planned_rating(question_id: int, turn: int) -> float:
    return float((question_id * 3 + turn * 5) % 10 + 1)


def planned_judgment(question_id: int, turn: int) -> str:
    """Known ratings, written in the ways judges write them, and some malformed judgments."""
    rating = planned_rating(question_id, turn)
    kind = (question_id + turn) % 7
    if kind == 0:
        return "The answer is fine but I will not give a number."  # malformed: no rating
    if kind == 1:
        return "Good. Rating: [[12]]"  # malformed: out of range
    if kind == 2:
        return 'Following "Rating: [[5]]" style, it deserves Rating: [[9]]'  # malformed: two values
    if kind == 3:
        return f"Concise and correct.\n\nRating: [{rating:g}]"
    return f"Explanation of the verdict.\nRating: [[{rating:g}]]"


def judge_responder(data):
    by_text = {q.turns[0]: q for q in data.questions}

    def respond(body):
        prompt = body["messages"][-1]["content"]
        turn = 2 if "### User:" in prompt else 1
        q = next(q for text, q in by_text.items() if text in prompt)
        assert (
            "Reference Answer" in prompt or "Reference answer" in prompt
        ) == q.needs_reference, q.id
        if turn == 2:
            assert f"before I said <first answer to: {q.turns[0][:40]}>" in prompt, (
                "turn 2 lost turn 1"
            )
        return planned_judgment(q.id, turn)

    return respond


def expected_rows(data) -> list[list[str]]:
    """The table computed independently of ocx's summary code, from the planned judgments."""
    ratings = {(q.category, t): [] for q in data.questions for t in (1, 2)}
    for q in data.questions:
        for turn in (1, 2):
            kind = (q.id + turn) % 7
            if kind not in (0, 1, 2):
                ratings[(q.category, turn)].append(planned_rating(q.id, turn))
    rows = []
    for c in CATEGORIES:
        t1, t2 = ratings[(c, 1)], ratings[(c, 2)]
        rows.append([c, f"{mean(t1):.2f}", f"{mean(t2):.2f}", f"{mean(t1 + t2):.2f}"])
    all1 = [r for (c, t), v in ratings.items() if t == 1 for r in v]
    all2 = [r for (c, t), v in ratings.items() if t == 2 for r in v]
    rows.append(["overall", f"{mean(all1):.2f}", f"{mean(all2):.2f}", f"{mean(all1 + all2):.2f}"])
    return rows


def backend(server, name, retries=2):
    return OpenAIBackend(
        server.url, name, concurrency=8, max_retries=retries, backoff=0.01, max_backoff=0.05
    )


def test_mt_bench_end_to_end_reproduces_the_expected_table_and_resumes_from_the_cache(
    data, mock_server, tmp_path
):
    model, judge = mock_server(model_responder), mock_server(judge_responder(data))
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        summary, records = SUITE.run(
            data,
            backend(model, "fake-model"),
            backend(judge, "fake-judge"),
            cache,
            condition="GPT4 Correct",
        )
    scores = summary.scores()
    assert table_rows(scores) == expected_rows(data)
    malformed = sum((q.id + t) % 7 in (0, 1, 2) for q in data.questions for t in (1, 2))
    assert scores["n"] == 160 and scores["unmatched"] == malformed > 0
    unparsed = [r for r in records if r.rating is None]
    assert all(r.judgment for r in unparsed), "an unparseable judgment must be kept, with its text"
    assert model.total_received == 160 and judge.total_received == 160
    # The condition reached the model, never the judge.
    assert all(b.get("condition") == "GPT4 Correct" for b in model.bodies)
    assert all("condition" not in b for b in judge.bodies)
    # FastChat's sampling: writing at 0.7, math greedy; the judge greedy.
    temps = {
        b["messages"][0]["content"]: b.get("temperature")
        for b in model.bodies
        if len(b["messages"]) == 1
    }
    q_writing = next(q for q in data.questions if q.category == "writing")
    q_math = next(q for q in data.questions if q.category == "math")
    assert temps[q_writing.turns[0]] == 0.7 and temps[q_math.turns[0]] == 0.0

    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        again, _ = SUITE.run(
            data,
            backend(model, "fake-model"),
            backend(judge, "fake-judge"),
            cache,
            condition="GPT4 Correct",
        )
    assert model.total_received == 160 and judge.total_received == 160, "a resumed run asked again"
    assert again.scores() == scores


def test_a_run_whose_judge_fails_keeps_the_model_answers_for_the_next_run(
    data, mock_server, tmp_path
):
    model = mock_server(model_responder)
    broken = mock_server(judge_responder(data), fail_first=10**6)
    failed = pytest.raises(RequestsFailedError, match=r"mt_bench judge: 10 of 10 requests failed")
    with ResponseCache(tmp_path / "c.sqlite") as cache, failed:
        SUITE.run(data, backend(model, "m"), backend(broken, "j", retries=0), cache, limit=5)
    assert model.total_received == 10
    judge = mock_server(judge_responder(data))
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        summary, _ = SUITE.run(data, backend(model, "m"), backend(judge, "j"), cache, limit=5)
    assert model.total_received == 10 and judge.total_received == 10 and summary.n == 10


def test_the_rich_table_and_the_radar_chart_show_every_category(data, mock_server, tmp_path):
    from rich.console import Console

    model, judge = mock_server(model_responder), mock_server(judge_responder(data))
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        summary, _ = SUITE.run(data, backend(model, "m"), backend(judge, "j"), cache)
    console = Console(record=True, width=100)
    console.print(mt_bench_table(summary.scores()))
    text = console.export_text()
    for row in expected_rows(data):
        assert re.search(r"[\s│]+".join(re.escape(cell) for cell in row), text), row
    svg = radar_svg([("fake-model", {c: v["average"] for c, v in summary.categories().items()})])
    assert (
        svg.startswith("<svg") and svg.count("<polygon") == 6 and all(c in svg for c in CATEGORIES)
    )


@pytest.mark.parametrize(
    "text, rating",
    [
        ("Rating: [[8]]", 8.0),
        ("[[ 7.5 ]]", 7.5),
        ("so [[6/10]]", 6.0),
        ("Rating: [4]", 4.0),
        ("[[7]] ... [[7]]", 7.0),
        ("no verdict", None),
        ("Rating: [[0]]", None),
        ("[[11]]", None),
        ("Rating: [[5]] then [[9]]", None),
        ("see [1] and [2]", None),
        ("Rating: 8/10", None),
        ("[[rating]]", None),
    ],
)
def test_judge_ratings_are_parsed_robustly_and_never_guessed(text, rating):
    assert parse_rating(text) == rating


def test_bad_mt_bench_data_is_reported_with_file_line_and_field(tmp_path, shared_dir):
    src = shared_dir / "data" / "mt_bench"
    (tmp_path / "reference_answer").mkdir()
    (tmp_path / "reference_answer" / "gpt-4.jsonl").write_text(
        (src / "reference_answer" / "gpt-4.jsonl").read_text()
    )
    (tmp_path / "judge_prompts.jsonl").write_text((src / "judge_prompts.jsonl").read_text())
    (tmp_path / "question.jsonl").write_text(
        '{"question_id": 1, "category": "writing", "turns": ["only one"]}\n'
        '{"question_id": 2, "category": "math", "turns": ["a", "b"]}\n'
    )
    with pytest.raises(InputError) as err:
        load_mt_bench(tmp_path)
    message = str(err.value)
    assert "question.jsonl:1: turns" in message and "question.jsonl:2: question_id" in message


def test_ocx_eval_reports_every_missing_mt_bench_option_at_once(tmp_path):
    from ocx.benchmarks.mt_bench_session import check_options

    fields = [p.field for p in check_options(None, None, None)]
    assert fields == ["--judge-endpoint", "--judge-model", "--mt-bench-data"]
    assert [p.field for p in check_options("http://x/v1", "judge", str(tmp_path / "nowhere"))] == [
        "--mt-bench-data"
    ]


def test_run_for_eval_drives_model_and_judge_endpoints(data, mock_server, tmp_path, shared_dir):
    from ocx.benchmarks.mt_bench_session import run_for_eval

    model, judge = mock_server(model_responder), mock_server(judge_responder(data))
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        summary, records = run_for_eval(
            backend(model, "m"),
            cache,
            judge_endpoint=judge.url,
            judge_model="j",
            mt_bench_data=str(shared_dir / "data" / "mt_bench"),
            limit=3,
        )
    assert summary.n == 6 and len(records) == 6 and judge.total_received == 6
    assert all(r.to_dict()["id"].startswith("mt_bench/") for r in records)


def test_each_phase_has_a_progress_bar_that_counts_every_request_once_cached_or_asked(
    data, mock_server, tmp_path
):
    import io

    from rich.console import Console
    from rich.progress import Progress

    model, judge = mock_server(model_responder), mock_server(judge_responder(data))
    for run in range(2):  # asked, then all from the cache
        progress = Progress(console=Console(file=io.StringIO()))
        with ResponseCache(tmp_path / "cache.sqlite") as cache, progress:
            summary, _ = SUITE.run(
                data, backend(model, "m"), backend(judge, "j"), cache, limit=3, progress=progress
            )
        bars = {t.description: (t.completed, t.total) for t in progress.tasks}
        assert bars == {
            "mt_bench turn 1": (3, 3),
            "mt_bench turn 2": (3, 3),
            "mt_bench judge": (6, 6),
        }
        assert (summary.sent, summary.cached) == ((12, 0) if run == 0 else (0, 12))
    assert model.total_received == 6 and judge.total_received == 6
