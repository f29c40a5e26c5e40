"""A hostile table of recipe mistakes: each one exits 2 before any work, with one line naming
file:line:field, and creates no output folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import invoke_ocx

BASE = """\
name: table
model:
  base: tiny
  model_type: openchat_3.5
  tokenizer: tok/tokenizer.model
  tiny: {hidden_size: 64, num_hidden_layers: 1}
data:
  - path: data/a.jsonl
    condition: GPT4
    weight: 1.0
  - generator: arithmetic
    count: 100
    quality: wrong
    condition: GPT3
    weight: 0.1
    seed: 0
train:
  epochs: 2
  lr: 0.001
  batch_max_len: 2048
  zero_stage: 2
  too_long: refuse
  lr_warmup_ratio: 0.05
  gradient_checkpointing: false
eval:
  suites: [arithmetic]
  conditions: [GPT4]
  backend: transformers
  limit: 10
  batch_size: 8
output: out
"""

# id: (line to replace, its new text, expected field, expected words[, line reported])
MISTAKES = {
    "zero epochs": (18, "  epochs: 0", "train.epochs", "from 1 to 1000, got 0"),
    "negative epochs": (18, "  epochs: -3", "train.epochs", "got -3"),
    "fractional epochs": (18, "  epochs: 2.5", "train.epochs", "must be an integer"),
    "epochs as a string": (18, '  epochs: "3"', "train.epochs", "got string '3'"),
    "epochs as yes": (18, "  epochs: yes", "train.epochs", "got boolean True"),
    "epochs left empty": (18, "  epochs:", "train.epochs", "is empty (null)"),
    "negative lr": (19, "  lr: -1", "train.lr", "> 0 and <= 1, got -1"),
    "zero lr": (19, "  lr: 0", "train.lr", "> 0"),
    "infinite lr": (19, "  lr: .inf", "train.lr", "got inf"),
    "minus infinite lr": (19, "  lr: -.inf", "train.lr", "got -inf"),
    "nan lr": (19, "  lr: .nan", "train.lr", "got nan"),
    "huge lr": (19, "  lr: 5.0", "train.lr", "<= 1"),
    "lr in e-notation without a dot": (19, "  lr: 1e-3", "train.lr", "YAML reads it as text"),
    "lr as yes": (19, "  lr: yes", "train.lr", "got boolean True"),
    "zero batch_max_len": (20, "  batch_max_len: 0", "train.batch_max_len", "got 0"),
    "absurd batch_max_len": (
        20,
        "  batch_max_len: 1000000000000",
        "train.batch_max_len",
        "16,777,216",
    ),
    "zero_stage 5": (21, "  zero_stage: 5", "train.zero_stage", "one of 2, 3, got integer 5"),
    "zero_stage yes": (21, "  zero_stage: yes", "train.zero_stage", "got boolean True"),
    "zero_stage 2.0": (21, "  zero_stage: 2.0", "train.zero_stage", "got number 2.0"),
    "too_long maybe": (
        22,
        "  too_long: maybe",
        "train.too_long",
        "one of 'refuse', 'truncate', got string 'maybe'",
    ),
    "too_long misspelt": (22, "  too_long: truncat", "train.too_long", "did you mean 'truncate'"),
    "warmup ratio of 1": (23, "  lr_warmup_ratio: 1", "train.lr_warmup_ratio", "< 1"),
    "boolean as a string": (
        24,
        '  gradient_checkpointing: "false"',
        "train.gradient_checkpointing",
        "true or false",
    ),
    "beta1 of 1": (24, "  beta1: 1.0", "train.beta1", ">= 0 and < 1, got 1.0"),
    "zero eps": (24, "  eps: 0", "train.eps", "> 0 and <= 1, got 0"),
    "validation every 5 steps without a validation set": (
        24,
        "  val_every_steps: 5",
        "train.val_every_steps",
        "needs a validation set: add train.val_fraction or train.val_data",
    ),
    "lora on zero stage 3": (
        21,
        "  zero_stage: 3\n  lora: {rank: 8}",
        "train.zero_stage",
        "LoRA trains with ZeRO-2 (the frozen base is not partitioned); set train.zero_stage to 2",
    ),
    "lora alpha without a rank": (
        24,
        "  lora:\n    alpha: 16",
        "train.lora.rank",
        "is required when train.lora is given",
    ),
    "unknown train key": (18, "  epoch: 2", "train.epoch", "did you mean 'epochs'"),
    "managed train key": (18, "  out: elsewhere", "train.out", "unknown key 'out'"),
    "unknown top-level key": (31, "outputs: out", "outputs", "did you mean 'output'"),
    "zero count": (12, "    count: 0", "data[1].count", "from 1 to 100,000, got 0"),
    "count 1e12 (text in YAML)": (12, "    count: 1e12", "data[1].count", "YAML reads it as text"),
    "count of a trillion": (12, "    count: 1000000000000", "data[1].count", "from 1 to 100,000"),
    "count 1.0e12": (12, "    count: 1.0e+12", "data[1].count", "must be an integer"),
    "negative count": (12, "    count: -5", "data[1].count", "got -5"),
    "count as yes": (12, "    count: yes", "data[1].count", "got boolean True"),
    "negative weight": (15, "    weight: -1", "data[1].weight", ">= 0, got -1"),
    "nan weight": (15, "    weight: .nan", "data[1].weight", "got nan"),
    "infinite weight": (15, "    weight: .inf", "data[1].weight", "got inf"),
    "weight as a word": (15, "    weight: high", "data[1].weight", "got string 'high'"),
    "weight missing": (
        15,
        "    # no weight",
        "data[1].weight",
        "is required",
        11,
    ),  # the source's line
    "quality misspelt": (13, "    quality: wrnog", "data[1].quality", "did you mean 'wrong'"),
    "quality unknown": (13, "    quality: maybe", "data[1].quality", "one of 'correct', 'wrong'"),
    "generator misspelt": (
        11,
        "  - generator: arithmetc",
        "data[1].generator",
        "did you mean 'arithmetic'",
    ),
    "negative seed": (16, "    seed: -1", "data[1].seed", "got -1"),
    "condition as a number": (14, "    condition: 5", "data[1].condition", "must be a string"),
    "missing data file": (8, "  - path: data/missing.jsonl", "data[0].path", "data file not found"),
    "unknown data key": (9, "    conditon: GPT4", "data[0].conditon", "did you mean 'condition'"),
    "misspelt model type": (4, "  model_type: openchat_35", "model.model_type", "did you mean"),
    "missing tokenizer": (
        5,
        "  tokenizer: tok/nothing.model",
        "model.tokenizer",
        "tokenizer not found",
    ),
    "empty tokenizer": (5, '  tokenizer: ""', "model.tokenizer", "tokenizer not found"),
    "tokenizer of another model type": (
        4,
        "  model_type: openchat_3.6",
        "model.tokenizer",
        "'<|eot_id|>'",
        5,
    ),
    "tokenizer that is not a tokenizer": (
        5,
        "  tokenizer: data/a.jsonl",
        "model.tokenizer",
        "not a readable tokenizer",
    ),
    "zero hidden size": (6, "  tiny: {hidden_size: 0}", "model.tiny.hidden_size", "got 0"),
    "fractional layer count": (
        6,
        "  tiny: {num_hidden_layers: 1.5}",
        "model.tiny.num_hidden_layers",
        "integer",
    ),
    "missing local base folder": (
        3,
        "  base: ./models/nowhere",
        "model.base",
        "model folder not found",
    ),
    "empty suite list": (26, "  suites: []", "eval.suites", "at least one suite"),
    "misspelt suite": (26, "  suites: [arithmetik]", "eval.suites[0]", "did you mean 'arithmetic'"),
    "misspelt backend": (28, "  backend: vlm", "eval.backend", "did you mean 'vllm'"),
    "misspelt engine": (28, "  engine: vlm", "eval.engine", "did you mean 'vllm'"),
    "engine and its old name both": (
        28,
        "  engine: vllm\n  backend: vllm",
        "eval.backend",
        "give only eval.engine",
        29,
    ),
    "zero limit": (29, "  limit: 0", "eval.limit", "got 0"),
    "zero eval batch size": (30, "  batch_size: 0", "eval.batch_size", "got 0"),
    "condition list of numbers": (
        27,
        "  conditions: [5]",
        "eval.conditions[0]",
        "must be a string",
    ),
    "output as a number": (31, "output: 5", "output", "must be a string"),
    "name as a list": (1, "name: [a]", "name", "must be a string"),
    "duplicate key": (
        19,
        "  epochs: 3",
        "train.epochs",
        "duplicate key 'epochs' (first on line 18)",
    ),
    "python tag": (1, "name: !!python/object/apply:os.system ['true']", None, "YAML tag"),
    "custom tag": (31, "output: !include other.yaml", None, "YAML tag '!include' refused"),
    "broken indentation": (19, "   lr: 0.001", None, "invalid YAML"),
    "tab indentation": (19, "\tlr: 0.001", None, "invalid YAML"),
}


@pytest.fixture
def recipe_dir(tmp_path, mistral_tokenizer_file) -> Path:
    folder = tmp_path / "recipes"
    (folder / "tok").mkdir(parents=True)
    shutil.copyfile(mistral_tokenizer_file, folder / "tok" / "tokenizer.model")
    (folder / "data").mkdir()
    row = {"items": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]}
    (folder / "data" / "a.jsonl").write_text(json.dumps(row) + "\n")
    return folder


def with_line(number: int, text: str) -> str:
    lines = BASE.splitlines()
    lines[number - 1] = text
    return "\n".join(lines) + "\n"


def run_ocx(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    code, out, err = invoke_ocx(monkeypatch, capsys, *args)
    return code, out + err


def test_the_base_recipe_of_the_table_is_valid(recipe_dir, monkeypatch, capsys):
    (recipe_dir / "r.yaml").write_text(BASE)
    code, output = run_ocx(monkeypatch, capsys, "recipe", "validate", str(recipe_dir / "r.yaml"))
    assert code == 0, output


@pytest.mark.parametrize("case", list(MISTAKES))
def test_a_recipe_mistake_exits_2_naming_file_line_and_field_and_creates_nothing(
    case, recipe_dir, tmp_path, monkeypatch, capsys
):
    line, text, field, words, *reported = MISTAKES[case]
    recipe = recipe_dir / "r.yaml"
    recipe.write_text(with_line(line, text))
    line = reported[0] if reported else line
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for command in ("validate", "run"):
        code, output = run_ocx(monkeypatch, capsys, "recipe", command, str(recipe))
        assert code == 2, f"{command}: {output}"
        where = f"{recipe}:{line}: {field}: " if field else f"{recipe}:{line}: "
        assert where in output and words in output, (
            f"{command}: expected {where!r} ... {words!r} in {output!r}"
        )
        assert "Traceback" not in output
    assert list(work.iterdir()) == [], "recipe run created output before validating"
    assert sorted(p.name for p in recipe_dir.iterdir()) == ["data", "r.yaml", "tok"]


def test_a_llama2_tokenizer_under_a_mistral_model_type_is_refused(
    recipe_dir, llama2_tokenizer_file, monkeypatch, capsys
):
    # Both are 32,000-piece sentencepiece models and both get <|end_of_turn|> = 32000:
    # only the IDs differ.
    shutil.copyfile(llama2_tokenizer_file, recipe_dir / "tok" / "tokenizer.model")
    (recipe_dir / "r.yaml").write_text(BASE)
    code, output = run_ocx(monkeypatch, capsys, "recipe", "validate", str(recipe_dir / "r.yaml"))
    assert code == 2 and f"{recipe_dir / 'r.yaml'}:5: model.tokenizer: " in output
    assert "tokenizer and model type do not match" in output


def test_a_bad_override_names_the_command_line(recipe_dir, monkeypatch, capsys):
    (recipe_dir / "r.yaml").write_text(BASE)
    for override, words in (
        ("train.epochs=0", "command line: train.epochs: must be an integer from 1 to 1000"),
        ("train.lr=!!python/name:os.system", "command line:"),
        ("data.0.weight=.nan", "command line: data[0].weight:"),
        ("data.9.weight=1", "no such place"),
    ):
        code, output = run_ocx(
            monkeypatch, capsys, "recipe", "validate", str(recipe_dir / "r.yaml"), override
        )
        assert code == 2 and words in output, (override, output)
        assert "Traceback" not in output


def test_every_problem_is_reported_at_once_one_line_each_without_a_traceback(recipe_dir, tmp_path):
    text = BASE.replace("  epochs: 2", "  epochs: 0").replace("  lr: 0.001", "  lr: .nan")
    text = text.replace("    count: 100", "    count: 0").replace(
        "  too_long: refuse", "  too_long: maybe"
    )
    recipe = recipe_dir / "r.yaml"
    recipe.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "ocx.cli.__main__", "recipe", "run", str(recipe)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"COLUMNS": "60", **_env()},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 4, lines  # one line per problem, never wrapped
    assert all(line.startswith(f"error: {recipe}:") for line in lines)
    assert not (tmp_path / "out").exists()


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "COLUMNS"}
