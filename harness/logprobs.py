"""The records log-probabilities travel in, shared by engines, the server and eval.

Engines report the log-probability of each token they generate (and, asked for it, of each
prompt token) as `TokenLogprob`s, from the very forward pass that generates them. Eval's
log-likelihood scoring asks a backend for one `Loglikelihood` per `LoglikelihoodRequest`: the
summed log-probability of a continuation's tokens after a context, as lm-evaluation-harness
defines it. No torch here: these are plain records.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenLogprob:
    """One token's log-probability at its position, and the likeliest alternatives there.

    `logprob` is the natural-log probability under the model's raw distribution (log-softmax of
    the logits, before temperature, top-p or penalties: what vLLM and OpenAI report). `rank` is 1
    when the token is the likeliest one at its position (greedy). `top` holds up to the requested
    number of (token_id, logprob) pairs, likeliest first.
    """

    token_id: int
    logprob: float
    rank: int
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score `continuation_ids` after `context_ids` (both already tokenized, as lm-eval's
    `_encode_pair` splits them). `index` identifies the request in callbacks."""

    index: int
    context_ids: tuple[int, ...]
    continuation_ids: tuple[int, ...]


@dataclass(frozen=True)
class Loglikelihood:
    """lm-eval's `(logprob, is_greedy)` plus the per-token terms of the sum."""

    logprob: float
    """Sum of the continuation tokens' log-probabilities."""
    is_greedy: bool
    """Every continuation token is the argmax at its position."""
    token_logprobs: tuple[float, ...]

    @classmethod
    def from_tokens(cls, tokens: list[TokenLogprob] | tuple[TokenLogprob, ...]) -> Loglikelihood:
        return cls(
            logprob=float(sum(t.logprob for t in tokens)),
            is_greedy=all(t.rank == 1 for t in tokens),
            token_logprobs=tuple(float(t.logprob) for t in tokens),
        )

    def to_dict(self) -> dict:
        return {
            "logprob": self.logprob,
            "is_greedy": self.is_greedy,
            "token_logprobs": list(self.token_logprobs),
        }
