"""Exact tokenizers: real sentencepiece and tiktoken, with the model type's special tokens.

Why not `transformers.AutoTokenizer`: transformers 5 turns sentencepiece models into fast
tokenizers that differ from sentencepiece on runs of spaces (code, indented text), and its
`save_pretrained` drops the `legacy` flag. ocx reads the vocabulary files itself, so its IDs
equal sentencepiece/tiktoken on any text, and importing it needs no torch.

Every backend has the same small surface (`Tokenizer`). `encode_text` always treats
special-token text (a user typing ``<|end_of_turn|>`` or ``<s>``) as plain text; only the
chat template's structure produces control tokens, through `special_id`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol

# Llama 3's pre-tokenizer split pattern (Meta's tokenizer.py / tokenizer.json).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_NUM_RESERVED = 256


def llama3_special_tokens(num_base: int) -> dict[str, int]:
    """The 256 special tokens Meta appends to Llama 3's 128000 BPE ranks."""
    named = ["<|begin_of_text|>", "<|end_of_text|>"] + [
        f"<|reserved_special_token_{i}|>" for i in range(4)
    ]
    named += [
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|reserved_special_token_4|>",
        "<|eot_id|>",
    ]
    named += [f"<|reserved_special_token_{i}|>" for i in range(5, LLAMA3_NUM_RESERVED - 5)]
    return {tok: num_base + i for i, tok in enumerate(named)}


