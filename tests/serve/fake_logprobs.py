"""A model-free engine that reports log-probabilities, to test the HTTP layer's shapes exactly.

Generated token k (0-based) has log-probability -(k + 1) / 8, prompt token k has -k / 4 (None
for the first): binary fractions, so sums compare exactly. Alternatives are the token itself
(rank 1) and its neighbours, likeliest first, as many as asked.
"""

from __future__ import annotations

import asyncio

from ocx.adapters.serve.engine import Step
from ocx.harness.logprobs import TokenLogprob
from ocx.harness.sampling import ALL_FIELDS


def generated_logprob(k: int) -> float:
    return -(k + 1) / 8


def prompt_logprob(k: int) -> float:
    return -k / 4


def _entry(token: int, logprob: float, alternatives: int) -> TokenLogprob:
    top = tuple((token + i, logprob - i) for i in range(alternatives))
    return TokenLogprob(token, logprob, 1, top)


class LogprobEngine:
    """Answers `answer` (then `eot` when given), one token per step, `delay` seconds apart."""

    name = "fake-logprobs"
    sampling_fields = ALL_FIELDS

    def __init__(self, answer: list[int], eot: int | None = None, delay: float = 0.0):
        self.answer, self.eot, self.delay = list(answer), eot, delay
        self.started: list[str] = []
        self.ended: list[str] = []
        self.prompts: list[list[int]] = []

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...

    async def generate(self, request_id, prompt_ids, settings):
        self.started.append(request_id)
        self.prompts.append(list(prompt_ids))
        try:
            tokens = [*self.answer, *([self.eot] if self.eot is not None else [])][
                : settings.max_tokens
            ]
            prompt = None
            if settings.prompt_logprobs is not None:
                prompt = (
                    None,
                    *(
                        _entry(t, prompt_logprob(k), settings.prompt_logprobs)
                        for k, t in enumerate(prompt_ids)
                        if k > 0
                    ),
                )
            for k, token in enumerate(tokens):
                if self.delay:
                    await asyncio.sleep(self.delay)
                last = k == len(tokens) - 1
                finish = (
                    None if not last else "stop" if token in settings.stop_token_ids else "length"
                )
                logprobs = None
                if settings.logprobs is not None:
                    logprobs = (_entry(token, generated_logprob(k), settings.logprobs),)
                yield Step(
                    (token,), finish, logprobs=logprobs, prompt_logprobs=prompt if k == 0 else None
                )
        finally:
            self.ended.append(request_id)

    async def abort(self, request_id: str) -> None: ...
