"""Benchmark: `ocx data tokenize` vs OpenChat's `ochat.data.generate_dataset`, same input and vocabulary.

Run: OCHAT_PYTHON=/tmp/ochat-venv/bin/python pytest tests/perf/bench_tokenize.py -m perf -s

OCHAT_PYTHON is a separate virtualenv with `ochat` installed `--no-deps` plus what
generate_dataset imports (ray, pyarrow, orjson, pydantic, transformers 4.44, torch,
sentencepiece, protobuf); see docs/data.md. Both tools get the same ShareGPT-like JSONL and
the same Mistral v1 vocabulary (OpenChat reads the HF folder `ocx templates export` writes).
Both are timed end to end as a user runs them (process start, workers, writing Parquet), best
of `ROUNDS`. Every row of OpenChat's output is compared with ocx's: tokens, labels, weights.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

N_CONVERSATIONS = int(os.environ.get("OCX_BENCH_CONVERSATIONS", "4000"))
ROUNDS = 2
OCHAT_SEED = 42


def _run(cmd: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=900, **kwargs)
    return time.perf_counter() - start


def _openchat_tokenizer_folder(folder: Path, tokenizer_model: Path) -> Path:
    """The HF folder OpenChat 3.5 publishes, for transformers 4.44: slow config, converted to fast.

    Not `ocx templates export`: its `"add_prefix_space": null` makes transformers 4.x convert
    the tokenizer without sentencepiece's dummy prefix ("GPT4" -> "G", not "▁G").
    """
    folder.mkdir()
    shutil.copy(tokenizer_model, folder / "tokenizer.model")
    special = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    config = {
        "tokenizer_class": "LlamaTokenizer", "legacy": True, "add_bos_token": True, "add_eos_token": False,
        "bos_token": "<s>", "eos_token": "<|end_of_turn|>", "unk_token": "<unk>", "pad_token": None,
        "added_tokens_decoder": {str(i): {"content": t, **special} for i, t in
                                 [(0, "<unk>"), (1, "<s>"), (2, "</s>"), (32000, "<|end_of_turn|>"), (32001, "<|pad_0|>")]},
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return folder


def _ochat_rows(parquet_file: Path, n_lines: int) -> list[tuple]:
    """OpenChat's rows back in input order: it shuffles lines with random.seed(seed)."""
    import pyarrow.parquet as pq

    table = pq.read_table(parquet_file).to_pydict()
    order = list(range(n_lines))
    random.seed(OCHAT_SEED)
    random.shuffle(order)  # the same permutation generate_epoch applies to its lines
    rows = [None] * n_lines
    for k, line in enumerate(order):
        rows[line] = (table["nz_input_ids"][k], table["nz_shifted_label_ids"][k],
                      [float(w) for w in table["nz_shifted_loss_weights"][k]])
    return rows


def _ocx_rows(out_dir: Path) -> list[tuple]:
    from ocx.harness.data import load_tokenized

    ds = load_tokenized(out_dir)
    return [(r["input_ids"].tolist(), r["labels"].tolist(), r["weights"].astype(np.float64).tolist())
            for r in (ds[i] for i in range(len(ds)))]


@pytest.mark.perf
def test_ocx_tokenize_is_faster_than_openchat_with_identical_output(tmp_path, mistral_tokenizer_file):
    ochat_python = os.environ.get("OCHAT_PYTHON", "/tmp/ochat-venv/bin/python")
    if not Path(ochat_python).exists():
        pytest.skip(f"no OpenChat virtualenv at {ochat_python} (set OCHAT_PYTHON)")
    from ocx.harness.data.synthetic import sharegpt_like, write_jsonl

    source = write_jsonl(sharegpt_like(N_CONVERSATIONS, seed=3, special_text=False), tmp_path / "in.0.jsonl")
    hf = _openchat_tokenizer_folder(tmp_path / "hf", mistral_tokenizer_file)
    ocx = [sys.executable, "-c", "from ocx.cli import main; main()"]
    ocx_times, ochat_times = [], []
    for r in range(ROUNDS):
        ocx_times.append(_run([*ocx, "data", "tokenize", "-m", "openchat_3.5", "-t", str(mistral_tokenizer_file),
                               str(source), "-o", str(tmp_path / f"ocx{r}"), "--workers", str(os.cpu_count())]))
        ochat_times.append(_run([ochat_python, "-m", "ochat.data.generate_dataset", "--model-type",
                                 "openchat_v3.2_mistral", "--model-path", str(hf), "--in-prefix",
                                 str(tmp_path / "in"), "--out-prefix", str(tmp_path / f"ochat{r}"),
                                 "--seed", str(OCHAT_SEED)], cwd=tmp_path))
    ours, theirs = _ocx_rows(tmp_path / "ocx0"), _ochat_rows(tmp_path / "ochat0.0.parquet", N_CONVERSATIONS)
    differing = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    tokens = sum(len(r[0]) for r in ours)
    result = {
        "conversations": N_CONVERSATIONS, "tokens": tokens, "cpus": os.cpu_count(),
        "ocx_s": round(min(ocx_times), 2), "openchat_s": round(min(ochat_times), 2),
        "ocx_conv_per_s": round(N_CONVERSATIONS / min(ocx_times)),
        "openchat_conv_per_s": round(N_CONVERSATIONS / min(ochat_times)),
        "speedup": round(min(ochat_times) / min(ocx_times), 2),
        "rows_differing": len(differing),
    }
    print("\nBENCH tokenize", json.dumps(result))
    assert len(ours) == len(theirs) == N_CONVERSATIONS
    assert not differing, f"{len(differing)} rows differ from OpenChat's, e.g. line {differing[0] + 1}"
    assert result["speedup"] >= 2.0, f"ocx is only {result['speedup']}x faster than OpenChat"
