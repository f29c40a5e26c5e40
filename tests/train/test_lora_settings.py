"""LoRA/QLoRA settings are checked before any work: `ocx train` flags, recipes' `train.lora`,
resume."""

from __future__ import annotations

import pytest

from ocx.harness.errors import InputError
from ocx.recipes import load_recipe
from tests.cli import invoke_train


@pytest.fixture
def token_data(tmp_path):
    from tests.train.conftest import write_token_dataset

    return write_token_dataset(tmp_path / "data", [([5, 6, 7, 8], [0.0, 1.0, 1.0, 1.0])])


def _train(monkeypatch, capsys, tmp_path, data, *flags):
    return invoke_train(monkeypatch, capsys, data, tmp_path / "out", *flags)


@pytest.mark.skipif("__import__('torch').cuda.is_available()", reason="checks the CPU refusal")
def test_quantize_4bit_on_a_cpu_is_refused_with_exit_2_before_any_work(
    monkeypatch, capsys, tmp_path, token_data
):
    code, _, err = _train(
        monkeypatch, capsys, tmp_path, token_data, "--lora-rank", "8", "--quantize", "4bit"
    )
    assert code == 2
    assert "--quantize: 4-bit quantization (bitsandbytes NF4) needs a CUDA GPU" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_quantize_without_a_lora_rank_is_refused(monkeypatch, capsys, tmp_path, token_data):
    code, _, err = _train(monkeypatch, capsys, tmp_path, token_data, "--quantize", "4bit")
    assert code == 2 and "--quantize: a 4-bit base cannot be trained itself" in err


def test_lora_options_without_a_rank_are_each_refused(monkeypatch, capsys, tmp_path, token_data):
    code, _, err = _train(
        monkeypatch,
        capsys,
        tmp_path,
        token_data,
        "--lora-alpha",
        "16",
        "--lora-dropout",
        "0.1",
        "--lora-target-modules",
        "q_proj",
        "--merge-lora",
    )
    assert code == 2
    for flag in ("--lora-alpha", "--lora-dropout", "--lora-target-modules", "--merge-lora"):
        assert f"{flag}: applies to LoRA training only; give --lora-rank too" in err


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--lora-rank", "0"), "--lora-rank: must be an integer from 1 to 4096, got 0"),
        (("--lora-rank", "-4"), "--lora-rank: must be an integer from 1 to 4096, got -4"),
        (
            ("--lora-rank", "8", "--lora-alpha", "nan"),
            "--lora-alpha: must be a finite number > 0, got nan",
        ),
        (
            ("--lora-rank", "8", "--lora-dropout", "1"),
            "--lora-dropout: must be a finite number >= 0 and < 1, got 1.0",
        ),
        (
            ("--lora-rank", "8", "--lora-target-modules", "q_proj,,v_proj"),
            "--lora-target-modules: must be module names",
        ),
        (
            ("--lora-rank", "8", "--lora-target-modules", "lm_head"),
            "--lora-target-modules: the LM head cannot carry",
        ),
        (("--lora-rank", "8", "--zero-stage", "3"), "--zero-stage: LoRA trains with ZeRO-2"),
    ],
)
def test_bad_lora_values_are_refused_with_exit_2(
    monkeypatch, capsys, tmp_path, token_data, flags, message
):
    code, _, err = _train(monkeypatch, capsys, tmp_path, token_data, *flags)
    assert code == 2 and message in err, err


def test_target_modules_are_split_on_commas():
    from ocx.adapters.train import TrainConfig
    from ocx.cli.setting_flags import settings_from

    given = settings_from(TrainConfig, {"lora_target_modules": "q_proj, v_proj,o_proj"})
    assert given["lora_target_modules"] == ["q_proj", "v_proj", "o_proj"]
    assert "lora_target_modules" not in settings_from(TrainConfig, {"lora_target_modules": None})


def test_the_lora_recipe_maps_train_lora_onto_the_trainer_settings():
    recipe = load_recipe("tiny-crlft-lora")
    assert {k: recipe.train[k] for k in ("lora_rank", "lora_alpha", "merge_lora")} == {
        "lora_rank": 32,
        "lora_alpha": 64,
        "merge_lora": True,
    }
    assert "lora" not in recipe.train
    from ocx.adapters.train import TrainConfig

    TrainConfig(data=".", model="m", out=".", **recipe.train)  # the runner builds exactly this


@pytest.mark.parametrize(
    "override, field, message",
    [
        ("train.lora={rank: 0}", "train.lora.rank", "must be an integer from 1 to 4096, got 0"),
        ("train.lora={rank: 8, alpha: -1}", "train.lora.alpha", "must be a finite number > 0"),
        (
            "train.lora={rank: 8, dropout: 1.0}",
            "train.lora.dropout",
            "must be a finite number >= 0 and < 1",
        ),
        (
            "train.lora={rank: yes}",
            "train.lora.rank",
            "must be an integer from 1 to 4096, got boolean True",
        ),
        ("train.lora={rnk: 8}", "train.lora.rnk", "did you mean 'rank'?"),
        ("train.lora={alpha: 16}", "train.lora.rank", "is required"),
        ("train.lora=8", "train.lora", "must be a mapping"),
        ("train.lora={rank: 8, target_modules: []}", "train.lora.target_modules", "is empty"),
        (
            "train.lora={rank: 8, target_modules: [q_proj, 3]}",
            "train.lora.target_modules[1]",
            "must be a module name",
        ),
        ("train.lora={rank: 8, merge: maybe}", "train.lora.merge", "must be true or false"),
        ("train.lora_rank=8", "train.lora_rank", "unknown key"),
        ("train.quantize=8bit", "train.quantize", "must be one of '4bit'"),
    ],
)
def test_a_bad_train_lora_section_names_the_field(override, field, message):
    with pytest.raises(InputError) as err:
        load_recipe("tiny-crlft", [override])
    found = {p.field: p.message for p in err.value.problems}
    assert field in found and message in found[field], found


def test_a_bad_train_lora_in_a_file_names_its_line(tmp_path):
    text = load_recipe.__globals__["locate"]("tiny-crlft-lora")[0].read_text()
    path = tmp_path / "r.yaml"
    path.write_text(text.replace("    rank: 32", "    rank: 32.5"))
    line = next(i for i, row in enumerate(path.read_text().splitlines(), 1) if "rank: 32.5" in row)
    with pytest.raises(InputError) as err:
        load_recipe(str(path))
    assert [(p.file, p.line, p.field) for p in err.value.problems] == [
        (str(path), line, "train.lora.rank")
    ]


def test_resume_refuses_another_rank_but_not_another_merge_setting(tmp_path):
    from ocx.adapters.train import TrainConfig
    from ocx.adapters.train.resume import differences, fingerprint

    def print_of(**lora):
        return fingerprint(
            TrainConfig(data=tmp_path, model="m", out=tmp_path, **lora).to_json(), 1, {}, {}
        )

    assert differences(print_of(lora_rank=8), print_of(lora_rank=16)) == [
        "--lora-rank: the run has 8, now 16"
    ]
    assert differences(print_of(lora_rank=8), print_of(lora_rank=8, merge_lora=True)) == []
    assert differences(print_of(), print_of(lora_rank=8)) == [
        "--lora-rank: the run has None, now 8"
    ]
