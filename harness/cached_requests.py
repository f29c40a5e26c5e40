"""The cached request loop: every driver's requests go through the response cache the same way.

The runner (single-prompt suites) and judged suites (MT-Bench's model turns and its judge) all
ask a backend for many answers. One loop does it for all of them:

* an answer already in the cache is reused (and its progress bar advanced), never asked again;
* the same key twice in one run is asked once, and every owner gets the answer;
* each answer is put in the cache the moment it arrives (committed in small batches, see
  harness/cache.py), so a killed or failed run loses at most one batch;
* retries are the backend's (the HTTP clients retry with backoff); a request that still fails is
  collected, the others carry on, and the loop then raises :class:`RequestsFailedError` saying
  how many failed and that the answered ones are cached for the next run.

A backend that pulls its requests one at a time (``pulls_requests``, the HTTP client) gets them
lazily, so the first are in flight while later ones are still being planned.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any


class RequestsFailedError(RuntimeError):
    """Some requests failed after every retry; the answered ones are cached for the next run."""


class CachedRequests:
    """One run's requests to one backend through `cache`.

    For each key: :meth:`lookup` (a span at a time) then :meth:`add`, which returns a request
    index when the key needs asking; :meth:`send` sends the requests made with those indices.
    ``on_answer(owners, answer)`` is called as each answer arrives, with the owners of its key.
    Answers are text; a backend whose answers are objects (log-likelihoods) gives `encode`
    (answer -> the cached text) and `decode` (back; a row it cannot read is asked again).
    """

    def __init__(
        self,
        cache,
        progress=None,
        on_answer: Callable[[list, Any], None] | None = None,
        label: str = "",
        *,
        what: str = "requests",
        encode: Callable[[Any], str] | None = None,
        decode: Callable[[str], Any] | None = None,
    ):
        self.cache = cache
        self.progress = progress
        self.on_answer = on_answer
        self.label = label
        """Said before the failure message, e.g. "mt_bench judge"."""
        self.what = what
        """What the requests are, in the failure message ("log-likelihood requests")."""
        self.encode = encode
        self.decode = decode
        self.answers: dict[str, Any] = {}
        self.cached: set[str] = set()
        """Keys answered from the cache."""
        self._index: dict[str, int] = {}
        # request index -> (key, cache request column, progress tasks, owners)
        self._requests: list[tuple[str, str, list, list]] = []
        self.errors: list[tuple[int, BaseException]] = []

    @property
    def sent(self) -> int:
        """Requests made (each key once), answered or not."""
        return len(self._requests)

    def lookup(self, keys: Iterable[str]) -> None:
        """Take the answers to `keys` that are in the cache (a key already asked in this run is a
        duplicate, not a cached answer)."""
        found = self.cache.get_many(keys)
        if self._index:
            found = {k: v for k, v in found.items() if k not in self._index}
        if self.decode is not None:
            found = self._decoded(found)
        self.answers.update(found)
        self.cached.update(found)

    def _decoded(self, rows: dict[str, str]) -> dict[str, Any]:
        found = {}
        for key, value in rows.items():
            try:
                found[key] = self.decode(value)
            except (ValueError, KeyError, TypeError):
                pass  # a damaged row: asked again, and the row replaced
        return found

    def add(self, key: str, task, owner, request_json: str) -> int | None:
        """The index of a new request for `key`, or None when it needs none: answered (from the
        cache, or earlier in this run; its progress `task` is advanced) or already asked (`owner`
        and `task` then share that request's answer). `request_json` is the cache's record of
        what was asked."""
        if key in self.answers:
            self.advance(task)
            return None
        index = self._index.get(key)
        if index is not None:
            self._requests[index][2].append(task)
            self._requests[index][3].append(owner)
            return None
        self._index[key] = len(self._requests)
        self._requests.append((key, request_json, [task], [owner]))
        return len(self._requests) - 1

    def advance(self, task) -> None:
        if task is not None and self.progress is not None:
            self.progress.advance(task)

    def _on_result(self, index: int, text: Any) -> None:
        key, request_json, tasks, owners = self._requests[index]
        stored = text if self.encode is None else self.encode(text)
        self.cache.put(key, stored, request_json=request_json)
        self.answers[key] = text
        for task in tasks:
            self.advance(task)
        if self.on_answer is not None:
            self.on_answer(owners, text)

    def _on_error(self, index: int, exc: BaseException) -> None:
        self.errors.append((index, exc))

    def send(self, generate: Callable, requests: Iterable, *, pulls: bool = False) -> int:
        """Send `requests` with ``generate(requests, on_result, on_error)`` (a backend's
        ``generate``); returns how many were made. Nothing to send (all cached): no backend call
        at all. Raises RequestsFailedError when any failed after the backend's retries."""
        if not pulls:
            requests = list(requests)
        stream: Iterator = iter(requests)
        first = next(stream, None)
        try:
            if first is not None:
                generate(
                    itertools.chain([first], stream) if pulls else requests,
                    self._on_result,
                    self._on_error,
                )
                left = list(stream) if pulls else []  # a backend that stopped pulling early
                if left:
                    generate(left, self._on_result, self._on_error)
        finally:
            self.cache.flush()  # every answer received is on disk, even if the run fails now
        self.raise_failures()
        return self.sent

    def raise_failures(self) -> None:
        if not self.errors:
            return
        first = "; ".join(f"{type(e).__name__}: {e}" for _, e in self.errors[:3])
        prefix = f"{self.label}: " if self.label else ""
        raise RequestsFailedError(
            f"{prefix}{len(self.errors)} of {self.sent} {self.what} failed ({first}); "
            f"the {self.sent - len(self.errors)} answered are cached: run again to retry"
        )
