"""C-RLFT data: pretokenized datasets and multipack batching.

Stable API (the trainer codes against it)::

    from ocx.harness.data import load_tokenized, TokenizedDataset, MultipackSampler

    ds = load_tokenized("data/tokenized")      # what `ocx data tokenize` writes
    ds.lengths                                 # numpy int64, tokens per conversation
    len(ds); ds[i]                             # dict: input_ids (int32), labels (int32),
                                               #   weights (float32), length (int), condition (str)
    ds.manifest                                # manifest.json as a dict

    sampler = MultipackSampler(ds.lengths, batch_max_len=77824, num_ranks=8, seed=42,
                               too_long="refuse")   # or "truncate" (then cut ds[i] to
                                                    #   sampler.lengths[i])
    sampler.batches(epoch)                     # [step][rank] -> list of dataset indices
    sampler.rank_batches(epoch, rank)          # [step] -> list of indices for one rank
    sampler.num_steps(epoch); sampler.efficiency(epoch); sampler.num_partial_steps(epoch)

Importing this package costs nothing heavy: numpy and pyarrow load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["MultipackSampler", "SequenceTooLongError", "TokenizedDataset", "load_tokenized"]

if TYPE_CHECKING:
    from ocx.harness.data.dataset import TokenizedDataset, load_tokenized
    from ocx.harness.data.multipack import MultipackSampler, SequenceTooLongError

_LAZY = {
    "MultipackSampler": "ocx.harness.data.multipack",
    "SequenceTooLongError": "ocx.harness.data.multipack",
    "TokenizedDataset": "ocx.harness.data.dataset",
    "load_tokenized": "ocx.harness.data.dataset",
}


def __getattr__(name: str):
    # Lazy, so `import ocx.harness.data` (e.g. from the CLI) does not import numpy/pyarrow.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
