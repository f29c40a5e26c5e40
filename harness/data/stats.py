"""What `ocx data stats` reports: sizes, conditions, lengths, and the packing the trainer sees."""

from __future__ import annotations

import numpy as np

from ocx.harness.data.dataset import TokenizedDataset

PERCENTILES = (50, 90, 99)


def dataset_stats(
    ds: TokenizedDataset, *, batch_max_len: int | None = None, num_ranks: int = 1, seed: int = 0
) -> dict:
    """A JSON-ready summary; packing figures are those of epoch 0 (too-long rows truncated)."""
    lengths = ds.lengths
    bounds = ds.offsets
    weight_sums = (
        np.add.reduceat(ds.weights.astype(np.float64), bounds[:-1]) if len(ds) else np.zeros(0)
    )
    supervised = (
        np.add.reduceat((ds.weights != 0).astype(np.int64), bounds[:-1]) if len(ds) else np.zeros(0)
    )
    conditions: dict[str, dict] = {}
    for cond, w, s in zip(ds.conditions, weight_sums.tolist(), supervised.tolist()):
        entry = conditions.setdefault(
            cond, {"conversations": 0, "supervised_tokens": 0, "weight_sum": 0.0}
        )
        entry["conversations"] += 1
        entry["supervised_tokens"] += s
        entry["weight_sum"] += w
    stats = {
        "conversations": len(ds),
        "tokens": int(lengths.sum()),
        "supervised_tokens": int(supervised.sum()),
        "conditions": {k: conditions[k] for k in sorted(conditions)},
        "length": _length_stats(lengths),
        "manifest_counts": ds.manifest.get("counts", {}),
    }
    if batch_max_len:
        stats["packing"] = packing_stats(lengths, batch_max_len, num_ranks, seed)
    return stats


def _length_stats(lengths: np.ndarray) -> dict:
    if not len(lengths):
        return {"min": 0, "mean": 0.0, "max": 0, **{f"p{p}": 0 for p in PERCENTILES}}
    out = {
        "min": int(lengths.min()),
        "mean": round(float(lengths.mean()), 2),
        "max": int(lengths.max()),
    }
    out |= {f"p{p}": int(np.percentile(lengths, p, method="higher")) for p in PERCENTILES}
    return out


def packing_stats(lengths: np.ndarray, batch_max_len: int, num_ranks: int, seed: int = 0) -> dict:
    from ocx.harness.data.multipack import MultipackSampler

    sampler = MultipackSampler(lengths, batch_max_len, num_ranks, seed, too_long="truncate")
    return {
        "batch_max_len": batch_max_len,
        "num_ranks": num_ranks,
        "steps_per_epoch": sampler.num_steps(0),
        "partial_steps_per_epoch": sampler.num_partial_steps(0),
        "efficiency": round(sampler.efficiency(0), 6),
        "longer_than_batch_max_len": sampler.num_truncated,
    }
