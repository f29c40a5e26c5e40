"""`ocx recipe run tiny-crlft-lora`: a LoRA adapter on a frozen base shows the same C-RLFT effect
as full fine-tuning (tiny-crlft), and its epoch folders are merged models with the adapter."""

from __future__ import annotations

import json

import pytest

from tests.cli import child_env, ocx_process

pytest.importorskip("torch")
pytest.importorskip("deepspeed")
pytest.importorskip("peft")
pytest.importorskip("mistral_common")

EPOCHS = 8  # as the recipe ships


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-crlft-lora")
    result = ocx_process(
        "recipe", "run", "tiny-crlft-lora", "--output", out, env=child_env(), timeout=1200
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.mark.slow
def test_lora_accuracy_rises_and_the_expert_condition_ends_well_above_the_weak_one(lora_run):
    epochs = json.loads((lora_run / "report.json").read_text())["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(EPOCHS))
    gpt4 = [e["scores"]["arithmetic [GPT4]"] for e in epochs]
    gpt3 = [e["scores"]["arithmetic [GPT3]"] for e in epochs]
    assert gpt4[-1] >= gpt4[0] + 0.3, f"accuracy under GPT4 did not rise: {gpt4}"
    assert gpt4[-1] > gpt3[-1] + 0.2, f"GPT4 {gpt4} is not clearly above GPT3 {gpt3}"


@pytest.mark.slow
def test_each_epoch_is_a_merged_model_with_its_adapter_beside_it(lora_run):
    last = lora_run / "train" / f"epoch_{EPOCHS - 1}"
    adapter = json.loads((last / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 32 and adapter["lora_alpha"] == 64
    assert not (last / "adapter_config.json").exists()  # the folder itself loads as a plain model
    meta = json.loads((last / "ocx.json").read_text())
    assert meta["training"]["recipe"] == "tiny-crlft-lora"
