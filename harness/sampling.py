"""One sampling type for every engine and entry point: `ocx eval`, `ocx serve` and recipes.

Eval builds it from a suite's `generation` settings plus the user's overrides
(`Sampling.for_suite`); the server's request validator builds it from an OpenAI request
(`adapters/serve/chat.py`). Engines read it as is: the transformers engine, vLLM (as
`SamplingParams`) and the HTTP client (as request fields).

An engine that cannot honour a field says so in `sampling_fields` (the names it honours); a
request setting another field to a non-default value is refused (a 400 from the server, an
error per request in eval), never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

# Fields every engine honours; a `Sampling` differing from the defaults elsewhere needs an
# engine that lists those fields too.
BASIC_FIELDS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "stop_token_ids",
        "incremental",
    }
)


@dataclass(frozen=True)
class Sampling:
    """How one sequence is sampled; part of every eval cache key and recorded in every result."""

    temperature: float = 0.0
    """0 is greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling: the smallest set of tokens whose probability reaches top_p."""
    max_tokens: int = 2048
    """Most new tokens per answer (chain-of-thought sets need room; OpenChat uses the context)."""
    seed: int | None = None
    """Sampling seed, for temperature > 0."""
    stop: tuple[str, ...] = ()
    """Strings that end an answer (not included in it), besides the template's end of turn."""
    top_k: int = 0
    """Sample among the k likeliest tokens; 0 (or -1, vLLM's spelling) means all."""
    min_p: float = 0.0
    """Drop tokens whose probability is below min_p times the likeliest token's; 0 is off."""
    repetition_penalty: float = 1.0
    """CTRL's multiplicative penalty on tokens already in the prompt or answer; 1 is off."""
    presence_penalty: float = 0.0
    """OpenAI's: logit -= presence_penalty for every token already generated."""
    frequency_penalty: float = 0.0
    """OpenAI's: logit -= frequency_penalty times the count of each token already generated."""
    stop_token_ids: tuple[int, ...] = ()
    """Token IDs that end the turn (the template's end of turn); set by the inference layer
    from the checkpoint, never by a user. Counted in usage but never shown."""
    incremental: bool = True
    """False: the caller needs only the result (no streaming, no stop strings), so an engine
    may send all tokens in one final step (vLLM's FINAL_ONLY), saving per-token work."""
    logprobs: int | None = None
    """None: no log-probabilities. N >= 0: each generated token's `TokenLogprob` (with the N
    likeliest alternatives) rides on its `Step`, taken from the pass that sampled it."""
    prompt_logprobs: int | None = None
    """None: none. N >= 0: the first `Step` carries one entry per prompt token (None for the
    first token, which has no context), with N alternatives each, from the prefill pass."""

    def __post_init__(self) -> None:
        if (
            self.top_k < 0
        ):  # vLLM spells "off" -1; one spelling here, so equal settings compare equal
            object.__setattr__(self, "top_k", 0)
        if not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop or ()))

    @classmethod
    def for_suite(cls, generation: dict, overrides: dict) -> Sampling:
        """A suite's own settings (its `generation`) with the user's overrides on top."""
        user_fields = {f.name for f in fields(cls)} - _PLUMBING
        known = {k: v for k, v in {**generation, **overrides}.items() if k in user_fields}
        return cls(**known)

    def as_dict(self) -> dict:
        """The settings that shape an answer, for cache keys and result records.

        The five original fields always appear; the newer ones only when they differ from
        their defaults, so caches written before they existed still match. Engine plumbing
        (`stop_token_ids`, `incremental`) is left out: the model identity covers it.
        """
        record = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": self.stop,
        }
        for name in (
            "top_k",
            "min_p",
            "repetition_penalty",
            "presence_penalty",
            "frequency_penalty",
        ):
            value = getattr(self, name)
            if value != _DEFAULTS[name]:
                record[name] = value
        return record

    def unsupported(self, honoured: frozenset[str] | set[str]) -> list[str]:
        """Fields set away from their defaults that an engine honouring `honoured` would ignore."""
        return [
            name
            for name, default in _DEFAULTS.items()
            if name not in honoured and name not in BASIC_FIELDS and getattr(self, name) != default
        ]


_PLUMBING = frozenset({"stop_token_ids", "incremental", "logprobs", "prompt_logprobs"})
_DEFAULTS = {f.name: f.default for f in fields(Sampling)}
ALL_FIELDS = frozenset(_DEFAULTS)
"""Every field: what an engine that honours everything (vLLM) declares."""


def honoured_fields(engine: object) -> frozenset[str]:
    """The sampling fields `engine` honours: its `sampling_fields`, else the basic ones."""
    return frozenset(getattr(engine, "sampling_fields", BASIC_FIELDS))
