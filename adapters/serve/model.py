"""What `--model` names for the server: the checkpoint spec plus the names clients may use.

The checkpoint (folder or hub id, model type, template, tokenizer, end of turn, context
length) is resolved by `ocx.harness.checkpoint`, the same spec `ocx eval` uses, so both apply
one context-length rule. A request's `model` may be any served name, the model type or one of
its aliases, the `--model` string or the folder's absolute path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocx.harness.checkpoint import CheckpointSpec, resolve_checkpoint_path, resolve_checkpoint_spec
from ocx.harness.templates import ChatTemplate
from ocx.harness.tokenizers import Tokenizer


@dataclass(frozen=True)
class ServedModel:
    checkpoint: CheckpointSpec
    names: tuple[str, ...]
    """Names a request may use; the first is the one responses report."""

    @property
    def path(self) -> Path:
        return self.checkpoint.path

    @property
    def model_type(self) -> str:
        return self.checkpoint.model_type

    @property
    def template(self) -> ChatTemplate:
        return self.checkpoint.template

    @property
    def tokenizer(self) -> Tokenizer:
        return self.checkpoint.tokenizer

    @property
    def context_length(self) -> int:
        """Prompt plus completion tokens: the checkpoint spec's one rule (smaller of template and config)."""
        return self.checkpoint.context_length

    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        return self.checkpoint.stop_token_ids

    def resolve(self, name: str) -> str | None:
        """The name to report for a requested `model`, or None when it is not this model."""
        return name if name in self.names else None


def resolve_checkpoint(model: str) -> Path:
    """A local folder as is; otherwise a Hugging Face hub id (from the cache offline, else fetched)."""
    try:
        return resolve_checkpoint_path(model)
    except ValueError as exc:
        raise FileNotFoundError(f"--model {model!r}: {exc}") from exc


def load_served_model(
    model: str, model_type: str | None = None, served_names: tuple[str, ...] = ()
) -> ServedModel:
    """Everything the HTTP layer needs to know about `--model`, checked before any weights load."""
    checkpoint = resolve_checkpoint_spec(model, model_type)
    names = [
        *served_names,
        checkpoint.model_type,
        *checkpoint.template.aliases,
        model,
        str(checkpoint.path),
    ]
    return ServedModel(checkpoint=checkpoint, names=tuple(dict.fromkeys(names)))
