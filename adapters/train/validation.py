"""The validation set and its loss: held out by conversation, weighted exactly like training.

`--val-fraction F` holds out conversations before packing, chosen by a seeded hash of each
conversation's tokens: the choice does not depend on the rows' order, and identical
conversations (duplicates) always land on the same side, so none is trained on and validated
at once. `--val-data DIR` reads a separate tokenized dataset instead, which must have been
tokenized with the training data's tokenizer and template.

The validation loss is C-RLFT's: sum_t w_t * CE_t over the whole validation set divided by its
weight sum, summed over all ranks, so it compares with the training loss line for line.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocx.harness.errors import InputError, InputProblem


@dataclass
class Subset:
    """Some rows of a tokenized dataset, indexed 0..n-1 (what the sampler and trainer see)."""

    data: object
    indices: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.asarray(self.data.lengths)[self.indices]

    @property
    def manifest(self) -> dict:
        return self.data.manifest

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return self.data[int(self.indices[i])]


def _conversation_key(row: dict, seed: int) -> bytes:
    digest = hashlib.blake2b(digest_size=16, key=seed.to_bytes(8, "little"))
    for column in ("input_ids", "weights"):
        digest.update(np.ascontiguousarray(row[column]).tobytes())
    digest.update(row["condition"].encode())
    return digest.digest()


def split_by_conversation(data, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), both sorted; about `fraction` of the rows held out.

    At least one conversation is held out and one kept (when there are two or more); copies of
    one conversation are never split between the two sides.
    """
    n = len(data)
    if n < 2 or fraction <= 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    keys = [_conversation_key(data[i], seed) for i in range(n)]
    order = sorted(range(n), key=lambda i: (keys[i], i))
    target = min(n - 1, max(1, math.ceil(fraction * n)))
    cut = target
    while cut < n and keys[order[cut]] == keys[order[cut - 1]]:  # keep duplicates together
        cut += 1
    if cut == n:  # the last group reaches the end: hold out less instead of keeping nothing
        cut = target
        while cut > 0 and keys[order[cut]] == keys[order[cut - 1]]:
            cut -= 1
    held = np.sort(np.asarray(order[:cut], dtype=np.int64))
    kept = np.sort(np.asarray(order[cut:], dtype=np.int64))
    return kept, held


def load_val_data(path: Path, train_manifest: dict):
    """A tokenized validation set; InputError (exit 2) unless it matches the training data's
    tokenizer and template, since its loss would otherwise compare nothing."""
    from ocx.harness.data.dataset import load_tokenized

    data = load_tokenized(path)
    for key in ("tokenizer_sha256", "model_type", "template_sha256"):
        train_value, val_value = train_manifest.get(key), data.manifest.get(key)
        if train_value != val_value:
            raise InputError(
                InputProblem(
                    str(Path(path) / "manifest.json"),
                    None,
                    key,
                    f"is {val_value!r}, the training data's is {train_value!r}; tokenize the "
                    "validation data with the same tokenizer and model type",
                )
            )
    if len(data) == 0:
        raise InputError(InputProblem(str(path), None, "--val-data", "holds no conversations"))
    return data


def validation_loss(engine, data, sampler, rank: int, collate) -> dict:
    """The weighted loss of the whole validation set (same value on every rank).

    Every rank runs the same number of forward passes (an empty, zero-weight row where it has
    none left), so ZeRO-3's parameter gathering stays in step.
    """
    import torch
    import torch.distributed as dist

    totals = torch.zeros(
        4, dtype=torch.float64
    )  # loss sum, weight sum, supervised tokens, sequences
    was_training = engine.module.training
    engine.module.eval()
    try:
        with torch.no_grad():
            for step in sampler.batches(0):
                batch = collate(step[rank]).to(engine.device)
                loss_sum = engine(labels=batch.labels, weights=batch.weights, **batch.inputs)
                totals += torch.tensor(
                    [
                        float(loss_sum),
                        float(batch.weights.sum()),
                        batch.supervised,
                        batch.sequences,
                    ],
                    dtype=torch.float64,
                )
    finally:
        engine.module.train(was_training)
    dist.all_reduce(totals)
    loss_sum, weight_sum, supervised, sequences = (float(x) for x in totals)
    return {
        "val_loss": loss_sum / weight_sum if weight_sum else None,
        "val_sequences": int(sequences),
        "val_supervised_tokens": int(supervised),
    }
