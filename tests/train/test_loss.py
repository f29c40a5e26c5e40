"""The C-RLFT loss on packed rows equals the loss of the same sequences run one at a time."""

from __future__ import annotations

import math

import pytest

from tests.train.conftest import tiny_llama

torch = pytest.importorskip("torch")

from ocx.adapters.train.batching import pack, pad  # noqa: E402
from ocx.adapters.train.loss import full_logits_loss_sum, supervised_loss_sum  # noqa: E402
from ocx.adapters.train.model import CRLFTModel, pick_attention  # noqa: E402
from ocx.adapters.train.schedule import auto_lr, cosine_with_warmup, family_lr_divisor  # noqa: E402

VOCAB = 97


def make_rows(lengths, seed=0, zero_prefix=2):
    """Shifted rows as the dataset's: the first `zero_prefix` positions are a prompt (weight 0)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in lengths:
        ids = torch.randint(0, VOCAB, (n,), generator=g)
        weights = torch.rand(n, generator=g) * (torch.arange(n) >= zero_prefix)
        weights[-1] = 0.0  # nothing to predict after the last token
        rows.append({"input_ids": ids, "labels": torch.cat([ids[1:], ids[:1]]), "weights": weights})
    return rows


def loss_and_grads(model: CRLFTModel, batches) -> tuple[float, dict]:
    model.zero_grad()
    total = sum(model.loss_sum(b) for b in batches)
    total.backward()
    return float(total.detach()), {k: p.grad.clone() for k, p in model.named_parameters()}


def assert_same(a, b, tol=1e-5):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    assert math.isclose(loss_a, loss_b, rel_tol=tol), (loss_a, loss_b)
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=tol, rtol=1e-4), name


@pytest.mark.parametrize("attention", ["sdpa", "varlen"])
def test_packed_batch_loss_and_gradients_equal_the_sequences_run_one_at_a_time(attention):
    impl = pick_attention("cpu", packing=True) if attention == "varlen" else "sdpa"
    model = CRLFTModel(tiny_llama(VOCAB, attention=impl), loss_chunk_size=7)
    rows = make_rows([9, 17, 4, 12])
    packed = loss_and_grads(model, [pack(rows)])
    one_by_one = loss_and_grads(model, [pack([r]) for r in rows])
    assert_same(packed, one_by_one)


def test_padded_batch_gives_the_packed_loss_and_gradients():
    model = CRLFTModel(tiny_llama(VOCAB, attention="sdpa"))
    rows = make_rows([9, 17, 4, 12], seed=3)
    assert_same(loss_and_grads(model, [pad(rows)]), loss_and_grads(model, [pack(rows)]))


def test_packed_row_without_a_kv_cache_gives_each_sequence_its_own_logits():
    lm = tiny_llama(VOCAB, attention="sdpa").eval()
    rows = make_rows([7, 5])
    batch = pack(rows)
    separate = torch.cat(
        [lm(input_ids=r["input_ids"][None], use_cache=False).logits for r in rows], dim=1
    )
    packed = lm(
        input_ids=batch.inputs["input_ids"],
        position_ids=batch.inputs["position_ids"],
        use_cache=False,
    ).logits
    assert torch.allclose(packed, separate, atol=1e-5)
    # Why the trainer forces use_cache=False: with a cache, transformers 5 lets the second
    # sequence attend to the first.
    cached = lm(
        input_ids=batch.inputs["input_ids"],
        position_ids=batch.inputs["position_ids"],
        use_cache=True,
    ).logits
    assert not torch.allclose(cached[:, 7:], separate[:, 7:], atol=1e-3)


def test_position_ids_restart_at_zero_for_every_packed_sequence():
    batch = pack(make_rows([3, 2, 4]))
    assert batch.inputs["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3]]
    assert batch.inputs["cu_seq_lens_q"].tolist() == [0, 3, 5, 9]
    assert (batch.tokens, batch.sequences) == (9, 3)


def test_a_zero_weight_message_changes_neither_loss_nor_gradients():
    model = CRLFTModel(tiny_llama(VOCAB))
    rows = make_rows([10, 8], seed=5)
    base = loss_and_grads(model, [pack(rows)])
    # A trailing message of weight 0 appended to a conversation, and a conversation of weight 0.
    g = torch.Generator().manual_seed(9)
    tail = torch.randint(0, VOCAB, (6,), generator=g)
    extended = dict(rows[0])
    extended["input_ids"] = torch.cat([rows[0]["input_ids"], tail])
    extended["labels"] = torch.cat([rows[0]["labels"], torch.randint(0, VOCAB, (6,), generator=g)])
    extended["weights"] = torch.cat([rows[0]["weights"], torch.zeros(6)])
    silent = make_rows([11], seed=6)[0]
    silent["weights"] = torch.zeros(11)
    assert_same(base, loss_and_grads(model, [pack([extended, rows[1], silent])]))


@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_chunked_supervised_only_loss_equals_the_full_vocabulary_loss(chunk):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(23, 16, generator=g, requires_grad=True)
    head = torch.randn(50, 16, generator=g, requires_grad=True)
    labels = torch.randint(0, 50, (23,), generator=g)
    weights = torch.rand(23, generator=g) * (torch.arange(23) % 3 != 0)
    loss, count = supervised_loss_sum(hidden, head, labels, weights, chunk_size=chunk)
    loss.backward()
    mine = (float(loss), hidden.grad.clone(), head.grad.clone())
    hidden.grad = head.grad = None
    full_logits_loss_sum(hidden, head, labels, weights).backward()
    assert count == int((weights != 0).sum())
    assert math.isclose(
        mine[0], float(full_logits_loss_sum(hidden, head, labels, weights)), rel_tol=1e-5
    )
    assert torch.allclose(mine[1], hidden.grad, atol=1e-5)
    assert torch.allclose(mine[2], head.grad, atol=1e-5)


def test_a_batch_without_supervised_tokens_has_zero_loss_and_zero_gradients():
    hidden = torch.randn(4, 8, requires_grad=True)
    head = torch.randn(10, 8, requires_grad=True)
    loss, count = supervised_loss_sum(
        hidden, head, torch.zeros(4, dtype=torch.long), torch.zeros(4)
    )
    loss.backward()
    assert (float(loss), count) == (0.0, 0)
    assert not hidden.grad.any() and not head.grad.any()


def test_schedule_warms_up_linearly_then_follows_a_cosine_down_to_the_floor():
    lr = [
        cosine_with_warmup(s, warmup_steps=10, total_steps=110, min_ratio=0.1)
        for s in range(0, 111)
    ]
    assert lr[0] == 0.0 and lr[5] == pytest.approx(0.5) and lr[10] == pytest.approx(1.0)
    assert lr[60] == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr[110] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lr[10:], lr[11:]))


def test_automatic_lr_follows_openchats_formula():
    # OpenChat 3.5 (Mistral) on 8 GPUs x 81920 tokens, half of them supervised:
    # 3e-4 / 6 * sqrt(8 * 81920 * 0.5 / 4e6)
    expected = 3e-4 / 6 * math.sqrt(8 * 81920 * 0.5 / 4_000_000)
    got = auto_lr(
        batch_max_len=81920,
        world_size=8,
        supervised_ratio=0.5,
        divisor=family_lr_divisor("mistral", 32002),
    )
    assert got == pytest.approx(expected)
    assert family_lr_divisor("llama", 128256) == 5.3 and family_lr_divisor("llama", 32000) == 1.0
    assert family_lr_divisor("gemma", 256000) == 5.5
