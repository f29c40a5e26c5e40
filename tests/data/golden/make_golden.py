"""Record what OpenChat's own generator writes for a small sample (run by hand, not by pytest).

    python tests/data/golden/make_golden.py [--ochat-python /tmp/ochat-venv/bin/python]

Writes, next to this file, `openchat_3.5_sample.jsonl` (the input) and
`openchat_3.5_expected.jsonl` (one row per input line: OpenChat's `nz_input_ids`,
`nz_shifted_label_ids`, `nz_shifted_loss_weights`, in input order). The OpenChat virtualenv
has `ochat` 3.6.1 installed `--no-deps` with ray, pyarrow, orjson, pydantic, numba,
transformers 4.44.2, torch, sentencepiece and protobuf (see docs/data.md).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MISTRAL = HERE.parents[2].parent / "shared" / "tokenizers" / "mistral-v1" / "tokenizer.model"
OCHAT_SEED = 42


def openchat_tokenizer_folder(folder: Path, tokenizer_model: Path) -> Path:
    """The HF folder OpenChat 3.5 publishes, for transformers 4.44: slow config, converted to fast.

    Not `ocx templates export`: its `"add_prefix_space": null` makes transformers 4.x convert
    the tokenizer without sentencepiece's dummy prefix ("GPT4" -> "G", not "▁G").
    """
    folder.mkdir(parents=True)
    shutil.copy(tokenizer_model, folder / "tokenizer.model")
    special = {
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
        "special": True,
    }
    tokens = [
        (0, "<unk>"),
        (1, "<s>"),
        (2, "</s>"),
        (32000, "<|end_of_turn|>"),
        (32001, "<|pad_0|>"),
    ]
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "legacy": True,
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "<|end_of_turn|>",
        "unk_token": "<unk>",
        "pad_token": None,
        "added_tokens_decoder": {str(i): {"content": t, **special} for i, t in tokens},
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return folder


def run_openchat(ochat_python: str, hf_folder: Path, jsonl: Path, work: Path) -> Path:
    """Run `ochat.data.generate_dataset` on one file; returns its Parquet output."""
    shutil.copy(jsonl, work / "in.0.jsonl")
    subprocess.run(
        [
            ochat_python,
            "-m",
            "ochat.data.generate_dataset",
            "--model-type",
            "openchat_v3.2_mistral",
            "--model-path",
            str(hf_folder),
            "--in-prefix",
            str(work / "in"),
            "--out-prefix",
            str(work / "ochat"),
            "--seed",
            str(OCHAT_SEED),
        ],
        check=True,
        capture_output=True,
        cwd=work,
        timeout=900,
    )
    return work / "ochat.0.parquet"


def openchat_rows_in_input_order(parquet_file: Path, n_lines: int) -> list[dict]:
    """OpenChat shuffles lines with random.seed(seed) before tokenizing; undo that permutation.

    Valid when no row was dropped (every conversation has a supervised token).
    """
    import pyarrow.parquet as pq

    table = pq.read_table(parquet_file).to_pydict()
    if len(table["nz_input_ids"]) != n_lines:
        raise ValueError("OpenChat dropped rows; the permutation cannot be undone")
    order = list(range(n_lines))
    random.seed(OCHAT_SEED)
    random.shuffle(order)
    rows: list[dict] = [{}] * n_lines
    for k, line in enumerate(order):
        rows[line] = {
            "input_ids": table["nz_input_ids"][k],
            "labels": table["nz_shifted_label_ids"][k],
            "weights": table["nz_shifted_loss_weights"][k],
        }
    return rows


def sample() -> list[dict]:
    from ocx.testing.conversations import sharegpt_like

    convs = sharegpt_like(24, seed=11, mean_words=30, special_text=False)
    convs.append(
        {
            "condition": "GPT4 Correct",
            "system": "You are terse.",
            "items": [
                {"role": "user", "content": "Hi", "weight": 0.0},
                {"role": "assistant", "content": "Hello!", "weight": 1.0},
                {"role": "user", "content": "Bye  now\n\n  ok", "weight": 0.0},
            ],
        }
    )  # trailing zero weights are dropped
    convs.append(
        {
            "items": [
                {"role": "user", "content": "q", "weight": 0.5},
                {"role": "assistant", "content": "a", "weight": 0.25},
            ]
        }
    )  # no condition, user weight
    return convs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ochat-python", default="/tmp/ochat-venv/bin/python")
    args = parser.parse_args()
    from ocx.testing.conversations import write_jsonl

    source = write_jsonl(sample(), HERE / "openchat_3.5_sample.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        hf = openchat_tokenizer_folder(Path(tmp) / "hf", MISTRAL)
        rows = openchat_rows_in_input_order(
            run_openchat(args.ochat_python, hf, source, Path(tmp)), len(sample())
        )
    with open(HERE / "openchat_3.5_expected.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
