"""The fused LoRA forward (adapters/train/lora_fused.py) gives peft's values and gradients.

Each test builds a small random Llama wrapped by ocx's `lora.wrap` (which installs the fused
forward) with non-zero B matrices (peft starts B at zero, which would hide a wrong adapter
path), runs it, then removes the per-layer forward so peft's own `Linear.forward` runs on the
same weights and inputs, and compares.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from ocx.adapters.train.lora import LoraSpec, wrap  # noqa: E402


def _model(dtype=torch.float32, dropout: float = 0.0, targets="all-linear"):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    lm = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=300,
            max_position_embeddings=64,
            attention_bias=True,
        )
    ).to(dtype)
    model = wrap(
        lm,
        LoraSpec(rank=4, alpha=12.0, dropout=dropout, target_modules=targets),
        base="base",
        gradient_checkpointing=False,
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model


def _lora_layers(model):
    from peft.tuners.lora.layer import Linear

    return [m for m in model.modules() if type(m) is Linear]


def _use_peft_forward(model) -> None:
    for layer in _lora_layers(model):
        del layer.forward  # the class's (peft's) forward again


def _run(model, ids):
    """Logits, and the gradients of every trained parameter and of the input embeddings."""
    model.zero_grad(set_to_none=True)
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_()
    logits = model(inputs_embeds=embeds).logits
    (logits.float() ** 2).mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return logits.detach().float(), grads, embeds.grad.float()


def _max_rel(a, b) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def _compare(model, tol: float) -> None:
    from ocx.adapters.train import lora_fused

    ids = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(1))
    probe = torch.zeros(1, model.config.hidden_size, dtype=model.dtype)
    assert all(
        lora_fused._fusable(layer, probe, {}) == "default" for layer in _lora_layers(model)[:4]
    )
    fused = _run(model, ids)
    _use_peft_forward(model)
    peft = _run(model, ids)
    assert _max_rel(fused[0], peft[0]) < tol, "logits differ from peft's forward"
    assert fused[1].keys() == peft[1].keys() and all("lora_" in n for n in fused[1])
    for name in fused[1]:
        assert _max_rel(fused[1][name], peft[1][name]) < tol, (
            f"gradient of {name} differs from peft's forward"
        )
    assert _max_rel(fused[2], peft[2]) < tol, "the input gradient differs from peft's forward"


def test_every_plain_lora_layer_gets_the_fused_forward():
    model = _model()
    layers = _lora_layers(model)
    assert len(layers) == 2 * 7 and all("forward" in vars(layer) for layer in layers)


def test_fp32_fused_lora_gives_peft_logits_and_gradients():
    _compare(_model(torch.float32), tol=1e-5)


def test_bf16_fused_lora_gives_peft_logits_and_gradients_within_bf16_rounding():
    _compare(_model(torch.bfloat16), tol=3e-2)


def test_the_frozen_base_gets_no_gradient_through_the_fused_forward():
    model = _model()
    ids = torch.randint(0, 300, (1, 16))
    model(input_ids=ids).logits.sum().backward()
    base = [p for n, p in model.named_parameters() if "lora_" not in n]
    assert base and all(p.grad is None for p in base)


def test_a_layer_with_dropout_keeps_peft_forward():
    from ocx.adapters.train import lora_fused

    model = _model(dropout=0.5)
    layer = _lora_layers(model)[0]
    assert lora_fused._fusable(layer, torch.zeros(1, 64), {}) is None
    model.train()
    ids = torch.randint(0, 300, (1, 16))
    torch.manual_seed(3)
    fused = model(input_ids=ids).logits.detach()
    _use_peft_forward(model)
    torch.manual_seed(3)
    assert torch.equal(fused, model(input_ids=ids).logits.detach())


def test_a_disabled_adapter_runs_the_base_alone():
    model = _model()
    ids = torch.randint(0, 300, (1, 16))
    with model.disable_adapter():
        disabled = model(input_ids=ids).logits.detach()
    base = model.get_base_model()
    _use_peft_forward(model)
    with model.disable_adapter():
        assert torch.equal(disabled, base(input_ids=ids).logits.detach())


def test_fused_lora_under_gradient_checkpointing_gives_peft_gradients():
    model = _model()
    model.get_base_model().gradient_checkpointing_enable(
        gradient_checkpointing_kwargs={"use_reentrant": False}
    )
    model.train()
    _compare(model, tol=1e-5)
