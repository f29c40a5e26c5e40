"""A fused training forward for peft's plain LoRA linear layers: fewer passes over activations.

peft computes `base(x) + lora_B(lora_A(dropout(x))) * scaling`: besides the two small matmuls it
writes and re-reads three activation-sized tensors in the forward (B's output, its scaled copy,
the sum) and two in the backward (the scaled gradient, the summed input gradient). On a CPU,
where those passes run at memory speed beside matmuls that barely fill the cores, they made a
rank-16 adapter cost ~20% on top of the frozen layer (hidden 512; tests/perf/bench_lora.py).

Here one autograd function computes the same value and gradients with none of those passes:
in fp32 it multiplies `x` by the merged weight `W + scaling * B @ A` (forming it costs
out * in * rank, far less than tokens * out * in), so the forward is the frozen layer's one
matmul plus `x @ A.T`, and the backward adds three small matmuls to the frozen layer's one.
In bf16/fp16 a merged weight would round the adapter's small update away, so there it adds
`scaling * (x @ A.T) @ B.T` into the base output in place (addmm), as Unsloth's LoRA kernels do.
The frozen weight never gets a gradient either way.

peft still owns the adapters (parameters, names, saving, merging); only the forward of a plain
LoRA layer during training changes. Anything else (dropout, DoRA and other variants, a LoRA
bias, a quantized base, several adapters, a merged layer, mixed-batch adapter names) keeps
peft's own forward.
"""

from __future__ import annotations

import torch


class _FusedLoraLinear(torch.autograd.Function):
    """y = x @ W.T + bias + s * (x @ A.T) @ B.T, gradients for x, A and B only."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        xa = x2 @ lora_a.t()
        if weight.dtype == torch.float32:
            out = x2 @ _merged(weight, lora_a, lora_b, scaling).t()
        else:
            out = (x2 @ weight.t()).addmm_(xa, lora_b.t(), alpha=scaling)
        if bias is not None:
            out += bias
        ctx.save_for_backward(x2, xa, weight, lora_a, lora_b)
        ctx.scaling = scaling
        return out.reshape(*shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad_out):
        x2, xa, weight, lora_a, lora_b = ctx.saved_tensors
        s = ctx.scaling
        g = grad_out.reshape(-1, grad_out.shape[-1])
        gb = g @ lora_b  # [tokens, rank]: the gradient reaching A's output, before scaling
        grad_x = None
        if ctx.needs_input_grad[0]:
            if weight.dtype == torch.float32:
                # Recomputed rather than saved: one weight-sized buffer per layer less to hold.
                grad_x = g @ _merged(weight, lora_a, lora_b, s)
            else:
                grad_x = (g @ weight).addmm_(gb, lora_a, alpha=s)
            grad_x = grad_x.reshape(*grad_out.shape[:-1], grad_x.shape[-1])
        grad_a = (gb.t() @ x2).mul_(s) if ctx.needs_input_grad[3] else None
        grad_b = (g.t() @ xa).mul_(s) if ctx.needs_input_grad[4] else None
        return grad_x, None, None, grad_a, grad_b, None


def _merged(weight, lora_a, lora_b, scaling: float):
    return torch.addmm(weight, lora_b, lora_a, alpha=scaling)


def _fusable(layer, x, kwargs: dict) -> str | None:
    """The adapter to fuse for this call, or None when peft's own forward must run."""
    if kwargs or layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return None
    name = layer.active_adapters[0]
    if (
        name not in layer.lora_A
        or name in getattr(layer, "lora_variant", {})
        or layer.lora_bias.get(name)
    ):
        return None
    if not isinstance(layer.lora_dropout[name], torch.nn.Identity):
        return None
    base = layer.get_base_layer()
    if type(base) is not torch.nn.Linear or getattr(layer, "fan_in_fan_out", False):
        return None
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return None
    if hasattr(base.weight, "ds_id"):
        # A ZeRO-3 partitioned weight is gathered only around its own module's forward.
        return None
    a, b = layer.lora_A[name].weight, layer.lora_B[name].weight
    if not (x.dtype == base.weight.dtype == a.dtype == b.dtype):
        return None
    return name


def _fused_forward(layer, peft_forward):
    def forward(x, *args, **kwargs):
        name = None if args else _fusable(layer, x, kwargs)
        if name is None:
            return peft_forward(x, *args, **kwargs)
        base = layer.get_base_layer()
        return _FusedLoraLinear.apply(
            x,
            base.weight,
            base.bias,
            layer.lora_A[name].weight,
            layer.lora_B[name].weight,
            float(layer.scaling[name]),
        )

    return forward


def install(model) -> int:
    """Give every plain peft LoRA Linear layer of `model` the fused forward; returns how many.

    Decided per call: a layer whose adapter has dropout, a variant (DoRA, ...), a bias, or a
    quantized or trainable base, or that is merged or disabled, runs peft's forward unchanged.
    """
    from peft.tuners.lora.layer import Linear

    count = 0
    for module in model.modules():
        if type(module) is Linear and not getattr(module, "_ocx_fused", False):
            module.forward = _fused_forward(module, module.forward)
            module._ocx_fused = True
            count += 1
    return count
