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
from ocx.harness.sampling import ALL_FIELDS, Sampling


class VLLMEngine:
    name = "vllm"
    sampling_fields = ALL_FIELDS
    preferred_in_flight = 1024
    """Sequences eval keeps queued: vLLM's scheduler picks its own batch from them."""

    def __init__(self, model_path: str | Path, *, context_length: int, tensor_parallel_size: int = 1,
                 data_parallel_size: int = 1, engine_args: dict | None = None):
        self.model_path = Path(model_path)
        self.context_length = context_length
        self.tensor_parallel_size = tensor_parallel_size
        self.data_parallel_size = data_parallel_size
        self.engine_args = dict(engine_args or {})
        self.engine = None

    def engine_arguments(self) -> dict:
        """The keyword arguments of vLLM's `AsyncEngineArgs` (`--engine-arg` wins over the flags)."""
        return {"model": str(self.model_path), "tensor_parallel_size": self.tensor_parallel_size,
                "data_parallel_size": self.data_parallel_size, "max_model_len": self.context_length,
                "skip_tokenizer_init": True, "disable_log_stats": True, **self.engine_args}

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
        return SamplingParams(n=1, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k or -1, min_p=s.min_p,
                              repetition_penalty=s.repetition_penalty, seed=s.seed,
                              presence_penalty=s.presence_penalty, frequency_penalty=s.frequency_penalty,
                              max_tokens=s.max_tokens, stop_token_ids=list(s.stop_token_ids), ignore_eos=True,
                              detokenize=False,
                              output_kind=RequestOutputKind.DELTA if s.incremental else RequestOutputKind.FINAL_ONLY)

    async def generate(self, request_id: str, prompt_ids: list[int], settings: Sampling) -> AsyncIterator[Step]:
        # vLLM aborts the request itself when this iteration is closed or cancelled.
        stream = self.engine.generate({"prompt_token_ids": prompt_ids}, self._params(settings), request_id)
        async for output in stream:
            completion = output.outputs[0]
            reason = completion.finish_reason
            if reason is not None and reason != "length":
                reason = "stop"
            yield Step(tuple(completion.token_ids), reason)

    async def abort(self, request_id: str) -> None:
        if self.engine is not None:
            await self.engine.abort(request_id)


def build(checkpoint, options) -> VLLMEngine:
    """The registry's factory (`ocx.harness.engines`, name "vllm")."""
    engine_args = dict(options.engine_args)
    if options.dtype != "auto":
        engine_args.setdefault("dtype", options.dtype)
    return VLLMEngine(checkpoint.path, context_length=checkpoint.context_length,
                      tensor_parallel_size=options.tensor_parallel_size,
                      data_parallel_size=options.data_parallel_size, engine_args=engine_args)
