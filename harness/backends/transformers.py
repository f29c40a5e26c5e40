"""transformers on CPU or GPU: the embedded default for local checkpoints.

Batched `generate` from ocx's prompt token IDs, left-padded, stopping at the template's end of
turn. Requests are sorted by prompt length so a batch wastes little padding; each answer is
handed to the runner as soon as its batch finishes. torch and transformers load in `generate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ocx.harness.backends import ErrorCallback, Request, ResultCallback, Sampling
from ocx.harness.backends.local import LocalModel


class TransformersBackend:
    def __init__(self, path: str | Path, model_type: str, *, batch_size: int = 8, device: str | None = None,
                 dtype: str = "auto"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.local = LocalModel(path, model_type)
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self._model = None

    def identity(self) -> dict:
        return self.local.identity("transformers")

    def close(self) -> None:
        self._model = None

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
            model = AutoModelForCausalLM.from_pretrained(self.local.path, dtype=dtype)
            self._model = model.to(device).eval()
        return self._model

    def generate(self, requests: Sequence[Request], on_result: ResultCallback, on_error: ErrorCallback) -> None:
        model = self._load()
        limit = self.local.max_positions()
        prompts = {r.index: self.local.prompt_ids(r, limit) for r in requests}
        groups: dict[Sampling, list[Request]] = {}
        for r in requests:
            groups.setdefault(r.sampling, []).append(r)
        for sampling, group in groups.items():
            # Longest first: an out-of-memory error shows up in the first batch, not after an hour.
            group.sort(key=lambda r: -len(prompts[r.index]))
            for start in range(0, len(group), self.batch_size):
                batch = group[start:start + self.batch_size]
                outputs = self._generate_batch(model, [prompts[r.index] for r in batch], sampling, limit)
                for r, generated in zip(batch, outputs):
                    on_result(r.index, self.local.answer(generated, sampling))

    def _generate_batch(self, model, prompts: list[list[int]], sampling: Sampling, limit: int) -> list[list[int]]:
        import torch

        width = max(len(p) for p in prompts)
        pad = self.local.eot_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
        # Each prompt may grow to the context limit. A batch runs until its largest budget is
        # spent and each row is cut to its own, so a long prompt never shortens a short one's
        # answer (positions come from the attention mask, so padding costs no positions).
        budgets = [max(1, min(sampling.max_tokens, limit - len(p))) for p in prompts]
        options = dict(max_new_tokens=max(budgets), eos_token_id=self.local.eot_id, pad_token_id=pad)
        if sampling.temperature > 0:
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            options.update(do_sample=False, temperature=None, top_p=None)
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=mask, **options)
        return [row[width:width + budget].tolist() for row, budget in zip(out, budgets)]
