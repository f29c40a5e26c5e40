"""`ocx data tokenize` and `ocx data stats` from the CLI: errors, atomic output, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocx.harness.data import load_tokenized
from ocx.testing.conversations import sharegpt_like, write_jsonl
from tests.cli import invoke_ocx

GOOD = {
    "condition": "GPT4 Correct",
    "items": [
        {"role": "user", "content": "Hi", "weight": 0.0},
        {"role": "assistant", "content": "Hello!", "weight": 1.0},
    ],
}


def run_ocx(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    code, out, err = invoke_ocx(monkeypatch, capsys, *args)
    return code, out, " ".join(err.split())  # rich wraps long lines on stderr


def tokenize_args(tokenizer: Path, out: Path, *inputs: Path, workers: int = 1) -> list[str]:
    return [
        "data",
        "tokenize",
        "-m",
        "openchat_3.5",
        "-t",
        str(tokenizer),
        *map(str, inputs),
        "-o",
        str(out),
        "--workers",
        str(workers),
    ]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


BAD_LINES = {
    "malformed JSON": ('{"items": [', None, "malformed JSON"),
    "missing weight": (
        '{"items": [{"role": "user", "content": "q"}]}',
        "items[0].weight",
        "missing weight",
    ),
    "non-numeric weight": (
        '{"items": [{"role": "user", "content": "q", "weight": "1"}]}',
        "items[0].weight",
        "weight must be a number",
    ),
    "unknown role": (
        '{"items": [{"role": "robot", "content": "q", "weight": 1}]}',
        "items[0].role",
        "unknown role",
    ),
    "negative weight": (
        '{"items": [{"role": "user", "content": "q", "weight": -1}]}',
        "items[0].weight",
        "finite number >= 0",
    ),
    "empty conversation": ('{"items": []}', "items", "empty conversation"),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_a_bad_line_fails_with_file_line_field_exit_code_2_and_no_output(
    case, tmp_path, monkeypatch, capsys, mistral_tokenizer_file
):
    line, field, message = BAD_LINES[case]
    source = write_lines(
        tmp_path / "in.jsonl", [json.dumps(GOOD), json.dumps(GOOD), line, json.dumps(GOOD)]
    )
    out = tmp_path / "out"
    code, _, err = run_ocx(monkeypatch, capsys, *tokenize_args(mistral_tokenizer_file, out, source))
    assert code == 2
    where = f"{source}:3: {field}:" if field else f"{source}:3:"
    assert where in err and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"], (
        "output or temp dir left behind"
    )


def test_every_bad_line_is_reported_at_once(tmp_path, monkeypatch, capsys, mistral_tokenizer_file):
    lines = [json.dumps(GOOD)] * 2500  # bad lines in different chunks
    lines[10], lines[2400] = BAD_LINES["unknown role"][0], BAD_LINES["malformed JSON"][0]
    source = write_lines(tmp_path / "in.jsonl", lines)
    code, _, err = run_ocx(
        monkeypatch, capsys, *tokenize_args(mistral_tokenizer_file, tmp_path / "out", source)
    )
    assert code == 2
    assert f"{source}:11: items[0].role" in err and f"{source}:2401:" in err, err
    assert not (tmp_path / "out").exists()


def test_skip_invalid_keeps_the_good_lines_and_lists_the_skipped_ones(
    tmp_path, monkeypatch, capsys, mistral_tokenizer_file
):
    source = write_lines(
        tmp_path / "in.jsonl",
        [json.dumps(GOOD), BAD_LINES["missing weight"][0], "", json.dumps(GOOD), "\xff not json"],
    )
    out = tmp_path / "out"
    code, _, err = run_ocx(
        monkeypatch, capsys, *tokenize_args(mistral_tokenizer_file, out, source), "--skip-invalid"
    )
    assert code == 0, err
    assert len(load_tokenized(out)) == 2
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(s["line"], s["field"]) for s in skipped] == [(2, "items[0].weight"), (5, None)]
    assert all(s["file"] == str(source) for s in skipped)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["skipped_invalid"] == 2 and manifest["counts"]["lines"] == 5


def test_two_runs_write_identical_bytes_whatever_the_worker_count(
    tmp_path, monkeypatch, capsys, mistral_tokenizer_file
):
    first = write_jsonl(sharegpt_like(1200, seed=2, mean_words=20), tmp_path / "a.jsonl")
    second = write_jsonl(sharegpt_like(300, seed=3, mean_words=20), tmp_path / "b.jsonl")
    for name, workers in (("one", 1), ("two", 2)):
        code, _, err = run_ocx(
            monkeypatch,
            capsys,
            *tokenize_args(mistral_tokenizer_file, tmp_path / name, first, second, workers=workers),
        )
        assert code == 0, err
    for f in ("data.parquet", "manifest.json"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes(), f
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert [i["file"] for i in manifest["inputs"]] == ["a.jsonl", "b.jsonl"]
    assert manifest["counts"]["conversations"] == 1500
    assert manifest["model_type"] == "openchat_3.5" and len(manifest["template_sha256"]) == 64


def test_an_existing_output_is_kept_unless_overwrite_is_given(
    tmp_path, monkeypatch, capsys, mistral_tokenizer_file
):
    source = write_lines(tmp_path / "in.jsonl", [json.dumps(GOOD)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("x")
    code, _, err = run_ocx(monkeypatch, capsys, *tokenize_args(mistral_tokenizer_file, out, source))
    assert code == 2 and "--overwrite" in err
    assert (out / "keep").exists()
    code, _, err = run_ocx(
        monkeypatch, capsys, *tokenize_args(mistral_tokenizer_file, out, source), "--overwrite"
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["data.parquet", "manifest.json"]


def test_stats_json_reports_sizes_conditions_and_packing(
    tmp_path, monkeypatch, capsys, mistral_tokenizer_file
):
    source = write_jsonl(sharegpt_like(200, seed=4, mean_words=30), tmp_path / "in.jsonl")
    out = tmp_path / "out"
    assert run_ocx(monkeypatch, capsys, *tokenize_args(mistral_tokenizer_file, out, source))[0] == 0
    code, text, err = run_ocx(
        monkeypatch,
        capsys,
        "data",
        "stats",
        str(out),
        "--batch-max-len",
        "8192",
        "--num-ranks",
        "2",
        "--json",
    )
    assert code == 0, err
    stats = json.loads(text)
    ds = load_tokenized(out)
    assert stats["conversations"] == len(ds) == 200
    assert stats["tokens"] == int(ds.lengths.sum())
    assert stats["supervised_tokens"] == int((ds.weights != 0).sum())
    assert sum(c["conversations"] for c in stats["conditions"].values()) == 200
    assert stats["conditions"]["GPT3"]["weight_sum"] == pytest.approx(
        0.1 * stats["conditions"]["GPT3"]["supervised_tokens"], rel=1e-5
    )
    assert stats["length"]["p50"] <= stats["length"]["p90"] <= stats["length"]["max"]
    packing = stats["packing"]
    # Exactly-once epochs: the fewest steps that can hold every token, each used slot counted once.
    slots_per_step = packing["num_ranks"] * packing["batch_max_len"]
    assert packing["num_ranks"] == 2 and packing["steps_per_epoch"] == -(
        -stats["tokens"] // slots_per_step
    )
    assert packing["efficiency"] == pytest.approx(
        stats["tokens"] / (packing["steps_per_epoch"] * slots_per_step), abs=1e-6
    )
    code, text, _ = run_ocx(
        monkeypatch, capsys, "data", "stats", str(out), "--batch-max-len", "8192"
    )
    assert code == 0 and "packing efficiency" in text and "supervised tokens" in text


def test_loading_a_directory_that_is_not_a_dataset_names_the_missing_file(
    tmp_path, monkeypatch, capsys
):
    code, _, err = run_ocx(monkeypatch, capsys, "data", "stats", str(tmp_path))
    assert code == 2 and "manifest.json" in err
