"""docs/extending.md "Add a setting (train or eval)", followed once for train: one field.

`WithLabelSmoothing` adds the one field the guide's step 1 adds to TrainConfig (on a subclass,
so the real settings stay as they are). Nothing else is written for it: its `ocx train` flag and
`--help` line, its recipe key with file:line checks, and its value on the settings object the
trainer receives all come from the field. No training runs here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from ocx.adapters.train.config import TrainConfig, in_optim
from ocx.cli.train import train_command
from ocx.harness.errors import InputError
from ocx.harness.settings import Num
from ocx.recipes.checks import Problems
from ocx.recipes.settings_section import check_train
from ocx.recipes.yaml_lines import load_with_lines
from tests.train.conftest import write_token_dataset


@dataclass
class WithLabelSmoothing(TrainConfig):
    label_smoothing: float = in_optim(
        0.0,
        help="Label smoothing of the C-RLFT cross-entropy.",
        rule=Num(float, 0, 1, high_open=True),
    )


RECIPE_TRAIN = """\
name: r
train:
  epochs: 2
  label_smoothing: {value}
"""


def train_section(text: str, tmp_path, settings: type = WithLabelSmoothing):
    """The recipe's `train:` section as parse_recipe checks it: (valid settings, problems)."""
    raw, lines = load_with_lines(text, "recipe.yaml")
    problems = Problems("recipe.yaml", lines)
    return check_train(problems, raw["train"], tmp_path, settings), [str(p) for p in problems.items]


def test_the_field_is_a_flag_in_the_optimisation_section_of_train_help():
    result = CliRunner().invoke(train_command(WithLabelSmoothing), ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    section = result.output.split("Optimisation:\n")[1].split("\n\n")[0]
    assert "--label-smoothing FLOAT RANGE" in section
    assert "Label smoothing of the C-RLFT cross-entropy.  [default: 0.0; 0<=x<1]" in section


def test_the_flags_value_reaches_the_settings_object_the_trainer_receives(tmp_path, monkeypatch):
    data = write_token_dataset(tmp_path / "data", [([5, 6, 7, 8], [0.0, 1.0, 1.0, 1.0])])
    received = []
    monkeypatch.setattr("ocx.adapters.train.run_training", lambda cfg: received.append(cfg))
    monkeypatch.setattr("ocx.cli.train._report", lambda result: None)
    args = ["--data", str(data), "--model", "m", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(
        train_command(WithLabelSmoothing), [*args, "--label-smoothing", "0.1"]
    )
    assert result.exit_code == 0, result.output
    assert [(type(cfg), cfg.label_smoothing, cfg.epochs) for cfg in received] == [
        (WithLabelSmoothing, 0.1, 5)
    ]


def test_an_out_of_range_flag_is_refused_naming_the_flag_before_training(tmp_path, monkeypatch):
    data = write_token_dataset(tmp_path / "data", [([5, 6, 7, 8], [0.0, 1.0, 1.0, 1.0])])
    monkeypatch.setattr("ocx.adapters.train.run_training", pytest.fail)
    args = ["--data", str(data), "--model", "m", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(
        train_command(WithLabelSmoothing), [*args, "--label-smoothing", "1"]
    )
    assert isinstance(result.exception, InputError)
    assert str(result.exception) == (
        "ocx train: --label-smoothing: must be a finite number >= 0 and < 1, got 1.0"
    )


def test_the_recipe_key_is_accepted_and_reaches_the_settings_object(tmp_path):
    valid, problems = train_section(RECIPE_TRAIN.format(value=0.1), tmp_path)
    assert problems == [] and valid == {"epochs": 2, "label_smoothing": 0.1}
    cfg = WithLabelSmoothing(data=tmp_path, model="m", out=tmp_path, **valid)  # as the runner does
    assert cfg.label_smoothing == 0.1


@pytest.mark.parametrize(
    "value, message",
    [
        ("1.5", "must be a finite number >= 0 and < 1, got 1.5"),
        ("-0.1", "must be a finite number >= 0 and < 1, got -0.1"),
        (".nan", "must be a finite number >= 0 and < 1, got nan"),
        ("yes", "must be a finite number >= 0 and < 1, got boolean True"),
        ("high", "must be a finite number >= 0 and < 1, got string 'high'"),
    ],
)
def test_an_out_of_range_recipe_value_names_file_line_and_key(tmp_path, value, message):
    valid, problems = train_section(RECIPE_TRAIN.format(value=value), tmp_path)
    assert problems == [f"recipe.yaml:4: train.label_smoothing: {message}"]
    assert "label_smoothing" not in valid


def test_a_misspelt_key_is_suggested_and_settings_without_the_field_refuse_it(tmp_path):
    text = RECIPE_TRAIN.format(value=0.1)
    _, problems = train_section(text.replace("label_smoothing", "label_smothing"), tmp_path)
    assert problems == [
        "recipe.yaml:4: train.label_smothing: unknown key 'label_smothing'; "
        "did you mean 'label_smoothing'?"
    ]
    _, problems = train_section(text, tmp_path, TrainConfig)
    assert [p.split(";")[0] for p in problems] == [
        "recipe.yaml:4: train.label_smoothing: unknown key 'label_smoothing'"
    ]
