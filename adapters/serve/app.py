"""The FastAPI application: `create_app(engine, settings)`; all state lives on the app.

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
GET / (the chat page), and vLLM's tokenizer endpoints POST /tokenize, POST /detokenize,
GET /tokenizer_info.
Every error, including FastAPI's own validation and routing errors, is answered in OpenAI's
`{"error": {...}}` shape; bad input is a 4xx, never a 500. `guard.RequestGuard` checks the key
and size on the headers before any body is read; parsing and tokenizing run in a thread pool,
so a huge prompt never stalls the event loop (and with it every other client).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ocx.adapters.serve import chat, completions
from ocx.adapters.serve import tokenize as tokenizer_api
from ocx.adapters.serve.engine import Engine
from ocx.adapters.serve.guard import RequestGuard, check_api_keys
from ocx.adapters.serve.model import ServedModel
from ocx.adapters.serve.protocol import (
    ApiError,
    CompletionRequest,
    DetokenizeRequest,
    TokenizeRequest,
    parse_request,
    validation_error,
)
from ocx.harness.sampling import honoured_fields

log = logging.getLogger("ocx.serve")


@dataclass
class ServeSettings:
    model: ServedModel
    api_keys: tuple[str, ...] = ()
    """Accepted bearer keys; empty: no authentication."""
    max_pending: int = 256
    """Sequences (running + waiting) beyond which new requests get 503."""
    log_requests: bool = True
    """One summary line per request on the `ocx.serve` logger."""
    request_log: logging.Logger | None = None
    """Where full request/response records go as JSON lines (--log-file)."""
    max_request_bytes: int = 8 * 2**20
    """Largest request body; a larger one gets 413 (by Content-Length, or once that much came)."""
    read_timeout: float = 10.0
    """Seconds a client may take to send its headers, or pause while sending its body."""
    prepare_threads: int = 4
    """Threads that parse and tokenize requests, off the event loop."""

    def __post_init__(self) -> None:
        check_api_keys(self.api_keys)
        if self.max_request_bytes < 1 or self.read_timeout <= 0 or self.prepare_threads < 1:
            raise ValueError("max_request_bytes, read_timeout and prepare_threads must be positive")


@dataclass
class _State:
    engine: Engine
    settings: ServeSettings
    pending: int = 0
    """Sequences reserved by requests in flight; every path out of a request gives them back."""
    started: float = field(default_factory=time.time)
    pool: ThreadPoolExecutor | None = None


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError):
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError):
        return _error_response(validation_error(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        kind = "not_found" if exc.status_code == 404 else "invalid_request"
        return _error_response(ApiError(exc.status_code, str(exc.detail), code=kind))

    @app.exception_handler(Exception)
    async def server_fault(_: Request, exc: Exception):
        log.exception("unhandled server error")  # the detail goes to the log, not to the client
        return _error_response(
            ApiError(500, "internal server error (see the server log)", type="server_error")
        )


def create_app(engine: Engine, settings: ServeSettings) -> FastAPI:
    """The server application for one engine and model."""
    state = _State(engine, settings)
    honoured = honoured_fields(
        engine
    )  # sampling fields the engine honours; others are refused with a 400

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        state.pool = ThreadPoolExecutor(
            settings.prepare_threads, thread_name_prefix="ocx-serve-prepare"
        )
        try:
            await engine.start()
            yield
        finally:
            await engine.shutdown()
            state.pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="ocx serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.ocx = state
    _install_error_handlers(app)
    app.add_middleware(
        RequestGuard,
        api_keys=settings.api_keys,
        max_request_bytes=settings.max_request_bytes,
        read_timeout=settings.read_timeout,
    )
    page = (resources.files("ocx.adapters.serve") / "static" / "index.html").read_text(
        encoding="utf-8"
    )

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict:
        return {
            "status": "ok",
            "engine": engine.name,
            "model": settings.model.names[0],
            "pending": state.pending,
        }

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [
                _model_card(settings.model, name, state.started, engine.name)
                for name in settings.model.names
            ],
        }

    model = settings.model
    chat_api = _Endpoint(
        prepare=lambda body: chat.prepare(parse_request(body), model, honoured),
        complete=chat.complete,
        stream=chat.stream,
        output=lambda choice: choice["message"]["content"],
        delta=lambda choice: choice.get("delta", {}).get("content") or "",
    )
    completions_api = _Endpoint(
        prepare=lambda body: completions.prepare(
            parse_request(body, CompletionRequest), model, honoured, settings.max_pending
        ),
        complete=completions.complete,
        stream=completions.stream,
        output=lambda choice: choice["text"],
        delta=lambda choice: choice.get("text") or "",
    )

    async def in_pool(work, *args):
        return await asyncio.get_running_loop().run_in_executor(state.pool, work, *args)

    @app.post("/tokenize")
    async def tokenize(request: Request) -> dict:
        body = await request.body()
        return await in_pool(
            lambda: tokenizer_api.tokenize(parse_request(body, TokenizeRequest), model)
        )

    @app.post("/detokenize")
    async def detokenize(request: Request) -> dict:
        body = await request.body()
        return await in_pool(
            lambda: tokenizer_api.detokenize(parse_request(body, DetokenizeRequest), model)
        )

    @app.get("/tokenizer_info")
    async def tokenizer_info() -> dict:
        return tokenizer_api.tokenizer_info(model)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await _serve(state, request, chat_api)

    @app.post("/v1/completions")
    async def text_completions(request: Request):
        return await _serve(state, request, completions_api)

    return app


@dataclass(frozen=True)
class _Endpoint:
    """What differs between the two generation routes; `_serve` does the rest for both."""

    prepare: Callable[[bytes], Any]
    """Parse, validate and tokenize a body (in a worker thread); raises ApiError."""
    complete: Callable
    stream: Callable
    output: Callable[[dict], str]
    """The text of a response choice (for the request log)."""
    delta: Callable[[dict], str]
    """The text of a streamed chunk's choice."""


