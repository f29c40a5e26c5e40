"""`--resume` continues only the same run (world size, data, settings) unless --force-resume."""

from __future__ import annotations

import json

import pytest

from ocx.adapters.train.config import TrainConfig
from ocx.adapters.train.ds_config import build_ds_config
from ocx.adapters.train.resume import check_resume, fingerprint
from ocx.harness.errors import InputError
from tests.cli import ocx_process
from tests.train.conftest import clean_env

MANIFEST = {
    "model_type": "openchat_3.5",
    "tokenizer_sha256": "ab",
    "counts": {"tokens": 10},
    "ocx_version": "1",
}


def saved_run(tmp_path, **changes) -> dict:
    cfg = TrainConfig(data=tmp_path / "d", model="m", out=tmp_path / "o", lr=1e-3)
    current = fingerprint(
        cfg.to_json(), 1, MANIFEST, build_ds_config(2, None, grad_clip=1.0, bf16=False)
    )
    (tmp_path / "train.json").write_text(json.dumps({"fingerprint": current}))
    return fingerprint(
        {**cfg.to_json(), **changes.get("settings", {})},
        changes.get("world", 1),
        changes.get("manifest", MANIFEST),
        build_ds_config(2, None, grad_clip=1.0, bf16=False),
    )


def test_the_same_run_resumes_even_from_another_folder_and_with_other_display_settings(tmp_path):
    current = saved_run(
        tmp_path,
        settings={"data": "/moved/data", "progress": False, "save_every_steps": 5},
        manifest={**MANIFEST, "ocx_version": "2"},
    )
    assert check_resume(tmp_path, current, force=False) == []


@pytest.mark.parametrize(
    "changes,expected",
    [
        ({"world": 2}, "world size: the run has 1 process(es), now 2"),
        ({"manifest": {**MANIFEST, "counts": {"tokens": 11}}}, "dataset"),
        ({"settings": {"lr": 3e-3}}, "--lr: the run has 0.001, now 0.003"),
        ({"settings": {"epochs": 6}}, "--epochs: the run has 5, now 6"),
        ({"settings": {"batch_max_len": 4096}}, "--batch-max-len"),
    ],
)
def test_a_resume_that_changes_the_world_size_data_or_a_setting_is_refused_naming_it(
    tmp_path, changes, expected
):
    current = saved_run(tmp_path, **changes)
    with pytest.raises(InputError) as info:
        check_resume(tmp_path, current, force=False)
    assert any(expected in p.message for p in info.value.problems), info.value
    assert "--force-resume" in str(info.value)
    assert any(expected in line for line in check_resume(tmp_path, current, force=True))


def test_ocx_train_resume_with_another_lr_exits_2_before_loading_the_model(
    tiny_run_inputs, tmp_path
):
    model, data = tiny_run_inputs
    out = tmp_path / "run"
    out.mkdir()
    manifest = json.loads((data / "manifest.json").read_text())
    cfg = TrainConfig(data=data, model=str(model), out=out, lr=1e-3)
    saved = fingerprint(
        cfg.to_json(), 1, manifest, build_ds_config(2, None, grad_clip=1.0, bf16=False)
    )
    (out / "train.json").write_text(json.dumps({"fingerprint": saved}))
    (out / "state").mkdir()
    proc = ocx_process(
        "train",
        *("--data", data, "--model", model, "--out", out, "--lr", "2e-3", "--resume"),
        env=clean_env(),
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot resume: --lr: the run has 0.001, now 0.002" in proc.stderr
    assert "Traceback" not in proc.stderr
