"""A hostile table of CLI mistakes around tokenizers, input files, caches and disks: each exits 2
with one line naming the file (and the field or option), no traceback, no output left behind."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import invoke_ocx

GOOD = {
    "condition": "GPT4 Correct",
    "items": [
        {"role": "user", "content": "Hi", "weight": 0.0},
        {"role": "assistant", "content": "Hello!", "weight": 1.0},
    ],
}


def run_ocx(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    code, out, err = invoke_ocx(monkeypatch, capsys, *args)
    return code, out + err


@pytest.fixture
def files(tmp_path, shared_dir) -> dict[str, Path]:
    vocab = shared_dir / "tokenizers"
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "not_a_tokenizer.model").write_bytes(b"\x00\x01garbage" * 100)
    (tmp_path / "good.jsonl").write_text(json.dumps(GOOD) + "\n")
    (tmp_path / "latin1.jsonl").write_bytes(
        json.dumps(GOOD).encode()
        + b"\n"
        + json.dumps(GOOD)
        .replace("Hello!", "caf\\u00e9")
        .encode()
        .replace(b"caf\\u00e9", b"caf\xe9")
        + b"\n"
    )
    (tmp_path / "reserved.jsonl").write_text(json.dumps({**GOOD, "condition": "GPT4\ue000"}) + "\n")
    return {
        "mistral": vocab / "mistral-v1" / "tokenizer.model",
        "llama2": vocab / "llama2" / "tokenizer.model",
        "llama3": vocab / "llama3" / "tokenizer.model",
        **{p.stem: p for p in tmp_path.iterdir()},
    }


# id: (command with {names} of `files`, the file the message names, words in the message)
TOKENIZE = ["data", "tokenize", "-m", "{type}", "-t", "{tok}", "{input}", "-o", "{out}", "-w", "1"]
TEMPLATES = ["templates", "tokenize", "-m", "{type}", "-t", "{tok}", "{input}"]
CASES = {
    "data: llama3 vocabulary under a mistral model type": (
        TOKENIZE,
        dict(type="openchat_3.5", tok="llama3", input="good"),
        "llama3",
        "--tokenizer: has no '<|end_of_turn|>'",
    ),
    "data: llama2 vocabulary under a mistral model type": (
        TOKENIZE,
        dict(type="openchat_3.5", tok="llama2", input="good"),
        "llama2",
        "tokenizer and model type do not match",
    ),
    "data: mistral vocabulary under a llama3 model type": (
        TOKENIZE,
        dict(type="openchat_3.6", tok="mistral", input="good"),
        "mistral",
        "'<|eot_id|>'",
    ),
    "data: tokenizer folder without tokenizer files": (
        TOKENIZE,
        dict(type="openchat_3.5", tok="empty_folder", input="good"),
        "empty_folder",
        "neither tokenizer.model",
    ),
    "data: a file that is not a tokenizer": (
        TOKENIZE,
        dict(type="openchat_3.5", tok="not_a_tokenizer", input="good"),
        "not_a_tokenizer",
        "not a readable tokenizer",
    ),
    "data: input that is not UTF-8": (
        TOKENIZE,
        dict(type="openchat_3.5", tok="mistral", input="latin1"),
        "latin1",
        ":2: not valid UTF-8",
    ),
    "data: a condition with a template's reserved character": (
        TOKENIZE,
        dict(type="openchat_3.5", tok="mistral", input="reserved"),
        "reserved",
        ":1: condition: contains a reserved",
    ),
    "templates: llama3 vocabulary under a mistral model type": (
        TEMPLATES,
        dict(type="openchat_3.5", tok="llama3", input="good"),
        "llama3",
        "--tokenizer: has no",
    ),
    "templates: llama2 vocabulary under a mistral model type": (
        TEMPLATES,
        dict(type="openchat_3.5", tok="llama2", input="good"),
        "llama2",
        "do not match",
    ),
    "templates: tokenizer folder without tokenizer files": (
        TEMPLATES,
        dict(type="openchat_3.5", tok="empty_folder", input="good"),
        "empty_folder",
        "neither tokenizer.model",
    ),
    "templates: a file that is not a tokenizer": (
        TEMPLATES,
        dict(type="openchat_3.5", tok="not_a_tokenizer", input="good"),
        "not_a_tokenizer",
        "not a readable",
    ),
    "templates: input that is not UTF-8": (
        TEMPLATES,
        dict(type="openchat_3.5", tok="mistral", input="latin1"),
        "latin1",
        ":2: not valid UTF-8",
    ),
    "templates: a condition with a template's reserved character": (
        TEMPLATES,
        dict(type="openchat_3.5", tok="mistral", input="reserved"),
        "reserved",
        ":1: condition: contains",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_cli_mistake_exits_2_with_one_line_naming_the_file_and_nothing_written(
    case, files, tmp_path, monkeypatch, capsys
):
    command, names, named, words = CASES[case]
    values = {k: files[v] for k, v in names.items() if k != "type"} | {
        "type": names["type"],
        "out": tmp_path / "out",
    }
    before = sorted(p.name for p in tmp_path.iterdir())
    code, output = run_ocx(monkeypatch, capsys, *[part.format(**values) for part in command])
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(files[named]) in errors[0] and words in errors[0], output
    assert "Traceback" not in output
    assert sorted(p.name for p in tmp_path.iterdir()) == before, (
        "output or a temporary folder was left behind"
    )


def test_an_empty_tokenizer_path_is_a_usage_error_not_a_traceback(
    files, tmp_path, monkeypatch, capsys
):
    for command in (
        ["data", "tokenize", "-m", "openchat_3.5", "-t", "", files["good"], "-o", tmp_path / "out"],
        ["templates", "tokenize", "-m", "openchat_3.5", "-t", "", files["good"]],
    ):
        code, output = run_ocx(monkeypatch, capsys, *command)
        assert code == 2 and "'--tokenizer'" in output and "Traceback" not in output, output
    assert not (tmp_path / "out").exists()


def _tokenize_good(monkeypatch, capsys, files, out: Path) -> tuple[int, str]:
    """`ocx data tokenize` of the good file with one worker, into `out`."""
    args = ["-m", "openchat_3.5", "-t", files["mistral"], files["good"], "-o", out, "-w", "1"]
    return run_ocx(monkeypatch, capsys, "data", "tokenize", *args)


@pytest.fixture
def dataset(tmp_path, monkeypatch, capsys, files) -> Path:
    out = tmp_path / "ds"
    code, output = _tokenize_good(monkeypatch, capsys, files, out)
    assert code == 0, output
    return out


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _drop_column(path: Path) -> None:
    from pyarrow import parquet

    parquet.write_table(parquet.read_table(path).drop_columns(["labels"]), path)


CORRUPTIONS = {
    "manifest cut in half": ("manifest.json", _truncate, "corrupt manifest"),
    "manifest of another format": (
        "manifest.json",
        lambda p: p.write_text('{"format": "other"}'),
        "format: not an",
    ),
    "manifest from a future version": (
        "manifest.json",
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "format_version": 99})),
        "format_version: is 99",
    ),
    "parquet cut in half": ("data.parquet", _truncate, "corrupt Parquet file"),
    "parquet emptied": ("data.parquet", lambda p: p.write_bytes(b""), "corrupt Parquet file"),
    "parquet without a column": ("data.parquet", _drop_column, "labels: column missing"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupt_tokenized_dataset_is_named_with_how_to_rebuild_it(
    case, dataset, monkeypatch, capsys
):
    name, corrupt, words = CORRUPTIONS[case]
    corrupt(dataset / name)
    code, output = run_ocx(monkeypatch, capsys, "data", "stats", dataset)
    assert code == 2, output
    assert f"{dataset / name}:" in output and words in output and "tokenize again" in output, output
    assert "Traceback" not in output


def test_a_full_disk_while_writing_exits_2_and_leaves_nothing(files, tmp_path, monkeypatch, capsys):
    from pyarrow import parquet

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(parquet.ParquetWriter, "write_table", no_space)
    out = tmp_path / "out"
    code, output = _tokenize_good(monkeypatch, capsys, files, out)
    assert code == 2 and f"{out}: cannot write the dataset: No space left on device" in output, (
        output
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in files.values() if p.parent == tmp_path
    )


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 64 KiB tmpfs (root only); skipped where mounting is not allowed."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    disk = tmp_path / "disk"
    disk.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_really_full_disk_exits_2_without_a_traceback_or_a_half_written_folder(
    tiny_disk, files, tmp_path
):
    from ocx.testing.conversations import sharegpt_like, write_jsonl

    source = write_jsonl(sharegpt_like(300, seed=1, mean_words=100), tmp_path / "many.jsonl")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocx.cli.__main__",
            "data",
            "tokenize",
            "-m",
            "openchat_3.5",
            "-t",
            str(files["mistral"]),
            str(source),
            "-o",
            str(tiny_disk / "out"),
            "-w",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert (
        f"{tiny_disk / 'out'}: cannot write the dataset:" in result.stderr
        and "No space left" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert list(tiny_disk.iterdir()) == []
