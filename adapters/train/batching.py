"""Turn dataset rows into model inputs: one packed row, or a padded batch for comparison.

Rows come from `ocx.harness.data.TokenizedDataset`: input_ids, labels and weights of equal
length, already shifted (labels[t] / weights[t] belong to predicting input_ids[t + 1]).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """Model inputs plus the flat targets of one rank's micro-batch."""

    inputs: dict[str, torch.Tensor]
    """Keyword arguments for the base model (input_ids, position_ids or attention_mask)."""
    labels: torch.Tensor
    weights: torch.Tensor
    tokens: int
    """Real tokens (without padding)."""
    slots: int
    """Token positions computed, padding included (packing efficiency = tokens / slots)."""
    sequences: int

    def to(self, device) -> Batch:
        inputs = {
            k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.inputs.items()
        }
        return Batch(
            inputs,
            self.labels.to(device),
            self.weights.to(device),
            self.tokens,
            self.slots,
            self.sequences,
        )

    @property
    def supervised(self) -> int:
        return int((self.weights != 0).sum())


def _tensor(values, dtype) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.to(dtype)
    # A copy: dataset rows are read-only numpy views of the whole column.
    return torch.tensor(values, dtype=dtype)


def pack(rows: Sequence[dict], max_len: int | None = None) -> Batch:
    """Concatenate sequences into one row; position_ids restart at 0 for every sequence.

    With use_cache=False, transformers' sdpa/eager/flash-attention paths read the restarts as
    sequence boundaries, so no token attends across sequences. `max_len` truncates rows (the
    sampler's too_long="truncate").
    """
    if not rows:
        return empty_batch()
    cut = slice(None, max_len)
    ids = [_tensor(r["input_ids"][cut], torch.long) for r in rows]
    positions = [torch.arange(len(x)) for x in ids]
    labels = torch.cat([_tensor(r["labels"][cut], torch.long) for r in rows])
    weights = torch.cat([_tensor(r["weights"][cut], torch.float32) for r in rows])
    total = sum(len(x) for x in ids)
    inputs = {
        "input_ids": torch.cat(ids)[None],
        "position_ids": torch.cat(positions)[None],
        **_varlen(ids),
    }
    return Batch(inputs, labels, weights, tokens=total, slots=total, sequences=len(rows))


def _varlen(ids: list[torch.Tensor]) -> dict:
    """Sequence boundaries in flash-attention's varlen form (what transformers passes on)."""
    lengths = torch.tensor([len(x) for x in ids], dtype=torch.int32)
    cu = torch.nn.functional.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    longest = int(lengths.max())
    return {
        "cu_seq_lens_q": cu,
        "cu_seq_lens_k": cu,
        "max_length_q": longest,
        "max_length_k": longest,
    }


def pad(rows: Sequence[dict], max_len: int | None = None, pad_id: int = 0) -> Batch:
    """One sequence per row, right-padded to the longest; padding has weight 0."""
    if not rows:
        return empty_batch()
    cut = slice(None, max_len)
    ids = [_tensor(r["input_ids"][cut], torch.long) for r in rows]
    width = max(len(x) for x in ids)
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    mask = torch.zeros(shape, dtype=torch.long)
    labels = torch.zeros(shape, dtype=torch.long)
    weights = torch.zeros(shape, dtype=torch.float32)
    for i, (x, row) in enumerate(zip(ids, rows)):
        n = len(x)
        input_ids[i, :n], mask[i, :n] = x, 1
        labels[i, :n] = _tensor(row["labels"][cut], torch.long)
        weights[i, :n] = _tensor(row["weights"][cut], torch.float32)
    inputs = {"input_ids": input_ids, "attention_mask": mask}
    return Batch(
        inputs,
        labels.reshape(-1),
        weights.reshape(-1),
        tokens=sum(len(x) for x in ids),
        slots=input_ids.numel(),
        sequences=len(rows),
    )


def empty_batch() -> Batch:
    """A one-token, zero-weight batch: a rank with no data still joins the collective backward."""
    ids = torch.zeros(1, dtype=torch.long)
    inputs = {"input_ids": ids[None], "position_ids": ids[None], **_varlen([ids])}
    return Batch(
        inputs, torch.zeros(1, dtype=torch.long), torch.zeros(1), tokens=0, slots=1, sequences=0
    )