class Tokenizer(Protocol):
    """What ocx needs from a tokenizer."""

    bos_token: str | None
    eos_token: str | None

    def encode_text(self, text: str) -> list[int]:
        """Token IDs of plain text; special-token text stays plain text."""

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode_text` of each text, in one call (faster for many texts)."""

    def special_id(self, token: str) -> int | None:
        """ID of a control/special token, or None if the vocabulary has no such token."""

    @property
    def specials(self) -> Mapping[str, int]:
        """Every control/special token the template's structure may use, text to ID."""

    def decode(self, ids: Sequence[int]) -> str: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def sha256(self) -> str: ...


def _hash_files(paths: Sequence[Path], extra: Mapping[str, int]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    h.update(json.dumps(dict(sorted(extra.items()))).encode())
    return h.hexdigest()


class SentencePieceTokenizer:
    """A sentencepiece model plus added special tokens (e.g. OpenChat's <|end_of_turn|>=32000)."""

    def __init__(self, model_file: str | Path, added_tokens: Mapping[str, int] | None = None):
        import sentencepiece

        self.model_file = Path(model_file)
        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(self.model_file))
        # Declared tokens below the base vocabulary are sentencepiece's own pieces (<s>, </s>).
        self.added_tokens = {
            t: i for t, i in (added_tokens or {}).items() if i >= self.sp.vocab_size()
        }
        self._added_by_id = {i: t for t, i in self.added_tokens.items()}
        self.bos_token = self.sp.id_to_piece(self.sp.bos_id()) if self.sp.bos_id() >= 0 else None
        self.eos_token = self.sp.id_to_piece(self.sp.eos_id()) if self.sp.eos_id() >= 0 else None

    def encode_text(self, text: str) -> list[int]:
        # sentencepiece never matches control symbols (<s>, </s>) in text, and the added
        # tokens are not in its model, so special-token text is always plain text here.
        return self.sp.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.sp.encode(list(texts))

    def special_id(self, token: str) -> int | None:
        if token in self.added_tokens:
            return self.added_tokens[token]
        piece_id = self.sp.piece_to_id(token)
        if piece_id != self.sp.unk_id() and (
            self.sp.is_control(piece_id) or self.sp.id_to_piece(piece_id) == token
        ):
            return piece_id
        return None

    @cached_property
    def specials(self) -> Mapping[str, int]:
        control = {
            self.sp.id_to_piece(i): i for i in range(self.sp.vocab_size()) if self.sp.is_control(i)
        }
        return {**control, **self.added_tokens}

    def decode(self, ids: Sequence[int]) -> str:
        out, run = [], []
        for i in ids:
            if i in self._added_by_id:
                out.append(self.sp.decode(run))
                out.append(self._added_by_id[i])
                run = []
            else:
                run.append(int(i))
        out.append(self.sp.decode(run))
        return "".join(out)

    @property
    def vocab_size(self) -> int:
        return max([self.sp.vocab_size() - 1, *self.added_tokens.values()]) + 1

    @cached_property
    def sha256(self) -> str:
        return _hash_files([self.model_file], self.added_tokens)


def _read_tiktoken_ranks(model_file: Path) -> dict[bytes, int]:
    ranks = {}
    for line in model_file.read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


class _SpecialTokenTable:
    """`special_id` and `specials` for a tokenizer whose special tokens are one dict."""

    special_tokens: dict[str, int]

    def special_id(self, token: str) -> int | None:
        return self.special_tokens.get(token)

    @property
    def specials(self) -> Mapping[str, int]:
        return self.special_tokens


class TiktokenTokenizer(_SpecialTokenTable):
    """A tiktoken BPE file (Llama 3's tokenizer.model) with its special tokens."""

    def __init__(
        self,
        model_file: str | Path,
        special_tokens: Mapping[str, int] | None = None,
        bos_token: str = "<|begin_of_text|>",
        eos_token: str = "<|end_of_text|>",
    ):
        import tiktoken

        self.model_file = Path(model_file)
        ranks = _read_tiktoken_ranks(self.model_file)
        self.special_tokens = dict(special_tokens or llama3_special_tokens(len(ranks)))
        self.enc = tiktoken.Encoding(
            name=self.model_file.name,
            pat_str=LLAMA3_PATTERN,
            mergeable_ranks=ranks,
            special_tokens=self.special_tokens,
        )
        self.bos_token = bos_token if bos_token in self.special_tokens else None
        self.eos_token = eos_token if eos_token in self.special_tokens else None

    def encode_text(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.enc.encode_ordinary_batch(list(texts), num_threads=1)

    def decode(self, ids: Sequence[int]) -> str:
        return self.enc.decode(list(ids))

    @property
    def vocab_size(self) -> int:
        return self.enc.n_vocab

    @cached_property
    def sha256(self) -> str:
        return _hash_files([self.model_file], self.special_tokens)


class HFJsonTokenizer(_SpecialTokenTable):
    """A byte-level BPE `tokenizer.json` (e.g. a Llama 3 HF folder) through `tokenizers` (Rust).

    Byte-level BPE has no dummy prefix, so the Rust tokenizer equals tiktoken; sentencepiece
    folders never come here (see `load_tokenizer`).
    """

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer as RustTokenizer

        self.folder = Path(folder)
        self.tok = RustTokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tok.encode_special_tokens = True  # special-token text in content stays plain text
        config = _read_json(self.folder / "tokenizer_config.json")
        self.bos_token = _token_text(config.get("bos_token"))
        self.eos_token = _token_text(config.get("eos_token"))
        if self.bos_token and not config.get("add_bos_token", True):
            self.bos_token = None
        self.special_tokens = {t.content: i for i, t in self.tok.get_added_tokens_decoder().items()}

    def encode_text(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    @cached_property
    def sha256(self) -> str:
        return _hash_files([self.folder / "tokenizer.json"], self.special_tokens)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _token_text(value: object) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def is_tiktoken_file(path: Path) -> bool:
    """tiktoken files are text lines "<base64> <rank>"; sentencepiece models are protobuf."""
    with open(path, "rb") as f:
        head = f.read(256).split(b"\n", 1)[0]
    parts = head.split(b" ")
    return len(parts) == 2 and parts[1].isdigit()


def _folder_added_tokens(folder: Path) -> dict[str, int]:
    """Added tokens an HF folder declares (tokenizer_config.json, else tokenizer.json)."""
    decoder = _read_json(folder / "tokenizer_config.json").get("added_tokens_decoder", {})
    if decoder:
        return {v["content"]: int(k) for k, v in decoder.items()}
    return {
        t["content"]: t["id"] for t in _read_json(folder / "tokenizer.json").get("added_tokens", [])
    }


def load_tokenizer(path: str | Path, added_tokens: Mapping[str, int] | None = None) -> Tokenizer:
    """Load a bare `tokenizer.model` (sentencepiece or tiktoken) or an HF tokenizer folder.

    `added_tokens` are the model type's special tokens (from its chat template); they are
    added where the tokenizer does not already have them.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"tokenizer not found: {path}")
    model_file, declared = path, {}
    if path.is_dir():
        declared = _folder_added_tokens(path)
        model_file = path / "tokenizer.model"
        if not model_file.exists():
            if not (path / "tokenizer.json").exists():
                raise FileNotFoundError(f"{path}: neither tokenizer.model nor tokenizer.json found")
            return HFJsonTokenizer(path)
    wanted = {**(added_tokens or {}), **declared}
    if is_tiktoken_file(model_file):
        num_base = len(_read_tiktoken_ranks(model_file))
        return TiktokenTokenizer(
            model_file, {**llama3_special_tokens(num_base), **declared} if declared else None
        )
    return SentencePieceTokenizer(model_file, wanted)
