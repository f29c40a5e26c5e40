"""What `--model` names for the server: the checkpoint spec plus the names clients may use.

The checkpoint (folder or hub id, model type, template, tokenizer, end of turn, context
length) is resolved by `ocx.harness.checkpoint`, the same spec `ocx eval` uses, so both apply
one context-length rule. A request's `model` may be any served name, the model type or one of
its aliases, the `--model` string or the folder's absolute path.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ocx.harness.checkpoint import CheckpointSpec, resolve_checkpoint_spec


@dataclass(frozen=True)
class ServedModel(CheckpointSpec):
    """A checkpoint spec (path, model type, template, tokenizer, context length, stop tokens)
    that also knows the names a request may use for it."""

    names: tuple[str, ...] = ()
    """Names a request may use; the first is the one responses report."""

    @classmethod
    def of(cls, checkpoint: CheckpointSpec, names: tuple[str, ...]) -> ServedModel:
        spec = {f.name: getattr(checkpoint, f.name) for f in fields(CheckpointSpec)}
        return cls(**spec, names=names)

    def resolve(self, name: str) -> str | None:
        """The name to report for a requested `model`, or None when it is not this model."""
        return name if name in self.names else None


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
    return ServedModel.of(checkpoint, tuple(dict.fromkeys(names)))
