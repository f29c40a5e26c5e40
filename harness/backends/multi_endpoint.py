"""Several OpenAI-compatible servers as one eval backend (`ocx eval --endpoint A --endpoint B`).

Each endpoint gets its own `OpenAIBackend` (its own connections, `concurrency` requests in
flight) and all of them pull from one shared queue of requests: an endpoint takes the next
request when one of its requests finishes, so a fast server takes more and a slow one fewer
(least outstanding requests, with no tuning). A request that fails for a reason that is the
server's (connection refused or dropped, timeout, 5xx, 429, malformed body, after the client's
own retries) goes back to the queue for another endpoint; an endpoint that fails
`dead_after` requests in a row is taken out. Requests the server refuses as such (400, 401,
404) fail as they would with one endpoint. Every answer is reported on the caller's thread.

With one endpoint this is a plain `OpenAIBackend` (see `build`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Sequence

from ocx.harness.backends import ErrorCallback, Request, ResultCallback
from ocx.harness.backends.openai_http import OpenAIBackend

log = logging.getLogger("ocx.eval")


def server_fault(exc: BaseException) -> bool:
    """True when another server may well answer the same request (the fault is this server's)."""
    status = getattr(exc, "status", None)
    if not isinstance(status, int):
        status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status == 429 or status >= 500
    return True  # no HTTP status: connection, timeout or a body that is not a chat completion


class _Feed:
    """One endpoint's view of the shared queue: ends as soon as the endpoint is taken out."""

    def __init__(self, router: MultiEndpointBackend, endpoint: int):
        self.router, self.endpoint = router, endpoint

    def __iter__(self):
        return self

    def __next__(self) -> Request:
        router = self.router
        with router._lock:
            if not router._alive[self.endpoint]:
                raise StopIteration
            # The first request this endpoint has not failed already (a retry goes to another one).
            for position, request in enumerate(router._queue):
                if self.endpoint not in router._tried.get(request.index, ()):
                    del router._queue[position]
                    router.sent[self.endpoint] += 1
                    router._outstanding[request.index] = self.endpoint
                    return request
            raise StopIteration


class MultiEndpointBackend:
    pulls_requests = False  # a list: requests are handed out from the endpoints' threads
    takes_messages_json = True  # requests go to `OpenAIBackend`s unchanged

    def __init__(
        self,
        endpoints: Sequence[str],
        model_name: str,
        *,
        dead_after: int = 3,
        retries_per_endpoint: int = 2,
        **client_options,
    ):
        if len(endpoints) < 2:
            raise ValueError(
                "MultiEndpointBackend needs at least two endpoints (use OpenAIBackend for one)"
            )
        self.backends = [
            OpenAIBackend(url, model_name, max_retries=retries_per_endpoint, **client_options)
            for url in endpoints
        ]
        self.model_name = model_name
        self.dead_after = dead_after
        self.sent = [0] * len(self.backends)
        """Requests handed to each endpoint (retries on another endpoint count there too)."""
        self._lock = threading.Lock()
        self._alive = [True] * len(self.backends)
        self._failures = [0] * len(self.backends)
        self._queue: deque[Request] = deque()
        self._tried: dict[int, set[int]] = {}
        """Request index -> endpoints that failed it through a fault of their own."""
        self._outstanding: dict[int, int] = {}
        """Request index -> the endpoint it was handed to, until that endpoint reports on it."""

    @property
    def timeout(self) -> float:
        return self.backends[0].timeout

    def identity(self) -> dict:
        # The same model behind several servers: the set of servers, not their order, names it.
        return {
            "kind": "openai",
            "base_url": sorted(b.base_url for b in self.backends),
            "model": self.model_name,
        }

    def close(self) -> None:
        for backend in self.backends:
            backend.close()

    def generate(
        self, requests: Sequence[Request], on_result: ResultCallback, on_error: ErrorCallback
    ) -> None:
        self._queue, self._tried, self._outstanding = deque(requests), {}, {}
        last_error: dict[int, BaseException] = {}
        while self._queue:
            alive = [i for i, ok in enumerate(self._alive) if ok]
            if not alive:
                self._fail_rest(on_error)
                return
            retry = self._round(alive, on_result, on_error, last_error)
            for request in self._queue:  # left by every live endpoint: each has failed it already
                on_error(request.index, last_error[request.index])
            self._queue = deque(retry)

    def _round(
        self,
        alive: list[int],
        on_result: ResultCallback,
        on_error: ErrorCallback,
        last_error: dict[int, BaseException],
    ) -> list[Request]:
        """Run the queue over the `alive` endpoints; returns the requests to send again."""
        events: queue.SimpleQueue = queue.SimpleQueue()
        by_index = {r.index: r for r in self._queue}
        threads = [
            threading.Thread(
                target=self._run_endpoint, args=(i, events), daemon=True, name=f"ocx-endpoint-{i}"
            )
            for i in alive
        ]
        for thread in threads:
            thread.start()
        retry: list[Request] = []
        finished = 0
        while finished < len(threads):
            kind, endpoint, index, payload = events.get()
            if kind != "done":
                self._outstanding.pop(index, None)
            if kind == "done":
                finished += 1
            elif kind == "ok":
                on_result(index, payload)
            elif self._should_retry(endpoint, payload, index):
                last_error[index] = payload
                retry.append(by_index[index])
            else:
                on_error(index, payload)
        for thread in threads:
            thread.join()
        # Taken by an endpoint whose client broke before answering them: another endpoint's turn.
        for index, endpoint in list(self._outstanding.items()):
            del self._outstanding[index]
            lost = ConnectionError(f"{self.backends[endpoint].base_url} stopped before answering")
            if self._should_retry(endpoint, lost, index):
                last_error[index] = lost
                retry.append(by_index[index])
            else:
                on_error(index, lost)
        return retry

    def _run_endpoint(self, endpoint: int, events: queue.SimpleQueue) -> None:
        def ok(index: int, text: str) -> None:
            with self._lock:
                self._failures[endpoint] = 0
            events.put(("ok", endpoint, index, text))

        def failed(index: int, exc: BaseException) -> None:
            if server_fault(exc):
                self._count_failure(endpoint, exc)
            events.put(("error", endpoint, index, exc))

        try:
            self.backends[endpoint].generate(_Feed(self, endpoint), ok, failed)
        except (
            Exception
        ) as exc:  # the client itself broke: this endpoint is out, its requests go elsewhere
            log.error("endpoint %s failed: %s", self.backends[endpoint].base_url, exc)
            with self._lock:
                self._alive[endpoint] = False
        finally:
            events.put(("done", endpoint, -1, None))

    def _count_failure(self, endpoint: int, exc: BaseException) -> None:
        with self._lock:
            self._failures[endpoint] += 1
            if self._alive[endpoint] and self._failures[endpoint] >= self.dead_after:
                self._alive[endpoint] = False
                log.warning(
                    "endpoint %s failed %d requests in a row (%s); "
                    "sending its requests to the others",
                    self.backends[endpoint].base_url,
                    self._failures[endpoint],
                    exc,
                )

    def _should_retry(self, endpoint: int, exc: BaseException, index: int) -> bool:
        """Whether a failed request goes to another endpoint: a server fault, with a live endpoint
        that has not failed it yet (so each request tries each endpoint at most once)."""
        if not server_fault(exc):
            return False
        with self._lock:
            tried = self._tried.setdefault(index, set())
            tried.add(endpoint)
            return any(ok and e not in tried for e, ok in enumerate(self._alive))

    def _fail_rest(self, on_error: ErrorCallback) -> None:
        error = ConnectionError(
            f"every endpoint failed ({', '.join(b.base_url for b in self.backends)})"
        )
        while self._queue:
            on_error(self._queue.popleft().index, error)


def build(checkpoint, options) -> OpenAIBackend | MultiEndpointBackend:
    """The registry's factory (`ocx.harness.engines`, name "openai")."""
    if not options.endpoints:
        raise ValueError("the openai engine needs at least one --endpoint")
    if not options.model_name:
        raise ValueError("the openai engine needs --model-name")
    client = {
        "api_key": options.api_key,
        "concurrency": options.concurrency,
        "http_client": options.http_client,
        "timeout": options.timeout,
    }
    if len(options.endpoints) == 1:
        return OpenAIBackend(options.endpoints[0], options.model_name, **client)
    return MultiEndpointBackend(options.endpoints, options.model_name, **client)
