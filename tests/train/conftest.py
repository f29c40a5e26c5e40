"""Fixtures for the trainer tests: a tiny random Llama (in memory or as an HF folder) and a
small tokenized C-RLFT dataset, all built offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import child_env

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def tiny_llama(vocab_size: int = 97, attention: str = "sdpa", seed: int = 0, **overrides):
    """A random 2-layer Llama from a config (no download), fp32, without a KV cache."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    settings = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    settings.update(overrides)
    torch.manual_seed(seed)
    lm = AutoModelForCausalLM.from_config(
        LlamaConfig(vocab_size=vocab_size, **settings), attn_implementation=attention
    )
    lm.config.use_cache = False
    return lm


def clean_env() -> dict:
    """The environment for a child launcher: without the in-process group's rank/port settings,
    one OpenMP thread per rank."""
    return child_env(OMP_NUM_THREADS="1")


def run_cli(
    args: list[str], *, nproc: int = 1, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`ocx train ARGS` in a child process; with nproc > 1 under torchrun (gloo on CPU)."""
    if nproc > 1:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(nproc),
            "--master_port",
            str(_free_port()),
            "-m",
            "ocx.adapters.train",
            *args,
        ]
    else:
        cmd = [sys.executable, "-m", "ocx.adapters.train", *args]
    return subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_run_inputs(tmp_path_factory, mistral_tokenizer_file) -> tuple[Path, Path]:
    """(HF folder of a tiny random Llama with OpenChat 3.5's tokenizer, tokenized dataset)."""
    from ocx.adapters.hf.tiny import build_tiny_checkpoint
    from ocx.harness.data.writer import TokenizeJob, tokenize_files
    from ocx.testing.conversations import sharegpt_like, write_jsonl

    root = tmp_path_factory.mktemp("train_inputs")
    model = build_tiny_checkpoint(
        root / "model", tokenizer=mistral_tokenizer_file, model_type="openchat_3.5"
    )
    conversations = sharegpt_like(24, seed=1, mean_words=8.0)
    write_jsonl(conversations, root / "conversations.jsonl")
    tokenize_files(
        TokenizeJob(
            model_type="openchat_3.5",
            tokenizer=str(mistral_tokenizer_file),
            inputs=[root / "conversations.jsonl"],
            out=root / "data",
        )
    )
    return model, root / "data"


@pytest.fixture(scope="session")
def zero2_first_step(tiny_run_inputs, tmp_path_factory) -> tuple[Path, dict]:
    """(16 sequences of 64 tokens, the first step of a 1-process ZeRO-2 run on them): one step
    holds them all, as 1 x 1024 or 2 x 512 tokens. The baseline the 2-process ZeRO-2 and ZeRO-3
    runs must match, trained once for both (tests/train/test_deepspeed_run.py, test_zero3.py)."""
    import random

    from ocx.adapters.train import TrainConfig, run_training
    from ocx.adapters.train.progress import read_metrics

    model, _ = tiny_run_inputs
    root = tmp_path_factory.mktemp("zero2_first_step")
    rng = random.Random(0)
    rows = [
        ([rng.randrange(32000) for _ in range(64)], [0.0] * 16 + [rng.choice([1.0, 0.1])] * 48)
        for _ in range(16)
    ]
    data = write_token_dataset(root / "data", rows)
    run_training(
        TrainConfig(
            data=data,
            model=str(model),
            out=root / "one",
            epochs=1,
            lr=1e-3,
            max_steps=1,
            batch_max_len=1024,
            zero_stage=2,
            gradient_checkpointing=False,
            progress=False,
        )
    )
    (first,) = read_metrics(root / "one")
    return data, first


def write_token_dataset(
    out: Path, rows: list[tuple[list[int], list[float]]], model_type: str = "openchat_3.5"
) -> Path:
    """A tokenized dataset in the documented format from (input_ids, per-token weights) pairs,
    shifted here as `ocx data tokenize` does; for tests that need exact lengths."""
    import json

    import pyarrow as pa
    from pyarrow import parquet

    columns = {"input_ids": [], "labels": [], "weights": [], "length": [], "condition": []}
    for ids, weights in rows:
        shifted = list(weights[1:]) + [0.0]
        columns["input_ids"].append(ids)
        columns["labels"].append([t if w else 0 for t, w in zip(ids[1:] + [0], shifted)])
        columns["weights"].append(shifted)
        columns["length"].append(len(ids))
        columns["condition"].append("")
    schema = pa.schema(
        [
            ("input_ids", pa.list_(pa.int32())),
            ("labels", pa.list_(pa.int32())),
            ("weights", pa.list_(pa.float32())),
            ("length", pa.int32()),
            ("condition", pa.string()),
        ]
    )
    out.mkdir(parents=True)
    parquet.write_table(pa.table(columns, schema=schema), out / "data.parquet")
    tokens = sum(columns["length"])
    supervised = sum(sum(1 for w in ws if w) for ws in columns["weights"])
    from ocx.harness.data.writer import FORMAT, FORMAT_VERSION

    (out / "manifest.json").write_text(
        json.dumps(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "model_type": model_type,
                "counts": {"tokens": tokens, "supervised_tokens": supervised},
            }
        )
    )
    return out
