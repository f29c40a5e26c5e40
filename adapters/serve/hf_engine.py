"""The transformers engine: any CPU, concurrent requests batched per decode step.

A single worker thread owns the model. Requests arrive through a thread-safe queue, wait in
`waiting` until the batch has room (and, while a batch runs, a few steps for others to
arrive: `_admit_now`), are prefilled together and join the running batch; every loop
iteration is one forward pass for all running sequences (see `batching`). Results go back to
each request's asyncio queue with `loop.call_soon_threadsafe` (per token when streaming, else
once at the end). torch releases the
GIL inside its kernels, so the event loop keeps serving HTTP while the worker computes.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ocx.adapters.serve.engine import SamplingSettings, SequenceFailed, Step
from ocx.harness.logprobs import Loglikelihood
from ocx.harness.sampling import ALL_FIELDS

if TYPE_CHECKING:  # torch is imported by the worker, not by importing this module
    from ocx.adapters.serve.scoring import ScoreRequest, ScoringQueue

log = logging.getLogger("ocx.serve")

_IDLE_WAIT_S = 0.05
_GATHER_STEPS = 4
"""Decode steps that requests arriving while a batch runs may wait, to be prefilled together."""


@dataclass
class _Pending:
    request_id: str
    prompt_ids: list[int]
    settings: SamplingSettings
    emit: Callable[[Step | BaseException], None]


class TransformersEngine:
    """Dynamic batching over `AutoModelForCausalLM` in a worker thread."""

    name = "transformers"
    sampling_fields = ALL_FIELDS
    """Every `Sampling` field: top-k, min-p and the repetition penalty are transformers' own
    logits processors (see `batching.sample`)."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        pad_id: int,
        max_batch_size: int = 16,
        dtype: str = "float32",
        num_threads: int | None = None,
        device: str = "cpu",
        max_positions: int | None = None,
        score_token_budget: int = 16384,
    ):
        self.model_path = Path(model_path)
        self.device = device
        """Where weights and KV cache live ("cpu", "cuda", "cuda:1"); sampling stays on the CPU."""
        self.pad_id = pad_id
        self.max_batch_size = max_batch_size
        self.dtype = dtype
        self.num_threads = num_threads
        self.max_positions = max_positions
        """Most tokens a scored input keeps (its last ones); default: the model config's
        `max_position_embeddings`, as lm-eval's `hf` model."""
        self.score_token_budget = score_token_budget
        """Padded tokens per scoring forward pass (rows x longest row)."""
        self.model = None
        self._inbox: queue.SimpleQueue[_Pending | ScoreRequest] = queue.SimpleQueue()
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held_steps = 0
        """Decode steps the oldest waiting request has waited while a batch ran (worker only)."""
        self.active_sequences = 0
        """Sequences admitted to the running batch (written by the worker, read for /health)."""

    async def start(self) -> None:
        self.model = await asyncio.to_thread(self._load)
        self._thread = threading.Thread(target=self._run, name="ocx-serve-worker", daemon=True)
        self._thread.start()

    def _load(self):
        import torch
        from transformers import AutoModelForCausalLM

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        model = AutoModelForCausalLM.from_pretrained(
            self.model_path, dtype=getattr(torch, self.dtype)
        )
        if self.max_positions is None:
            self.max_positions = int(
                getattr(model.config.get_text_config(), "max_position_embeddings", None) or 2048
            )
        return model.to(self.device).eval()

    async def shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)

    async def generate(
        self, request_id: str, prompt_ids: list[int], settings: SamplingSettings
    ) -> AsyncIterator[Step]:
        loop = asyncio.get_running_loop()
        steps: asyncio.Queue[Step | BaseException] = asyncio.Queue()
        self._inbox.put(
            _Pending(
                request_id,
                prompt_ids,
                settings,
                lambda item: loop.call_soon_threadsafe(steps.put_nowait, item),
            )
        )
        finished = False
        try:
            while not finished:
                item = await steps.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item.finish_reason is not None
                yield item
        finally:
            if not finished:
                await self.abort(request_id)

    async def abort(self, request_id: str) -> None:
        with self._lock:
            self._cancelled.add(request_id)

    async def loglikelihood(
        self, request_id: str, context_ids: list[int], continuation_ids: list[int]
    ) -> Loglikelihood:
        """Score `continuation_ids` after `context_ids` (see `scoring`); concurrent calls share
        forward passes. Bad token IDs or an empty side raise ValueError; a failed pass,
        SequenceFailed."""
        from ocx.adapters.serve.scoring import ScoreRequest

        loop = asyncio.get_running_loop()
        result: asyncio.Future[Loglikelihood] = loop.create_future()
        self._inbox.put(
            ScoreRequest(
                request_id,
                list(context_ids),
                list(continuation_ids),
                lambda item: loop.call_soon_threadsafe(_settle, result, item),
            )
        )
        try:
            return await result
        except asyncio.CancelledError:
            await self.abort(request_id)
            raise

    # ---- worker thread -------------------------------------------------------------------
    # Failures are isolated to the sequences that cause them: a row whose sampling raises is
    # failed alone, and a forward pass that raises is retried on each half of its rows until
    # the failing rows are found (a failure is rare, so the retries cost nothing in practice).
    # Every admitted request is sure to get a last Step or an error; none can hang.

    def _run(self) -> None:
        from ocx.adapters.serve.scoring import ScoringQueue

        waiting: deque[_Pending] = deque()
        batch = None
        emitters: dict[str, Callable] = {}
        scoring = ScoringQueue(
            max_positions=self.max_positions,
            token_budget=self.score_token_budget,
            vocab_size=self.model.get_input_embeddings().num_embeddings,
        )
        while not self._stop.is_set():
            try:
                # Take cancellations before new requests: a request is always queued before its
                # abort, so every abort taken here finds its request in `waiting` or the batch.
                with self._lock:
                    cancelled, self._cancelled = self._cancelled, set()
                self._receive(waiting, scoring, block=batch is None and not scoring)
                batch = self._drop_cancelled(batch, waiting, emitters, cancelled)
                scoring.drop(cancelled)
                # One scoring pass, then one generation step: neither kind starves the other.
                if scoring:
                    self._score(scoring, scoring.next_batch())
                if self._admit_now(batch, waiting):
                    batch = self._admit(batch, waiting, emitters)
                if batch is not None:
                    batch = self._step(batch, emitters)
            except Exception:  # a bug outside any one sequence: fail what is running, keep serving
                log.exception(
                    "generation worker failed; failing %d running sequences", len(emitters)
                )
                for request_id, emit in emitters.items():
                    emit(SequenceFailed(f"generation failed for sequence {request_id}"))
                batch, emitters = None, {}
            self.active_sequences = len(batch) if batch is not None else 0
        for pending in waiting:
            emitters.setdefault(pending.request_id, pending.emit)
        for emit in emitters.values():
            emit(SequenceFailed("server is shutting down"))
        scoring.fail_all(lambda _: SequenceFailed("server is shutting down"))

    def _admit_now(self, batch, waiting: deque) -> bool:
        """Whether to prefill the waiting requests now.

        Each prefill is a forward pass of its own, and on a small model its cost is mostly the
        full lm_head weights it reads, the same as a decode step's. Requests that arrive one by
        one while a batch runs (a client cohort's next requests) are therefore gathered for up
        to `_GATHER_STEPS` steps, or until they fill the batch, and prefilled in one pass. An
        idle engine admits at once, so a lone request never waits.
        """
        if not waiting:
            self._held_steps = 0
            return False
        if batch is None:
            self._held_steps = 0
            return True
        self._held_steps += 1
        if len(batch) >= self.max_batch_size:
            return False
        if len(waiting) >= self.max_batch_size - len(batch) or self._held_steps > _GATHER_STEPS:
            self._held_steps = 0
            return True
        return False

    def _receive(self, waiting: deque, scoring: ScoringQueue, block: bool) -> None:
        try:
            if block and not waiting:
                self._route(self._inbox.get(timeout=_IDLE_WAIT_S), waiting, scoring)
            while True:
                self._route(self._inbox.get_nowait(), waiting, scoring)
        except queue.Empty:
            pass

    @staticmethod
    def _route(item, waiting: deque, scoring: ScoringQueue) -> None:
        if isinstance(item, _Pending):
            waiting.append(item)
        else:
            scoring.add(item)

    def _score(self, scoring: ScoringQueue, rows: list) -> None:
        """One scoring pass over `rows`; a pass that raises is retried on each half, so only the
        requests whose rows fail get an error."""
        from ocx.adapters.serve.scoring import forward

        try:
            values, greedy = forward(self.model, rows, self.pad_id)
        except Exception as exc:
            if len(rows) > 1:
                self._score(scoring, rows[: len(rows) // 2])
                self._score(scoring, rows[len(rows) // 2 :])
                return
            log.error("scoring failed; only the requests reading this input fail", exc_info=exc)
            scoring.fail(
                rows, lambda request_id: SequenceFailed(f"scoring failed for request {request_id}")
            )
            return
        scoring.finish(rows, values, greedy)

    def _drop_cancelled(self, batch, waiting: deque, emitters: dict, cancelled: set[str]):
        if not cancelled:
            return batch
        for pending in [p for p in waiting if p.request_id in cancelled]:
            waiting.remove(pending)
        for request_id in cancelled:
            emitters.pop(request_id, None)
        return self._keep(batch, lambda row: row.request_id not in cancelled)

    @staticmethod
    def _keep(batch, predicate):
        from ocx.adapters.serve.batching import select

        if batch is None:
            return None
        keep = [i for i, row in enumerate(batch.rows) if predicate(row)]
        if not keep:
            return None
        return batch if len(keep) == len(batch) else select(batch, keep)

    @staticmethod
    def _fail(request_id: str, emitters: dict, exc: BaseException) -> None:
        log.error("sequence %s failed; only its request fails", request_id, exc_info=exc)
        emit = emitters.pop(request_id, None)
        if emit is not None:
            emit(SequenceFailed(f"generation failed for sequence {request_id}"))

    def _admit(self, batch, waiting: deque, emitters: dict):
        from ocx.adapters.serve.batching import Sequence, merge

        room = self.max_batch_size - (len(batch) if batch is not None else 0)
        if room <= 0 or not waiting:
            return batch
        rows = []
        for pending in [waiting.popleft() for _ in range(min(room, len(waiting)))]:
            emitters[pending.request_id] = pending.emit
            try:
                rows.append(
                    Sequence.create(pending.request_id, pending.prompt_ids, pending.settings)
                )
            except Exception as exc:
                self._fail(pending.request_id, emitters, exc)
        fresh = self._isolated(self._prefill, rows, emitters)
        if fresh is None:
            return batch
        fresh = self._sample_and_emit(*fresh, emitters)
        if fresh is None:
            return batch
        return fresh if batch is None else merge(batch, fresh)

    def _prefill(self, rows: list):
        """One prefill pass; two when only some rows want their prompt's log-probabilities, so
        the others never pay for logits at every position (`[rows, length, vocab]` floats)."""
        import torch

        from ocx.adapters.serve.batching import merge, prefill

        asking = [r for r in rows if r.settings.prompt_logprobs is not None]
        if not asking or len(asking) == len(rows):
            return prefill(self.model, rows, self.pad_id)
        (a, logits_a), (b, logits_b) = (
            prefill(self.model, part, self.pad_id)
            for part in (asking, [r for r in rows if r.settings.prompt_logprobs is None])
        )
        return merge(a, b), torch.cat([logits_a, logits_b])

    def _decode(self, batch, rows: list):
        """One decode step for `rows`, all or some (in order) of the batch's rows."""
        from ocx.adapters.serve.batching import decode_step, select

        if len(rows) != len(batch):
            index = {id(row): i for i, row in enumerate(batch.rows)}
            batch = select(batch, [index[id(row)] for row in rows])
        return decode_step(self.model, batch)

    def _step(self, batch, emitters: dict):
        result = self._isolated(lambda rows: self._decode(batch, rows), batch.rows, emitters)
        return None if result is None else self._sample_and_emit(*result, emitters)

    def _isolated(self, forward, rows: list, emitters: dict):
        """`forward(rows)` -> (batch, logits); on failure halves are retried, bad rows dropped."""
        import torch

        from ocx.adapters.serve.batching import merge

        if not rows:
            return None
        try:
            return forward(rows)
        except Exception as exc:
            if len(rows) == 1:
                self._fail(rows[0].request_id, emitters, exc)
                return None
        halves = [
            self._isolated(forward, part, emitters)
            for part in (rows[: len(rows) // 2], rows[len(rows) // 2 :])
        ]
        halves = [h for h in halves if h is not None]
        if not halves:
            return None
        if len(halves) == 1:
            return halves[0]
        (a, logits_a), (b, logits_b) = halves
        return merge(a, b), torch.cat([logits_a, logits_b])

    def _sample_and_emit(self, batch, logits, emitters: dict):
        from ocx.adapters.serve.batching import sample, token_logprobs

        done = set()
        logprobs = _raw_logprobs(batch.rows, logits)
        for i, row in enumerate(batch.rows):
            try:
                token = sample(logits[i], row)
                if i in logprobs:
                    row.logprobs.extend(
                        token_logprobs(logprobs[i][None], [token], row.settings.logprobs)
                    )
            except Exception as exc:  # this row's sampling only: the others go on
                self._fail(row.request_id, emitters, exc)
                done.add(row.request_id)
                continue
            reason = row.append(token)
            emit = emitters.get(row.request_id)
            # A caller that needs only the result gets all tokens in one last step: no event-loop
            # wake-up and no incremental detokenizing per token (vLLM's FINAL_ONLY).
            if emit is not None and (row.settings.incremental or reason is not None):
                emit(_step(row, reason))
            if reason is not None:
                done.add(row.request_id)
                emitters.pop(row.request_id, None)
        return self._keep(batch, lambda row: row.request_id not in done)


def _settle(future: asyncio.Future, item) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if isinstance(item, BaseException):
        future.set_exception(item)
    else:
        future.set_result(item)


def _raw_logprobs(rows: list, logits) -> dict:
    """Row index -> log-softmax of its raw logits (before penalties and temperature, as vLLM
    reports them), for the rows that ask only: the others pay nothing."""
    import torch

    asking = [i for i, row in enumerate(rows) if row.settings.logprobs is not None]
    if not asking:
        return {}
    rows_logprobs = torch.log_softmax(logits[asking].float(), dim=-1)
    return dict(zip(asking, rows_logprobs))


def _step(row, reason) -> Step:
    """The step to send `row` after its newest token: that token when streaming, else all of them;
    with their log-probabilities, and the prompt's on the first step, when the row asked."""
    first = len(row.generated) == 1 or not row.settings.incremental
    count = 1 if row.settings.incremental else len(row.generated)
    return Step(
        tuple(row.generated[-count:]),
        reason,
        logprobs=tuple(row.logprobs[-count:]) if row.settings.logprobs is not None else None,
        prompt_logprobs=row.prompt_logprobs if first else None,
    )
