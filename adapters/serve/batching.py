"""Continuous batching for a transformers causal LM: one forward pass per decode step for
every running sequence, with sequences joining and leaving between steps.

The running batch is left-padded: each row's KV cache ends at the same column, so one new
token per row is one `[B, 1]` forward pass. An attention mask hides the padding and explicit
`position_ids` (count of real tokens so far) give each row its own RoPE positions, so a row's
logits do not depend on what else is in the batch. New requests are prefilled together
(left-padded too) and their caches are concatenated onto the running batch after padding the
shorter side on the left; finished rows are dropped with an index select.
"""

from __future__ import annotations

import functools
import inspect
import random
from dataclasses import dataclass, field

import torch

from ocx.adapters.serve.engine import SamplingSettings
from ocx.harness.logprobs import TokenLogprob


@dataclass
class Sequence:
    """One sequence being generated: its settings, sampler state and output so far."""

    request_id: str
    prompt_ids: list[int]
    settings: SamplingSettings
    generator: torch.Generator
    generated: list[int] = field(default_factory=list)
    counts: dict[int, int] = field(default_factory=dict)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    """Each generated token's log-probability, when `settings.logprobs` is set."""
    prompt_logprobs: tuple[TokenLogprob | None, ...] | None = None
    """Set by `prefill` when `settings.prompt_logprobs` is set; sent on the first step."""

    @classmethod
    def create(cls, request_id: str, prompt_ids: list[int], settings: SamplingSettings) -> Sequence:
        seed = settings.seed if settings.seed is not None else random.SystemRandom().getrandbits(63)
        generator = torch.Generator().manual_seed(seed)
        return cls(request_id, list(prompt_ids), settings, generator)

    def append(self, token: int) -> str | None:
        """Record a sampled token; returns the finish reason when the sequence is done."""
        self.generated.append(token)
        self.counts[token] = self.counts.get(token, 0) + 1
        if token in self.settings.stop_token_ids:
            return "stop"
        if len(self.generated) >= self.settings.max_tokens:
            return "length"
        return None


@dataclass
class Batch:
    """The running batch: per-layer KV tensors `[B, heads, T, dim]`, the mask `[B, T]`, rows."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor
    rows: list[Sequence]

    def __len__(self) -> int:
        return len(self.rows)


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids, mask


def _cache_tensors(out) -> list[tuple[torch.Tensor, torch.Tensor]]:
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    return [(layer.keys, layer.values) for layer in cache.layers]


@functools.cache
def _cache_argument(forward) -> str:
    """transformers 5.24 renamed `past_key_values` to `cache` (the old name goes in 5.40)."""
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def _make_cache(kv: list[tuple[torch.Tensor, torch.Tensor]]):
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=kv)


def _pad_left(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def merge(a: Batch, b: Batch) -> Batch:
    """One batch holding the rows of both, left-padded to the longer cache."""
    width = max(a.mask.shape[1], b.mask.shape[1])
    kv = [
        (
            torch.cat([_pad_left(ka, width, 2), _pad_left(kb, width, 2)]),
            torch.cat([_pad_left(va, width, 2), _pad_left(vb, width, 2)]),
        )
        for (ka, va), (kb, vb) in zip(a.kv, b.kv)
    ]
    mask = torch.cat([_pad_left(a.mask, width, 1), _pad_left(b.mask, width, 1)])
    return Batch(kv, mask, a.rows + b.rows)


def select(batch: Batch, keep: list[int]) -> Batch:
    """The batch with only rows `keep`, and with columns that are padding in every row cut."""
    index = torch.tensor(keep, dtype=torch.long, device=batch.mask.device)
    mask = batch.mask.index_select(0, index)
    # Left columns that no remaining row uses would otherwise grow with every admission.
    lead = int((mask.cumsum(1) == 0).sum(1).min())
    kv = [
        (k.index_select(0, index)[:, :, lead:], v.index_select(0, index)[:, :, lead:])
        for k, v in batch.kv
    ]
    return Batch(kv, mask[:, lead:], [batch.rows[i] for i in keep])


@torch.inference_mode()
def prefill(model, rows: list[Sequence], pad_id: int) -> tuple[Batch, torch.Tensor]:
    """Run the prompts of `rows` together; returns their batch and last-position logits.

    Only the last position goes through the lm_head, unless a row asks for its prompt's
    log-probabilities: then every position does, in this same pass, and those rows get them.
    """
    ids, mask = (t.to(model.device) for t in left_pad([r.prompt_ids for r in rows], pad_id))
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    every_position = any(r.settings.prompt_logprobs is not None for r in rows)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=0 if every_position else 1,
    )
    if every_position:
        for i, row in enumerate(rows):
            if row.settings.prompt_logprobs is not None:
                row.prompt_logprobs = _prompt_logprobs(
                    out.logits[i], row.prompt_ids, row.settings.prompt_logprobs
                )
    return Batch(_cache_tensors(out), mask, rows), _last_logits(out)


def _prompt_logprobs(
    logits: torch.Tensor, prompt_ids: list[int], top: int
) -> tuple[TokenLogprob | None, ...]:
    """One row's prompt log-probabilities from its (left-padded) logits `[T, V]`: the logits
    at position p predict token p + 1, so a prompt of L tokens takes the L - 1 positions
    before the last; its first token has no context (None, as vLLM)."""
    length = len(prompt_ids)
    if length < 2:
        return (None,) * length
    logprobs = torch.log_softmax(logits[-length:-1].float(), dim=-1).cpu()
    return (None, *token_logprobs(logprobs, prompt_ids[1:], top))


def token_logprobs(logprobs: torch.Tensor, tokens: list[int], top: int) -> list[TokenLogprob]:
    """`TokenLogprob`s of `tokens[i]` under the log-softmaxed rows `logprobs[i]` (`[N, V]`).

    The rank is vLLM's: how many tokens are at least as likely as this one (1: the argmax).
    """
    index = torch.tensor(tokens, dtype=torch.long).unsqueeze(1)
    chosen = logprobs.gather(1, index)
    ranks = (logprobs >= chosen).sum(1).tolist()
    chosen = chosen.squeeze(1).tolist()
    if top > 0:
        best, best_ids = logprobs.topk(min(top, logprobs.shape[1]), dim=1)
        tops = [tuple(zip(i, v)) for i, v in zip(best_ids.tolist(), best.tolist())]
    else:
        tops = [()] * len(tokens)
    return [TokenLogprob(t, lp, r, tp) for t, lp, r, tp in zip(tokens, chosen, ranks, tops)]


@torch.inference_mode()
def decode_step(model, batch: Batch) -> tuple[Batch, torch.Tensor]:
    """Feed each row's last sampled token; returns the grown batch and the next logits."""
    ids = torch.tensor(
        [[r.generated[-1]] for r in batch.rows], dtype=torch.long, device=batch.mask.device
    )
    positions = batch.mask.sum(1, keepdim=True)
    mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch), 1))], dim=1)
    cache = {_cache_argument(type(model).forward): _make_cache(batch.kv)}
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **cache)
    return Batch(_cache_tensors(out), mask, batch.rows), _last_logits(out)


