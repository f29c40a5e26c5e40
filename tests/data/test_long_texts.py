"""Long inputs stay bounded in memory: a long message is tokenized only as far as the context
reaches (with exactly the IDs of full tokenization), and an over-long line is refused by
file:line without being read whole."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys

import pytest

from ocx.harness.conversation import parse_conversation
from ocx.harness.data import load_tokenized
from ocx.harness.data.tokenize import encode_prefix
from ocx.harness.data.writer import TokenizeJob, tokenize_files
from ocx.harness.errors import InputError
from ocx.harness.templates import get_template
from ocx.harness.templates.encode import encode_conversation
from ocx.harness.tokenizers import load_tokenizer
from ocx.testing.conversations import sharegpt_like

# Pieces that tokenizers merge across: runs of spaces, digits, CJK and emoji (byte fallback),
# contractions, CRLF, non-breaking spaces and sentencepiece's own word marker.
PIECES = [
    "a",
    "b",
    " ",
    "  ",
    "    ",
    "\n",
    "\t",
    "é",
    "中",
    "😀",
    "1",
    "23",
    "!",
    "'s",
    " the",
    "ing",
    "::",
    "\u00a0",
    "\r\n",
    "▁",
    "<|end_of_turn|>",
    "<s>",
]


def hostile_texts() -> list[str]:
    rng = random.Random(0)
    texts = [m["content"] for c in sharegpt_like(30, seed=1, mean_words=200) for m in c["items"]]
    texts += ["".join(rng.choice(PIECES) for _ in range(rng.randint(50, 3000))) for _ in range(80)]
    texts += [
        "x" * 20000,
        " " * 20000,
        "1234567890" * 2000,
        "中文" * 8000,
        "def f():\n" + "        pass\n" * 2000,
    ]
    return texts


@pytest.mark.parametrize("vocabulary", ["mistral-v1", "llama2", "llama3"])
def test_prefix_encoding_gives_exactly_the_first_ids_of_full_encoding(vocabulary, shared_dir):
    tok = load_tokenizer(shared_dir / "tokenizers" / vocabulary / "tokenizer.model")
    mismatches = []
    for i, text in enumerate(hostile_texts()):
        full = tok.encode_text(text)
        for limit in (1, 7, 301, 2000):
            if encode_prefix(tok, text, limit) != full[:limit]:
                mismatches.append((i, limit))
    assert not mismatches, f"{len(mismatches)} mismatches, first {mismatches[:5]}"


def test_a_huge_message_gives_the_ids_of_full_tokenization_truncated_to_the_context(
    tmp_path, mistral_tokenizer_file
):
    template = get_template("openchat_3.5")
    rng = random.Random(3)
    long_text = (
        " ".join(  # ~400 kB: past the 16 characters per token that switch to prefix encoding
            rng.choice(["alpha", "beta", "  gamma", "δ", "1234", "\n\n"]) for _ in range(60_000)
        )
    )
    row = {
        "condition": "GPT4",
        "items": [
            {"role": "user", "content": "Write.", "weight": 0.0},
            {"role": "assistant", "content": long_text, "weight": 1.0},
        ],
    }
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(row) + "\n")
    manifest = tokenize_files(
        TokenizeJob("openchat_3.5", str(mistral_tokenizer_file), [source], tmp_path / "out")
    )
    full = encode_conversation(
        template,
        load_tokenizer(mistral_tokenizer_file, template.added_tokens),
        parse_conversation(row, require_weights=True),
    )
    ds = load_tokenized(tmp_path / "out")
    assert manifest["counts"]["truncated_to_context"] == 1
    assert ds[0]["input_ids"].tolist() == full.input_ids[: template.context_length]


def test_a_line_over_the_limit_is_refused_by_file_and_line_without_reading_it_whole(
    tmp_path, mistral_tokenizer_file
):
    good = json.dumps(
        {
            "items": [
                {"role": "user", "content": "q", "weight": 0},
                {"role": "assistant", "content": "a", "weight": 1},
            ]
        }
    )
    huge = json.dumps({"items": [{"role": "user", "content": "x" * 5_000_000, "weight": 0}]})
    source = tmp_path / "in.jsonl"
    source.write_text(f"{good}\n{huge}\n{good}\n")
    job = TokenizeJob(
        "openchat_3.5",
        str(mistral_tokenizer_file),
        [source],
        tmp_path / "out",
        max_line_bytes=1 << 20,
    )
    with pytest.raises(InputError) as err:
        tokenize_files(job)
    assert [str(p) for p in err.value.problems] == [
        f"{source}:2: line of {len(huge) + 1:,} bytes is longer than the 1,048,576-byte limit "
        "(--max-line-bytes); split or shorten the conversation"
    ]
    assert not (tmp_path / "out").exists()
    job.skip_invalid = True
    manifest = tokenize_files(job)
    assert manifest["counts"]["conversations"] == 2 and manifest["counts"]["lines"] == 3
    assert manifest["inputs"][0]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()


def _peak_rss_mib(args: list[str]) -> float:
    """Peak RSS of one `ocx data tokenize` child process, in MiB."""
    code = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'ocx.cli.__main__', 'data', 'tokenize',"
        " *sys.argv[1:]])\n"
        "assert r.returncode == 0\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return float(result.stdout.split()[-1])


@pytest.mark.slow
def test_a_12_mb_single_line_costs_a_few_times_its_size_not_fifty(tmp_path, mistral_tokenizer_file):
    # Before: the whole message was tokenized, then truncated (100 MB line: 5.3 GB, 53x).
    words = ["the", "model", "answer", "question", "data", "token", "weight", "hello", "world"]
    rng = random.Random(0)
    content = " ".join(rng.choice(words) for _ in range(2_000_000))
    row = {
        "items": [
            {"role": "user", "content": "Write.", "weight": 0.0},
            {"role": "assistant", "content": content, "weight": 1.0},
        ]
    }
    big, small = tmp_path / "big.jsonl", tmp_path / "small.jsonl"
    big.write_text(json.dumps(row) + "\n")
    row["items"][1]["content"] = "ok"
    small.write_text(json.dumps(row) + "\n")
    common = [
        "-m",
        "openchat_3.5",
        "-t",
        str(mistral_tokenizer_file),
        "-w",
        "1",
        "--max-line-bytes",
        str(1 << 30),
    ]
    baseline = _peak_rss_mib([str(small), "-o", str(tmp_path / "o1"), *common])
    peak = _peak_rss_mib([str(big), "-o", str(tmp_path / "o2"), *common])
    line_mib = big.stat().st_size / 2**20
    assert peak - baseline < 6 * line_mib, (
        f"peak {peak:.0f} MiB, baseline {baseline:.0f} MiB, line {line_mib:.0f} MiB"
    )
    assert (
        len(load_tokenized(tmp_path / "o2")[0]["input_ids"])
        == get_template("openchat_3.5").context_length
    )
