"""The vLLM engine: vLLM's async engine fed with the chat template's exact prompt token IDs.

One wrapper for every entry point: `ocx serve` streams from it, `ocx eval` and recipes drive
it through `EngineBackend` with many sequences in flight (vLLM's scheduler batches them).
vLLM's own tokenizer is never used (`skip_tokenizer_init`): ocx encodes prompts with the
template and decodes outputs itself, so every engine produces the same text for the same
tokens. Scale-out is vLLM's own: `tensor_parallel_size` splits one replica over GPUs,
`data_parallel_size` runs replicas side by side; any other engine argument passes through
`engine_args` (e.g. `distributed_executor_backend="ray"`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from ocx.adapters.serve.engine import Step
from ocx.harness.logprobs import Loglikelihood, TokenLogprob
from ocx.harness.sampling import ALL_FIELDS, Sampling


class VLLMEngine:
    name = "vllm"
    sampling_fields = ALL_FIELDS
    preferred_in_flight = 1024
    """Sequences eval keeps queued: vLLM's scheduler picks its own batch from them."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        context_length: int,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        engine_args: dict | None = None,
    ):
        self.model_path = Path(model_path)
        self.context_length = context_length
        self.tensor_parallel_size = tensor_parallel_size
        self.data_parallel_size = data_parallel_size
        self.engine_args = dict(engine_args or {})
        self.engine = None

    def engine_arguments(self) -> dict:
        """Keyword arguments of vLLM's `AsyncEngineArgs` (`--engine-arg` wins over the flags)."""
        return {
            "model": str(self.model_path),
            "tensor_parallel_size": self.tensor_parallel_size,
            "data_parallel_size": self.data_parallel_size,
            "max_model_len": self.context_length,
            "skip_tokenizer_init": True,
            "disable_log_stats": True,
            **self.engine_args,
        }

    async def start(self) -> None:
        from vllm import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(**self.engine_arguments())
        # The API-server usage context picks vLLM's serving defaults (batch sizes, scheduling),
        # the same ones `vllm serve` gets; the plain engine context gets offline ones.
        self.engine = AsyncLLM.from_engine_args(args, usage_context=UsageContext.OPENAI_API_SERVER)

    async def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None

    def _params(self, s: Sampling):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        # ignore_eos: a turn ends at the template's EOT, not at the base model's EOS (as OpenChat).
        return SamplingParams(
            n=1,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k or -1,
            min_p=s.min_p,
            repetition_penalty=s.repetition_penalty,
            seed=s.seed,
            presence_penalty=s.presence_penalty,
            frequency_penalty=s.frequency_penalty,
            max_tokens=s.max_tokens,
            stop_token_ids=list(s.stop_token_ids),
            ignore_eos=True,
            detokenize=False,
            logprobs=s.logprobs,
            prompt_logprobs=s.prompt_logprobs,
            output_kind=RequestOutputKind.DELTA if s.incremental else RequestOutputKind.FINAL_ONLY,
        )

    async def generate(
        self, request_id: str, prompt_ids: list[int], settings: Sampling
    ) -> AsyncIterator[Step]:
        # vLLM aborts the request itself when this iteration is closed or cancelled.
        stream = self.engine.generate(
            {"prompt_token_ids": prompt_ids}, self._params(settings), request_id
        )
        prompt_sent = settings.prompt_logprobs is None
        async for output in stream:
            completion = output.outputs[0]
            reason = completion.finish_reason
            if reason is not None and reason != "length":
                reason = "stop"
            tokens = tuple(completion.token_ids)
            logprobs = None
            if settings.logprobs is not None:
                logprobs = tuple(
                    token_logprob(t, d, settings.logprobs)
                    for t, d in zip(tokens, completion.logprobs)
                )
            prompt_logprobs = None
            if not prompt_sent and output.prompt_logprobs is not None:
                prompt_logprobs = tuple(
                    None if d is None else token_logprob(t, d, settings.prompt_logprobs)
                    for t, d in zip(prompt_ids, output.prompt_logprobs)
                )
                prompt_sent = True
            yield Step(tokens, reason, logprobs=logprobs, prompt_logprobs=prompt_logprobs)

    async def loglikelihood(
        self, request_id: str, context_ids: list[int], continuation_ids: list[int]
    ) -> Loglikelihood:
        """lm-eval's `vllm` model: one generated token, the prompt's log-probabilities read at the
        continuation. Inputs longer than the context keep their last tokens (room is left for
        the one generated token); a longer continuation is scored in windows (`scoring.windows`)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        from ocx.adapters.serve.scoring import windows

        params = SamplingParams(
            max_tokens=1,
            temperature=0,
            prompt_logprobs=1,
            detokenize=False,
            ignore_eos=True,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        scored: list[TokenLogprob] = []
        parts = windows(list(context_ids), list(continuation_ids), self.context_length - 2)
        for part, window in enumerate(reversed(parts)):  # windows come from the end
            prompt = [*window.input_ids, window.targets[-1]]
            final = None
            async for output in self.engine.generate(
                {"prompt_token_ids": prompt}, params, f"{request_id}-{part}"
            ):
                final = output
            tail = list(final.prompt_logprobs)[-len(window.targets) :]
            scored += [token_logprob(t, d, 0) for t, d in zip(window.targets, tail)]
        return Loglikelihood.from_tokens(scored)

    async def abort(self, request_id: str) -> None:
        if self.engine is not None:
            await self.engine.abort(request_id)


def token_logprob(token_id: int, position: dict, top: int) -> TokenLogprob:
    """A `TokenLogprob` from vLLM's `{token_id: Logprob(logprob, rank, decoded_token)}` at one
    position (it always holds the chosen token, plus the `top` likeliest)."""
    chosen = position[token_id]
    best = sorted(
        ((tid, lp) for tid, lp in position.items() if lp.rank is not None and lp.rank <= top),
        key=lambda item: item[1].rank,
    )
    return TokenLogprob(
        token_id,
        float(chosen.logprob),
        int(chosen.rank),
        tuple((tid, float(lp.logprob)) for tid, lp in best),
    )


def build(checkpoint, options) -> VLLMEngine:
    """The registry's factory (`ocx.harness.engines`, name "vllm")."""
    engine_args = dict(options.engine_args)
    if options.dtype != "auto":
        engine_args.setdefault("dtype", options.dtype)
    return VLLMEngine(
        checkpoint.path,
        context_length=checkpoint.context_length,
        tensor_parallel_size=options.tensor_parallel_size,
        data_parallel_size=options.data_parallel_size,
        engine_args=engine_args,
    )