async def _serve(state: _State, request: Request, api: _Endpoint):
    """Capacity, preparation off the event loop, the engine run, disconnects and the log."""
    _check_capacity(state, 1)  # before the costly part; checked again once the sequences are known
    body = await request.body()  # already read (and capped) by RequestGuard
    prep = await asyncio.get_running_loop().run_in_executor(state.pool, api.prepare, body)
    n = prep.sequences()
    _check_capacity(state, n)
    state.pending += n  # no await since the check: no other request can slip in between
    if prep.request.stream:
        return _EventStream(_logged_stream(state, prep, api), on_close=lambda: _release(state, n))
    try:
        result = await _until_disconnect(
            request, api.complete(state.engine, state.settings.model, prep)
        )
    except ApiError:
        raise
    except Exception as exc:
        raise chat.generation_error(prep.id, exc) from exc
    finally:
        state.pending -= n
    _log(state, prep, result["usage"], [api.output(c) for c in result["choices"]])
    return JSONResponse(result)


def _model_card(model: ServedModel, name: str, created: float, engine: str) -> dict:
    return {
        "id": name,
        "object": "model",
        "created": int(created),
        "owned_by": "ocx",
        "root": model.names[0],
        "model_type": model.model_type,
        "default_condition": model.template.default_condition,
        "context_length": model.context_length,
        "engine": engine,
    }


def _check_capacity(state: _State, n: int) -> None:
    if state.pending + n > state.settings.max_pending:
        raise ApiError(
            503, "The server is overloaded; retry later.", type="server_error", code="overloaded"
        )


def _release(state: _State, n: int) -> None:
    state.pending -= n


class _EventStream(StreamingResponse):
    """Server-sent events that run `on_close` however the response ends, even unstarted."""

    def __init__(self, events, on_close):
        super().__init__(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
        self._events, self._on_close = events, on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
            await self._events.aclose()  # cancels the request's sequences if still running


async def _logged_stream(state: _State, prep, api: _Endpoint):
    texts: dict[int, list[str]] = {}
    usage = None
    async for event in api.stream(state.engine, state.settings.model, prep):
        yield event
        if state.settings.request_log is not None:  # parsing every event costs; only for --log-file
            usage = _collect_event(event, texts, api) or usage
    _log(state, prep, usage, ["".join(texts[i]) for i in sorted(texts)])


def _collect_event(event: str, texts: dict[int, list[str]], api: _Endpoint) -> dict | None:
    payload = event.removeprefix("data: ").strip()
    if payload == "[DONE]":
        return None
    body = json.loads(payload)
    for choice in body.get("choices", []):
        texts.setdefault(choice["index"], []).append(api.delta(choice))
    return body.get("usage")


def _log(state: _State, prep, usage: dict | None, outputs: list[str]) -> None:
    settings = state.settings
    if settings.log_requests:
        log.info(
            "%s model=%s prompt_tokens=%d usage=%s",
            prep.id,
            prep.model_name,
            prep.prompt_tokens,
            usage,
        )
    if settings.request_log is not None:
        record = {
            "id": prep.id,
            "time": prep.created,
            "request": prep.request.model_dump(exclude_unset=True),
            "outputs": outputs,
            "usage": usage,
        }
        settings.request_log.info(json.dumps(record, ensure_ascii=False))


async def _until_disconnect(request: Request, work):
    """Await `work`; if the client disconnects first, cancel it (which aborts its sequences)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ApiError(499, "client disconnected", code="client_disconnected")
    return task.result()


async def _disconnected(request: Request) -> None:
    # The body has been read, so the next ASGI message is the disconnect (or never comes).
    while (await request.receive())["type"] != "http.disconnect":
        pass
