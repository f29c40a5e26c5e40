"""Recipes validate before any heavy import and report every problem with file, line and field."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ocx.harness.errors import InputError
from ocx.recipes import builtin_recipes, load_recipe

BROKEN = """\
name: broken
model:
  base: tiny
  model_type: openchat_35
  tokenizer: mistral-common:v1
data:
  - path: missing.jsonl
    condition: GPT4
    weight: high
train:
  epochs: "three"
  batch_maxlen: 100
eval:
  suites: [mmlu, gsm8kk]
output: runs/x
"""


def test_the_builtin_recipes_are_the_five_the_docs_promise():
    assert set(builtin_recipes()) == {
        "tiny-crlft",
        "tiny-crlft-lora",
        "crlft-llama3",
        "crlft-mistral",
        "sft-llama3",
    }


def test_tiny_crlft_validates_with_its_mixed_quality_sources():
    recipe = load_recipe("tiny-crlft")
    assert [(d.condition, d.weight, d.quality) for d in recipe.data] == [
        ("GPT4", 1.0, "correct"),
        ("GPT3", 0.1, "wrong"),
    ]
    assert recipe.eval.conditions == ["GPT4", "GPT3"] and recipe.model_type == "openchat_3.5"


@pytest.mark.parametrize(
    "name, batch_max_len",
    [("crlft-llama3", 40960), ("crlft-mistral", 77824), ("sft-llama3", 40960)],
)
def test_gpu_recipes_validate_once_their_data_exists(name, batch_max_len, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(
        json.dumps(
            {"items": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
        )
        + "\n"
    )
    overrides = [f"data.0.path={data}"] + (
        [f"data.1.path={data}"] if name.startswith("crlft") else []
    )
    recipe = load_recipe(name, overrides)
    assert recipe.train["batch_max_len"] == batch_max_len


def test_a_broken_recipe_reports_every_problem_with_its_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(InputError) as err:
        load_recipe(str(path))
    found = {(p.line, p.field) for p in err.value.problems}
    assert {
        (4, "model.model_type"),
        (9, "data[0].weight"),
        (7, "data[0].path"),
        (11, "train.epochs"),
        (12, "train.batch_maxlen"),
        (14, "eval.suites[1]"),
    } <= found
    messages = " | ".join(p.message for p in err.value.problems)
    assert "did you mean 'batch_max_len'" in messages and "did you mean 'gsm8k'" in messages
    assert "data file not found" in messages


def test_validate_command_exits_2_and_imports_no_torch(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    heavy = "('torch', 'transformers', 'deepspeed')"
    code = (
        "import sys\nfrom ocx.cli import main\n"
        f"sys.argv=['ocx','recipe','validate',{str(path)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n"
        f"    print('EXIT', e.code, [m for m in {heavy} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "EXIT 2 []" in out.stdout, out.stdout + out.stderr
    assert f"{path}:14: eval.suites[1]: unknown suite 'gsm8kk'" in out.stderr


def test_overrides_change_settings_and_bad_ones_are_reported():
    assert load_recipe("tiny-crlft", ["train.epochs=2", "eval.limit=10"]).train["epochs"] == 2
    with pytest.raises(InputError, match="no such place"):
        load_recipe("tiny-crlft", ["data.7.weight=1"])


def test_unknown_recipe_name_suggests_the_closest(tmp_path):
    with pytest.raises(InputError, match="did you mean 'tiny-crlft'"):
        load_recipe("tiny-crlf")


def test_recipe_cp_copies_a_builtin_for_editing(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "ocx.cli.__main__", "recipe", "cp", "tiny-crlft", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "tiny-crlft.yaml").read_text() == builtin_recipes()["tiny-crlft"].read_text()
