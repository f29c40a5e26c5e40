"""`ocx data tokenize` against OpenChat's `ochat.data.generate_dataset`, same input and vocabulary.

Both get the same ShareGPT-like JSONL (`sharegpt_like(n, seed=3, special_text=False)`) and the
Mistral v1 vocabulary (OpenChat reads the HF folder OpenChat 3.5 publishes), both with as many
workers as the machine has cores, and both are timed end to end as a user runs them
(process start, workers, writing Parquet). OpenChat runs in its own venv (tests/perf/peers.py:
ochat 3.6.1 with transformers 4.44 and ray). Each round, every row OpenChat wrote is compared
with ocx's: tokens, labels, weights.

Physical limit: raw sentencepiece encoding every message text of the input in one call with
as many threads (`SentencePieceProcessor.encode(texts, num_threads=cores)`), in a process that
has already started and read the input: no tool that produces these tokens can be faster.
Text that spells special tokens is left out: ocx keeps it plain text; OpenChat with
transformers 4.44 turns a typed `<|end_of_turn|>` into the control token (docs/data.md).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

# OpenChat 3.5's published tokenizer folder and shuffle seed, as the golden rows were recorded.
from tests.data.golden.make_golden import OCHAT_SEED, openchat_tokenizer_folder
from tests.perf.core import Context, Ratio, shared_file

NAME = "tokenize"
TITLE = "Tokenization: ocx data tokenize vs OpenChat generate_dataset"
LABELS = {
    "wall_s": "wall time (s)",
    "conversations_per_s": "conversations/s",
    "rows_differing": "rows differing from OpenChat's",
}
RATIOS = [
    Ratio(
        "OpenChat time / ocx time",
        "openchat.wall_s",
        "ocx.wall_s",
        target=2.0,
        limit=("openchat.wall_s", "sentencepiece.wall_s"),
        limit_note="OpenChat time / raw sentencepiece encode time of the same texts",
    ),
    Ratio(
        "ocx time / raw sentencepiece encode time",
        "ocx.wall_s",
        "sentencepiece.wall_s",
        better="lower",
        limit=1.0,
        limit_note="1: nothing but the encoding",
    ),
]


def openchat_rows(parquet_file: Path, n_lines: int) -> list[tuple]:
    """OpenChat's rows back in input order: it shuffles lines with random.seed(seed)."""
    import pyarrow.parquet as pq

    table = pq.read_table(parquet_file).to_pydict()
    order = list(range(n_lines))
    random.Random(OCHAT_SEED).shuffle(
        order
    )  # the permutation generate_epoch applies (random.seed + shuffle)
    rows = [None] * n_lines
    for k, line in enumerate(order):
        rows[line] = (
            table["nz_input_ids"][k],
            table["nz_shifted_label_ids"][k],
            [float(w) for w in table["nz_shifted_loss_weights"][k]],
        )
    return rows


def ocx_rows(out_dir: Path) -> list[tuple]:
    import numpy as np

    from ocx.harness.data import load_tokenized

    ds = load_tokenized(out_dir)
    return [
        (r["input_ids"].tolist(), r["labels"].tolist(), r["weights"].astype(np.float64).tolist())
        for r in (ds[i] for i in range(len(ds)))
    ]


def timed(cmd: list[str], **kwargs) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:4])} ... exited {done.returncode}: {done.stderr[-1500:]}"
        )
    return time.perf_counter() - start


def variants(ctx: Context):
    from ocx.testing.conversations import sharegpt_like, write_jsonl

    n, workers = (200 if ctx.quick else 4000), os.cpu_count()
    conversations = sharegpt_like(n, seed=3, special_text=False)
    source = write_jsonl(conversations, ctx.work / "in.0.jsonl")
    tokenizer = shared_file("tokenizers/mistral-v1/tokenizer.model")
    ctx.settings.update(
        conversations=n, workers=workers, template="openchat_3.5", vocabulary="Mistral v1"
    )
    texts = [
        t for c in conversations for t in [c["system"]] + [m["content"] for m in c["items"]] if t
    ]
    fns = {
        "ocx": lambda: run_ocx(ctx.work, source, tokenizer, workers, n),
        "sentencepiece": lambda: run_sentencepiece(tokenizer, texts, workers, n),
    }
    ochat = ctx.peer_python("ochat", "openchat")
    if ochat is not None:
        hf = openchat_tokenizer_folder(ctx.work / "hf", tokenizer)
        fns["openchat"] = lambda: run_openchat(ctx.work, ochat, hf, n)
    yield fns


def run_ocx(work: Path, source: Path, tokenizer: Path, workers: int, n: int) -> dict:
    out = work / "ocx-out"
    shutil.rmtree(out, ignore_errors=True)
    seconds = timed(
        [
            sys.executable,
            "-m",
            "ocx.cli",
            "data",
            "tokenize",
            "-m",
            "openchat_3.5",
            "-t",
            str(tokenizer),
            str(source),
            "-o",
            str(out),
            "--workers",
            str(workers),
        ]
    )
    return {"wall_s": seconds, "conversations_per_s": n / seconds}


def run_openchat(work: Path, python: Path, hf: Path, n: int) -> dict:
    seconds = timed(
        [
            str(python),
            "-m",
            "ochat.data.generate_dataset",
            "--model-type",
            "openchat_v3.2_mistral",
            "--model-path",
            str(hf),
            "--in-prefix",
            str(work / "in"),
            "--out-prefix",
            str(work / "ochat"),
            "--seed",
            str(OCHAT_SEED),
        ],
        cwd=work,
    )
    ours, theirs = ocx_rows(work / "ocx-out"), openchat_rows(work / "ochat.0.parquet", n)
    differing = sum(a != b for a, b in zip(ours, theirs)) + abs(len(ours) - len(theirs))
    return {"wall_s": seconds, "conversations_per_s": n / seconds, "rows_differing": differing}


def run_sentencepiece(tokenizer: Path, texts: list[str], workers: int, n: int) -> dict:
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer))
    start = time.perf_counter()
    sp.encode(texts, num_threads=workers)
    seconds = time.perf_counter() - start
    return {"wall_s": seconds, "conversations_per_s": n / seconds}


def check(figures: dict, quick: bool) -> None:
    differing = figures.get("openchat.rows_differing", 0)
    assert differing == 0, (
        f"{differing:.0f} rows of ocx's output differ from OpenChat's (tokens, labels or weights)"
    )
