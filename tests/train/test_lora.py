"""LoRA through peft on the real trainer (DeepSpeed ZeRO-2 on CPU, packed C-RLFT rows).

One short LoRA run (with --merge-lora) is shared by the tests below: the loss falls while the
base stays frozen, each epoch holds the adapter and a merged model whose logits equal
base + adapter, and a resumed run continues the adapter and its optimizer state.
"""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("deepspeed")
pytest.importorskip("peft")
pytestmark = [pytest.mark.deepspeed]

from ocx.adapters.train import TrainConfig, run_training  # noqa: E402
from ocx.adapters.train.progress import read_metrics  # noqa: E402

COMMON = dict(
    batch_max_len=512,
    lr=2e-2,
    seed=7,
    gradient_checkpointing=False,
    progress=False,
    lora_rank=8,
    merge_lora=True,
)
EPOCHS = 2


@pytest.fixture(scope="module")
def lora_inputs(tmp_path_factory, mistral_tokenizer_file):
    """(tiny random Llama, dataset of learnable rows): each row counts up through 20 token ids
    from a random start; its first 16 tokens are the prompt (weight 0).

    initializer_range 0.2: with the usual 0.02 a random model's frozen LM head spans logits of
    about +-1, so no adapter below it can make a confident prediction (a pretrained head can).
    """
    import random

    from ocx.adapters.hf.tiny import build_tiny_checkpoint
    from tests.train.conftest import write_token_dataset

    root = tmp_path_factory.mktemp("lora_inputs")
    model = build_tiny_checkpoint(
        root / "model", tokenizer=mistral_tokenizer_file, initializer_range=0.2
    )
    rng = random.Random(0)
    rows = []
    for _ in range(32):
        start, n = rng.randrange(20), rng.randrange(40, 120)
        rows.append(([100 + (start + i) % 20 for i in range(n)], [0.0] * 16 + [1.0] * (n - 16)))
    return model, write_token_dataset(root / "data", rows)


@pytest.fixture(scope="module")
def lora_run(lora_inputs, tmp_path_factory):
    model, data = lora_inputs
    out = tmp_path_factory.mktemp("lora") / "run"
    result = run_training(
        TrainConfig(data=data, model=str(model), out=out, epochs=EPOCHS, **COMMON)
    )
    return result, read_metrics(out)


def _mean(values):
    return sum(values) / len(values)


def test_lora_training_lowers_the_loss_over_a_few_epochs(lora_run):
    result, metrics = lora_run
    first = [m["loss"] for m in metrics if m["epoch"] == 0]
    last = [m["loss"] for m in metrics if m["epoch"] == EPOCHS - 1]
    assert _mean(last) < _mean(first) - 2.0, (first, last)
    assert json.loads((result.out / "train.json").read_text())["config"]["lora_rank"] == 8


def test_each_epoch_holds_the_adapter_and_a_merged_model(lora_run, lora_inputs):
    from ocx.adapters.hf.checkpoint import read_ocx_metadata

    result, _ = lora_run
    assert [p.name for p in result.checkpoints] == [f"epoch_{i}" for i in range(EPOCHS)]
    last = result.checkpoints[-1]
    config = json.loads((last / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16 and config["peft_type"] == "LORA"
    assert config["base_model_name_or_path"] == str(lora_inputs[0].resolve())
    assert (last / "adapter" / "adapter_model.safetensors").is_file()
    assert (last / "model.safetensors").is_file() and (last / "chat_template.jinja").is_file()
    assert not (last / "adapter_config.json").exists(), (
        "a top-level adapter config makes transformers load the base"
    )
    assert read_ocx_metadata(last)["training"]["config"]["merge_lora"] is True


def _logits(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=ids).logits


def test_the_merged_model_gives_the_logits_of_base_plus_adapter(lora_run, lora_inputs):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result, _ = lora_run
    last = result.checkpoints[-1]
    ids = torch.randint(0, 32002, (2, 48), generator=torch.Generator().manual_seed(0))
    base = AutoModelForCausalLM.from_pretrained(lora_inputs[0])
    base_logits = _logits(base, ids)
    with_adapter = _logits(PeftModel.from_pretrained(base, last / "adapter"), ids)
    merged = _logits(AutoModelForCausalLM.from_pretrained(last), ids)
    assert (with_adapter - base_logits).abs().max() > 1e-2, (
        "the adapter changed nothing: was it trained and saved?"
    )
    torch.testing.assert_close(merged, with_adapter, rtol=1e-4, atol=1e-4)


def test_the_resume_state_holds_only_the_trained_adapter(lora_run):
    result, _ = lora_run
    state = result.out / "state"
    tag = (state / "latest").read_text().strip()
    size = sum(p.stat().st_size for p in (state / tag).rglob("*") if p.is_file())
    model = sum(p.stat().st_size for p in result.checkpoints[-1].glob("model.safetensors"))
    assert size < model / 3, (
        f"state/ holds {size:,} bytes for a {model:,}-byte model: the frozen base was saved"
    )


class _Stop(Exception):
    pass


def _stop_after_epoch_0(epoch, checkpoint):
    raise _Stop  # as a crash right after epoch 0's state was saved


def test_a_resumed_lora_run_continues_the_adapter_and_its_optimizer_state(
    lora_run, lora_inputs, tmp_path
):
    model, data = lora_inputs
    _, reference = lora_run
    out = tmp_path / "run"
    with pytest.raises(_Stop):
        run_training(
            TrainConfig(data=data, model=str(model), out=out, epochs=EPOCHS, **COMMON),
            _stop_after_epoch_0,
        )
    result = run_training(
        TrainConfig(data=data, model=str(model), out=out, epochs=EPOCHS, resume=True, **COMMON)
    )
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == [m["step"] for m in reference]
    # The same trajectory after the resume: the adapter and the AdamW moments were restored
    # (a fresh adapter would restart near the first loss; fresh moments change every next step).
    for mine, ref in zip(metrics, reference):
        assert math.isclose(mine["loss"], ref["loss"], rel_tol=1e-4), (mine, ref)
    assert result.steps == reference[-1]["step"]
