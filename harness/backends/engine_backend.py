"""Eval's `Backend` over a token-streaming `Engine`: the very engine object `ocx serve` runs.

`ocx eval` hands over many requests at once; this adapter encodes each prompt with ocx's
template and tokenizer, submits up to `max_in_flight` sequences to the engine together (the
engine batches them: continuous batching in the transformers engine, vLLM's scheduler in
vLLM), and decodes each finished sequence into an answer. The engine runs on its own event
loop in a background thread, started once and kept across `generate` calls (vLLM's async
engine is bound to the loop it starts on); results and callbacks stay on the caller's
thread, so the runner's cache (SQLite, one thread) is only touched there.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import replace

from ocx.harness.backends import ErrorCallback, Request, ResultCallback
from ocx.harness.backends.local import LocalModel
from ocx.harness.logprobs import Loglikelihood, LoglikelihoodRequest
from ocx.harness.sampling import honoured_fields


class UnsupportedSampling(ValueError):
    """A request sets a sampling field the engine cannot honour."""


class ScoringUnsupported(ValueError):
    """The engine has no `loglikelihood` method (it can only generate)."""


class EngineBackend:
    pulls_requests = True  # requests are taken one at a time, on the caller's thread

    def __init__(self, engine, local: LocalModel, *, max_in_flight: int = 256):
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.engine = engine
        self.local = local
        self.max_in_flight = max_in_flight
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def identity(self) -> dict:
        return self.local.identity(self.engine.name)

    def generate(
        self, requests: Iterable[Request], on_result: ResultCallback, on_error: ErrorCallback
    ) -> None:
        loop = self._start()
        finished: queue.SimpleQueue[tuple[Request, Future]] = queue.SimpleQueue()
        in_flight = 0
        for request in requests:
            while in_flight >= self.max_in_flight:
                in_flight -= self._deliver(finished.get(), on_result, on_error)
            try:
                prompt, settings = self._prepare(request)
            except Exception as exc:  # this request only (its sampling or its prompt)
                on_error(request.index, exc)
                continue
            future = asyncio.run_coroutine_threadsafe(self._tokens(prompt, settings), loop)
            future.add_done_callback(lambda done, r=request: finished.put((r, done)))
            in_flight += 1
        while in_flight:
            in_flight -= self._deliver(finished.get(), on_result, on_error)

    def loglikelihood(
        self,
        requests: Iterable[LoglikelihoodRequest],
        on_result: Callable[[int, Loglikelihood], None],
        on_error: Callable[[int, BaseException], None],
    ) -> None:
        """Score every request with the engine's `loglikelihood`, up to `max_in_flight` at once
        (the engine batches them), calling `on_result(index, Loglikelihood)` or
        `on_error(index, exception)` once each, on this thread, as each is done."""
        if not callable(getattr(self.engine, "loglikelihood", None)):
            raise ScoringUnsupported(
                f"the {self.engine.name} engine cannot score log-likelihoods "
                "(it has no loglikelihood method); use --scoring generate or another engine"
            )
        loop = self._start()
        finished: queue.SimpleQueue[tuple[int, Future]] = queue.SimpleQueue()
        in_flight = 0
        for request in requests:
            while in_flight >= self.max_in_flight:
                in_flight -= _deliver_score(finished.get(), on_result, on_error)
            call = self.engine.loglikelihood(
                f"score-{next(self._ids)}",
                list(request.context_ids),
                list(request.continuation_ids),
            )
            future = asyncio.run_coroutine_threadsafe(call, loop)
            future.add_done_callback(lambda done, i=request.index: finished.put((i, done)))
            in_flight += 1
        while in_flight:
            in_flight -= _deliver_score(finished.get(), on_result, on_error)

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.engine.shutdown(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._loop = self._thread = None

    def _start(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name=f"ocx-{self.engine.name}-engine", daemon=True
            )
            thread.start()
            try:
                asyncio.run_coroutine_threadsafe(self.engine.start(), loop).result()
            except BaseException:
                loop.call_soon_threadsafe(loop.stop)
                thread.join()
                loop.close()
                raise
            self._loop, self._thread = loop, thread
        return self._loop

    def _prepare(self, request: Request):
        sampling = request.sampling
        ignored = sampling.unsupported(honoured_fields(self.engine))
        if ignored:
            raise UnsupportedSampling(
                f"the {self.engine.name} engine does not support {', '.join(ignored)}"
            )
        limit = self.local.max_positions()
        prompt = self.local.prompt_ids(request, limit)
        # Each answer may grow to the context limit; the stop strings are cut afterwards.
        settings = replace(
            sampling,
            max_tokens=max(1, min(sampling.max_tokens, limit - len(prompt))),
            stop_token_ids=(self.local.eot_id,),
            incremental=False,
        )
        return prompt, settings

    async def _tokens(self, prompt: list[int], settings) -> list[int]:
        tokens: list[int] = []
        async for step in self.engine.generate(f"eval-{next(self._ids)}", prompt, settings):
            tokens.extend(step.token_ids)
        return tokens

    def _deliver(
        self, item: tuple[Request, Future], on_result: ResultCallback, on_error: ErrorCallback
    ) -> int:
        request, future = item
        try:
            tokens = future.result()
        except Exception as exc:
            on_error(request.index, exc)
        else:
            on_result(request.index, self.local.answer(tokens, request.sampling))
        return 1


def _deliver_score(item: tuple[int, Future], on_result, on_error) -> int:
    index, future = item
    try:
        result = future.result()
    except Exception as exc:
        on_error(index, exc)
    else:
        on_result(index, result)
    return 1
