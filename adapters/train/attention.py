"""Variable-length causal attention for packed rows with PyTorch SDPA (CPU, or GPU without
flash-attn), registered through transformers' AttentionInterface, so the model class stays stock.

transformers' own "sdpa" path handles a packed row by building a block-diagonal
[T, T] mask from the restarting position_ids: correct, but it pays attention over the whole
row, T^2, instead of sum(n_i^2) over its sequences, which is most of a packed row's cost on a
CPU. Here SDPA runs causally on each sequence's slice (boundaries from `cu_seq_lens_q`, the
same varlen kwargs flash-attention takes), and the mask function is flash-attention's (no
dense mask is built).
"""

from __future__ import annotations

import torch

VARLEN_SDPA = "ocx_varlen_sdpa"


def varlen_sdpa_attention(
    module,
    query,
    key,
    value,
    attention_mask,
    dropout: float = 0.0,
    scaling=None,
    cu_seq_lens_q=None,
    position_ids=None,
    **kwargs,
):
    """query [B, Hq, T, D], key/value [B, Hkv, T, D] -> ([B, T, Hq, D], None)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is not None or query.shape[0] != 1:
        # A padded batch: its 4D mask came from sdpa_mask (see _mask), so stock SDPA applies.
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    bounds = _boundaries(cu_seq_lens_q, position_ids, query.shape[2])
    sizes = [e - s for s, e in zip(bounds[:-1], bounds[1:])]
    gqa = query.shape[1] != key.shape[1]
    # split (one backward op) rather than slicing per sequence (one full-size gradient each)
    outputs = [
        torch.nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout, scale=scaling, is_causal=True, enable_gqa=gqa
        )
        for q, k, v in zip(*(t.split(sizes, dim=2) for t in (query, key, value)))
    ]
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


def _boundaries(cu_seq_lens, position_ids, length: int) -> list[int]:
    """Sequence starts and the end: from cu_seq_lens, else where position_ids restart at 0."""
    if cu_seq_lens is not None:
        return cu_seq_lens.tolist()
    if position_ids is not None:
        starts = torch.nonzero(position_ids.reshape(-1)[:length] == 0).reshape(-1).tolist()
        if starts and starts[0] == 0:
            return [*starts, length]
    return [0, length]


def _mask(*args, attention_mask=None, **kwargs):
    """No dense mask for a packed row (sequence boundaries travel as varlen kwargs); a padded
    batch gets the stock SDPA mask."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register() -> str:
    """Make `attn_implementation="ocx_varlen_sdpa"` available (idempotent); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(VARLEN_SDPA, varlen_sdpa_attention)
    AttentionMaskInterface.register(VARLEN_SDPA, _mask)
    return VARLEN_SDPA
