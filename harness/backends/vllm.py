"""The vLLM offline engine (`LLM.generate`), fed ocx's prompt token IDs.

vLLM never tokenizes or detokenizes here: prompts are `TokensPrompt`s built by ocx's template
and exact tokenizer, generation stops at the template's end-of-turn token (vLLM's own EOS is
ignored, as OpenChat does), and the generated IDs are decoded by ocx's tokenizer, so answers
match the transformers backend token for token under greedy decoding. Requests go in chunks
so that answers reach the cache while a long run is still going. vllm loads when first used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ocx.harness.backends import ErrorCallback, Request, ResultCallback, Sampling
from ocx.harness.backends.local import LocalModel


class VLLMBackend:
    def __init__(self, path: str | Path, model_type: str, *, chunk_size: int = 512, engine_args: dict | None = None):
        self.local = LocalModel(path, model_type)
        self.chunk_size = chunk_size
        self.engine_args = dict(engine_args or {})
        self._llm = None

    def identity(self) -> dict:
        return self.local.identity("vllm")

    def close(self) -> None:
        self._llm = None

    def _engine(self):
        if self._llm is None:
            from vllm import LLM

            args = {"max_model_len": self.local.max_positions(), **self.engine_args}
            self._llm = LLM(model=str(self.local.path), skip_tokenizer_init=True, **args)
        return self._llm

    def _params(self, sampling: Sampling, prompt_len: int, limit: int):
        from vllm import SamplingParams

        return SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed,
                              max_tokens=max(1, min(sampling.max_tokens, limit - prompt_len)),
                              stop_token_ids=[self.local.eot_id], ignore_eos=True, detokenize=False)

    def generate(self, requests: Sequence[Request], on_result: ResultCallback, on_error: ErrorCallback) -> None:
        from vllm.inputs import TokensPrompt

        llm = self._engine()
        limit = self.local.max_positions()
        for start in range(0, len(requests), self.chunk_size):
            chunk = requests[start:start + self.chunk_size]
            prompts = [self.local.prompt_ids(r, limit) for r in chunk]
            params = [self._params(r.sampling, len(p), limit) for r, p in zip(chunk, prompts)]
            outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
            for r, output in zip(chunk, outputs):
                on_result(r.index, self.local.answer(list(output.outputs[0].token_ids), r.sampling))