def _last_logits(out) -> torch.Tensor:
    """Each row's next-token logits, in float32 on the CPU, where every row's sampler (and its
    torch.Generator) lives; on a GPU this is the one copy per step, a few hundred kB."""
    return out.logits[:, -1, :].float().cpu()


def _penalized(logits: torch.Tensor, seq: Sequence) -> torch.Tensor:
    s = seq.settings
    if s.repetition_penalty != 1.0:
        # CTRL's penalty (transformers' processor, as vLLM): over the prompt and the answer so far.
        from transformers import RepetitionPenaltyLogitsProcessor

        seen = torch.tensor([seq.prompt_ids + seq.generated], dtype=torch.long)
        logits = RepetitionPenaltyLogitsProcessor(s.repetition_penalty)(seen, logits[None])[0]
    if seq.counts and (s.presence_penalty or s.frequency_penalty):
        # OpenAI's definition: logit -= count * frequency_penalty + (count > 0) * presence_penalty.
        ids = torch.tensor(list(seq.counts), dtype=torch.long)
        counts = torch.tensor(list(seq.counts.values()), dtype=logits.dtype)
        logits = logits.clone()
        logits[ids] -= counts * s.frequency_penalty + s.presence_penalty
    return logits


def _top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    probs = torch.softmax(scores, dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    # Keep the smallest prefix whose mass reaches top_p. The top token is kept explicitly:
    # a top_p that underflows (1e-300 is 0 in float32) must not drop every token.
    drop = sorted_probs.cumsum(0) - sorted_probs >= top_p
    drop[0] = False
    return scores.masked_fill(torch.zeros_like(drop).scatter_(0, order, drop), float("-inf"))


def sample(logits: torch.Tensor, seq: Sequence) -> int:
    """The next token of one row under its own penalties, temperature, top-k/p, min-p and generator.

    The order is transformers' and vLLM's: penalties, temperature, top-k, top-p, min-p.
    """
    s = seq.settings
    logits = _penalized(logits, seq)
    if s.temperature == 0:
        return int(logits.argmax())
    from transformers import MinPLogitsWarper, TopKLogitsWarper

    # In float64 with the maximum subtracted first, every logit over any positive temperature
    # (even 1e-300) is finite or -inf, so softmax never sees inf - inf (NaN).
    logits = logits.double()
    scores = (logits - logits.max()) / s.temperature
    if s.top_k > 0:  # transformers' warpers take a batch: one row here
        scores = TopKLogitsWarper(s.top_k)(None, scores[None])[0]
    if s.top_p < 1.0:
        scores = _top_p(scores, s.top_p)
    if s.min_p > 0:
        scores = MinPLogitsWarper(s.min_p)(None, scores[None])[0]
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=seq.generator))
