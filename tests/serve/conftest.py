"""Fixtures for the server tests: a tiny random checkpoint and in-process servers on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("transformers")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vllm_tiny_checkpoint(folder: Path, tokenizer_file: Path) -> Path:
    """A tiny openchat_3.5 checkpoint vLLM's CPU attention accepts (head size 64; it needs 32+)."""
    from ocx.adapters.hf.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(
        folder,
        tokenizer_file,
        "openchat_3.5",
        hidden_size=128,
        intermediate_size=256,
        num_attention_heads=2,
        num_key_value_heads=1,
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, mistral_tokenizer_file) -> Path:
    from ocx.adapters.hf.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(
        tmp_path_factory.mktemp("serve") / "tiny", mistral_tokenizer_file, "openchat_3.5"
    )


@pytest.fixture(scope="session")
def served_model(tiny_checkpoint):
    from ocx.adapters.serve.model import load_served_model

    return load_served_model(str(tiny_checkpoint), served_names=("tiny-chat",))


def hf_greedy(model, prompt_ids: list[int], steps: int, eot: int) -> list[int]:
    """transformers' own greedy continuation of `prompt_ids`: the reference engines must match."""
    import torch

    # An explicit mask: with pad == EOT, generate() would otherwise mask the prompt's EOT tokens.
    ids = torch.tensor([prompt_ids])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=steps,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=eot,
    )
    return out[0, len(prompt_ids) :].tolist()


def transformers_engine(model, **kwargs):
    from ocx.adapters.serve.hf_engine import TransformersEngine

    return TransformersEngine(model.path, pad_id=model.stop_token_ids[0], **kwargs)


@contextlib.contextmanager
def running_server(engine, model, **settings):
    """Serve `create_app(engine, ...)` with uvicorn in a thread; yields the base URL."""
    import uvicorn

    from ocx.adapters.serve.app import ServeSettings, create_app
    from ocx.adapters.serve.server import server_config

    settings = ServeSettings(model=model, log_requests=False, **settings)
    app = create_app(engine, settings)
    port = free_port()
    server = uvicorn.Server(
        server_config(
            app,
            host="127.0.0.1",
            port=port,
            read_timeout=settings.read_timeout,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


@pytest.fixture(scope="session")
def server_url(served_model):
    """One transformers-engine server shared by the API tests."""
    with running_server(transformers_engine(served_model, max_batch_size=64), served_model) as url:
        yield url


@pytest.fixture
def client(server_url):
    from openai import OpenAI

    with OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0, timeout=60) as c:
        yield c


@contextlib.contextmanager
def server_process(
    cmd: list[str], port: int, start_timeout: float = 300, pids: list[int] | None = None
):
    """Run a server command in its own process group; yield its URL once /health answers.

    Output goes to a file, not a pipe, so a chatty server can never block on a full pipe.
    `pids`, when given, receives the server's process id (benchmarks read its CPU time).
    """

    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        if pids is not None:
            pids.append(proc.pid)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout
            while not _healthy(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(
                        f"{' '.join(cmd[:3])} did not start (exit {proc.poll()}):\n"
                        f"{log.read()[-4000:]}"
                    )
                time.sleep(1)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
