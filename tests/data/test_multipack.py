"""MultipackSampler: per-rank batches that fit, equal steps per rank, and no sequence lost."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ocx.harness.data import MultipackSampler, SequenceTooLongError
from ocx.harness.data.synthetic import sharegpt_like_lengths


def scheduled(sampler: MultipackSampler, epoch: int) -> list[int]:
    return [i for step in sampler.batches(epoch) for batch in step for i in batch]


@pytest.mark.parametrize("batch_max_len,num_ranks", [(8192, 1), (40960, 8), (77824, 8), (16384, 3)])
def test_every_batch_fits_and_every_rank_gets_the_same_number_of_nonempty_batches(batch_max_len, num_ranks):
    lengths = sharegpt_like_lengths(20000, 8192, seed=1)
    sampler = MultipackSampler(lengths, batch_max_len, num_ranks, seed=0)
    for epoch in range(2):
        steps = sampler.batches(epoch)
        assert steps and all(len(step) == num_ranks for step in steps)
        for step in steps:
            for batch in step:
                assert batch, "an empty batch"
                assert lengths[batch].sum() <= batch_max_len
        assert len(sampler.rank_batches(epoch, num_ranks - 1)) == sampler.num_steps(epoch)


def test_no_index_is_lost_or_duplicated_across_epochs_because_the_tail_is_carried():
    lengths = sharegpt_like_lengths(5000, 8192, seed=2)
    sampler = MultipackSampler(lengths, 40960, 8, seed=3)
    epochs = 4
    seen = Counter()
    for epoch in range(epochs):
        got = scheduled(sampler, epoch)
        # Each epoch holds the previous epoch's leftover plus this epoch's permutation, minus its own leftover.
        carried_in = sampler.leftover(epoch - 1) if epoch else []
        assert Counter(got) + Counter(sampler.leftover(epoch)) == Counter(range(len(lengths))) + Counter(carried_in)
        seen.update(got)
    seen.update(sampler.leftover(epochs - 1))
    assert seen == Counter({i: epochs for i in range(len(lengths))})
    assert 0 < len(sampler.leftover(0)) < len(lengths) // 10


def test_the_same_seed_gives_the_same_batches_and_another_seed_does_not():
    lengths = sharegpt_like_lengths(3000, 4096, seed=4)
    a = MultipackSampler(lengths, 16384, 4, seed=7)
    b = MultipackSampler(lengths.copy(), 16384, 4, seed=7)
    assert b.batches(1) == a.batches(1)  # epoch 1 computed without asking for epoch 0 first
    assert a.batches(0) == b.batches(0)
    assert a.batches(0) != a.batches(1), "epochs must be reshuffled"
    assert MultipackSampler(lengths, 16384, 4, seed=8).batches(0) != a.batches(0)


def test_sequences_longer_than_the_budget_are_refused_by_default():
    lengths = np.array([100, 5000, 200, 7000])
    with pytest.raises(SequenceTooLongError, match="2 sequence.*longer than batch_max_len=4096.*index 1"):
        MultipackSampler(lengths, 4096, 1)


def test_truncate_packs_too_long_sequences_at_the_budget_and_counts_them():
    lengths = np.array([100, 5000, 200, 7000] * 50)
    sampler = MultipackSampler(lengths, 4096, 2, seed=0, too_long="truncate")
    assert sampler.num_truncated == 100
    assert sampler.lengths.max() == 4096 and sampler.truncated_indices.tolist()[:2] == [1, 3]
    got = scheduled(sampler, 0) + sampler.leftover(0)
    assert sorted(got) == list(range(len(lengths))), "a too-long sequence must not end the epoch"
    for step in sampler.batches(0):
        for batch in step:
            assert sampler.lengths[batch].sum() <= 4096


def test_efficiency_is_used_over_available_slots_and_high_on_sharegpt_like_lengths():
    lengths = sharegpt_like_lengths(20000, 8192, seed=5)
    sampler = MultipackSampler(lengths, 77824, 8, seed=0)
    used = sum(int(lengths[b].sum()) for step in sampler.batches(0) for b in step)
    assert sampler.efficiency(0) == pytest.approx(used / (sampler.num_steps(0) * 8 * 77824))
    assert sampler.efficiency(0) > 0.995


def test_a_dataset_smaller_than_one_step_still_gets_one_step_spread_over_the_ranks():
    lengths = np.array([10, 20, 30, 4000, 5])
    sampler = MultipackSampler(lengths, 4096, 2, seed=0)
    for epoch in range(3):
        (step,) = sampler.batches(epoch)
        assert all(step) and all(lengths[b].sum() <= 4096 for b in step)
        assert sorted(i for b in step for i in b) == [0, 1, 2, 3, 4] and sampler.leftover(epoch) == []


def test_fewer_sequences_than_ranks_schedule_nothing_and_are_reported_as_leftover():
    sampler = MultipackSampler([10, 20, 30], 4096, 4, seed=0)
    assert sampler.batches(0) == [] and sorted(sampler.leftover(0)) == [0, 1, 2]
    assert sampler.efficiency(0) == 0.0
    assert MultipackSampler([], 4096, 2).batches(0) == []


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least one token"):
        MultipackSampler([3, 0], 10, 1)
    with pytest.raises(ValueError, match="too_long"):
        MultipackSampler([3], 10, 1, too_long="drop")
    with pytest.raises(ValueError, match="positive"):
        MultipackSampler([3], 10, 0)
