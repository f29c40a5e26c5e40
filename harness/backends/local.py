"""What the local backends (transformers, vLLM) share: the checkpoint, its template and
tokenizer, prompt token IDs, and turning generated IDs back into an answer.

Prompts are built by ocx's own template and exact tokenizer (`encode_prompt`), never by the
engine's tokenizer, so a local model sees exactly the tokens it was trained on; generated IDs
are cut at the template's end-of-turn token and decoded by the same tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ocx.harness.backends import Request, Sampling
from ocx.harness.templates import ChatTemplate, get_template
from ocx.harness.templates.encode import encode_prompt
from ocx.harness.tokenizers import Tokenizer, load_tokenizer

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def checkpoint_fingerprint(path: Path) -> str:
    """Identifies a checkpoint folder without reading gigabytes of weights.

    Hashes config.json and ocx.json and the name, size and modification time of every weight
    file: retraining into the same folder changes it, reading the folder does not.
    """
    digest = hashlib.sha256()
    for name in ("config.json", "ocx.json", "generation_config.json"):
        file = path / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    for file in sorted(path.iterdir()):
        if file.suffix in _WEIGHT_SUFFIXES and file.is_file():
            stat = file.stat()
            digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


class LocalModel:
    """A checkpoint folder with its chat template and tokenizer."""

    def __init__(self, path: str | Path, model_type: str):
        self.path = Path(path).resolve()
        self.template: ChatTemplate = get_template(model_type)
        self.tokenizer: Tokenizer = load_tokenizer(self.path, added_tokens=self.template.added_tokens)
        self.eot_id = self.tokenizer.special_id(self.template.eot_token)
        if self.eot_id is None:
            raise ValueError(f"{self.path}: tokenizer has no {self.template.eot_token!r}, "
                             f"the end of turn of {self.template.name}")

    def identity(self, kind: str) -> dict:
        return {"kind": kind, "path": str(self.path), "fingerprint": checkpoint_fingerprint(self.path),
                "model_type": self.template.name, "template_sha256": self.template.sha256,
                "tokenizer_sha256": self.tokenizer.sha256}

    def max_positions(self) -> int:
        config = json.loads((self.path / "config.json").read_text())
        return int(config.get("max_position_embeddings") or self.template.context_length)

    def prompt_ids(self, request: Request, max_positions: int) -> list[int]:
        ids = encode_prompt(self.template, self.tokenizer, list(request.messages), condition=request.condition)
        # As OpenChat: keep the end of an over-long prompt (the question and the assistant header),
        # leaving room for at least one new token.
        return ids[-(max_positions - 1):]

    def answer(self, generated: list[int], sampling: Sampling) -> str:
        """Text of the generated IDs up to the end of turn, cut at the first stop string."""
        if self.eot_id in generated:
            generated = generated[:generated.index(self.eot_id)]
        return cut_at_stop(self.tokenizer.decode(generated), sampling.stop)


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[:min(cuts)] if cuts else text
