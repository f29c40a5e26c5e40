"""Relative paths in a recipe resolve against the recipe's folder, in `validate` and in `run`,
whatever the working directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ocx.recipes import load_recipe

RECIPE = """\
name: paths
model:
  base: model
  model_type: openchat_3.5
  tokenizer: tok/tokenizer.model
data:
  - path: data/a.jsonl
    condition: GPT4
    weight: 1.0
train:
  epochs: 1
  deepspeed_config: ds.json
eval:
  suites: [arithmetic]
output: out
"""


@pytest.fixture
def recipe_file(tmp_path, mistral_tokenizer_file) -> Path:
    folder = tmp_path / "project" / "recipes"
    for sub in ("tok", "data", "model"):
        (folder / sub).mkdir(parents=True)
    shutil.copyfile(mistral_tokenizer_file, folder / "tok" / "tokenizer.model")
    (folder / "model" / "config.json").write_text("{}")
    (folder / "ds.json").write_text("{}")
    row = {
        "items": [
            {"role": "user", "content": "What is 1 + 1?"},
            {"role": "assistant", "content": "2"},
        ]
    }
    (folder / "data" / "a.jsonl").write_text(json.dumps(row) + "\n")
    (folder / "r.yaml").write_text(RECIPE)
    return folder / "r.yaml"


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_validate_from_another_directory_finds_the_recipes_files(recipe_file, elsewhere):
    result = subprocess.run(
        [sys.executable, "-m", "ocx.cli.__main__", "recipe", "validate", str(recipe_file)],
        capture_output=True,
        text=True,
        cwd=elsewhere,
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_the_recipe_stores_every_input_path_resolved_against_its_folder(recipe_file, elsewhere):
    recipe = load_recipe(str(recipe_file))
    folder = recipe_file.parent.resolve()
    assert Path(recipe.tokenizer) == folder / "tok" / "tokenizer.model"
    assert recipe.data[0].path == folder / "data" / "a.jsonl"
    assert Path(recipe.base_model) == folder / "model"
    assert Path(recipe.train["deepspeed_config"]) == folder / "ds.json"
    assert recipe.output == Path("out"), (
        "output stays relative to the working directory, like any output flag"
    )


def test_run_reads_the_same_tokenizer_and_data_from_another_directory(recipe_file, elsewhere):
    from rich.console import Console

    from ocx.harness.data import load_tokenized
    from ocx.recipes.runner import base_model, prepare_data

    recipe = load_recipe(str(recipe_file))
    model, tokenizer = base_model(recipe)
    assert Path(model) == recipe_file.parent.resolve() / "model"
    assert tokenizer == recipe_file.parent.resolve() / "tok" / "tokenizer.model"
    data = prepare_data(recipe, tokenizer, Console(quiet=True))
    assert data.resolve().is_relative_to(elsewhere.resolve())
    assert len(load_tokenized(data)) == 1


def test_a_hub_id_base_is_kept_as_a_hub_id_and_a_missing_folder_is_reported(recipe_file, elsewhere):
    recipe_file.write_text(RECIPE.replace("base: model", "base: meta-llama/Meta-Llama-3-8B"))
    assert load_recipe(str(recipe_file)).base_model == "meta-llama/Meta-Llama-3-8B"
    recipe_file.write_text(RECIPE.replace("base: model", "base: ./models/base"))
    with pytest.raises(Exception, match=r"r.yaml:3: model.base: model folder not found"):
        load_recipe(str(recipe_file))
