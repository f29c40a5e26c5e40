"""`--deepspeed-config` is merged over ocx's shipped ZeRO configs, checked before a model loads."""

from __future__ import annotations

import json

import pytest

from ocx.adapters.train.ds_config import build_ds_config, shipped_config
from ocx.harness.errors import InputError
from tests.cli import ocx_process
from tests.train.conftest import clean_env


def write(tmp_path, config, name="ds.json"):
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


def test_a_user_config_is_merged_over_the_shipped_defaults_key_by_key(tmp_path):
    user = write(
        tmp_path, {"zero_optimization": {"reduce_bucket_size": 1000}, "wall_clock_breakdown": True}
    )
    merged = build_ds_config(2, user, grad_clip=0.5, bf16=False)
    shipped = shipped_config(2)
    assert merged["zero_optimization"] == {
        **shipped["zero_optimization"],
        "reduce_bucket_size": 1000,
    }
    assert (
        merged["wall_clock_breakdown"] is True and merged["zero_allow_untested_optimizer"] is True
    )
    assert merged["gradient_clipping"] == 0.5 and merged["bf16"] == {"enabled": False}


def test_a_user_config_without_zero_optimization_keeps_the_stage_of_zero_stage(tmp_path):
    user = write(tmp_path, {"steps_per_print": 10})
    assert (
        build_ds_config(3, user, grad_clip=1.0, bf16=False)["zero_optimization"]
        == shipped_config(3)["zero_optimization"]
    )
    assert build_ds_config(2, user, grad_clip=1.0, bf16=False)["zero_optimization"]["stage"] == 2


def test_the_stage_in_the_users_file_picks_that_stages_defaults(tmp_path):
    user = write(tmp_path, {"zero_optimization": {"stage": 3}})
    merged = build_ds_config(2, user, grad_clip=1.0, bf16=True)
    assert merged["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert merged["bf16"] == {"enabled": True}


def test_batch_sizes_are_forced_to_one_packed_row_per_rank_and_step(tmp_path):
    user = write(
        tmp_path,
        {
            "train_micro_batch_size_per_gpu": 4,
            "gradient_accumulation_steps": 8,
            "train_batch_size": 32,
        },
    )
    merged = build_ds_config(2, user, grad_clip=1.0, bf16=False)
    assert (merged["train_micro_batch_size_per_gpu"], merged["gradient_accumulation_steps"]) == (
        1,
        1,
    )
    assert "train_batch_size" not in merged


@pytest.mark.parametrize(
    "config,field,message",
    [
        ({"zero_optimization": {"stage": 5}}, "zero_optimization.stage", "stage 2 or 3, got 5"),
        ({"zero_optimization": {"stage": True}}, "zero_optimization.stage", "got True"),
        ({"zero_optimization": {"stage": "3"}}, "zero_optimization.stage", "got '3'"),
        ({"zero_optimization": 3}, "zero_optimization", "JSON object"),
        ({"optimizer": {"type": "Adam"}}, "optimizer", "sets the optimizer"),
        ({"scheduler": {"type": "WarmupLR"}}, "scheduler", "LR schedule"),
        ([1, 2], None, "must be a JSON object"),
    ],
)
def test_unusable_user_configs_are_refused_naming_the_file_and_field(
    tmp_path, config, field, message
):
    user = write(tmp_path, config)
    with pytest.raises(InputError) as info:
        build_ds_config(2, user, grad_clip=1.0, bf16=False)
    (problem,) = info.value.problems
    assert problem.file == str(user) and problem.field == field and message in problem.message


def test_invalid_json_is_reported_with_its_line(tmp_path):
    user = write(tmp_path, '{\n  "zero_optimization": {\n    "stage": 2,\n  }\n}')
    with pytest.raises(InputError) as info:
        build_ds_config(2, user, grad_clip=1.0, bf16=False)
    assert info.value.problems[0].line == 4 and "invalid JSON" in info.value.problems[0].message


def test_ocx_train_refuses_zero_stage_5_with_exit_2_before_loading_a_model(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text("{}")
    user = write(tmp_path, {"zero_optimization": {"stage": 5}})
    proc = ocx_process(
        "train",
        *("--data", data, "--model", "no/such-model", "--out", tmp_path / "o"),
        *("--deepspeed-config", user),
        env=clean_env(),
    )
    assert proc.returncode == 2, proc.stderr
    assert "zero_optimization.stage" in proc.stderr and "got 5" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()
