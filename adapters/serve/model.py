"""What `--model` names: a checkpoint folder, its model type, template, tokenizer and names.

The model type comes from `--model-type` or the checkpoint's ocx.json; the template and the
exact tokenizer follow from it. A request's `model` may be any served name, the model type or
one of its aliases, the `--model` string or the folder's absolute path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ocx.harness.templates import ChatTemplate, get_template, resolve_model_type
from ocx.harness.tokenizers import Tokenizer, load_tokenizer


@dataclass(frozen=True)
class ServedModel:
    path: Path
    model_type: str
    template: ChatTemplate
    tokenizer: Tokenizer
    context_length: int
    """Prompt plus completion tokens: the smaller of the template's and the model config's."""
    names: tuple[str, ...]
    """Names a request may use; the first is the one responses report."""
    stop_token_ids: tuple[int, ...]

    def resolve(self, name: str) -> str | None:
        """The name to report for a requested `model`, or None when it is not this model."""
        return name if name in self.names else None


def resolve_checkpoint(model: str) -> Path:
    """A local folder as is; otherwise a Hugging Face hub id, fetched (or found in the cache)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise FileNotFoundError(f"--model {model!r}: no such checkpoint folder")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model))
    except Exception as exc:  # offline, gated, misspelled: all mean the same to the user
        raise FileNotFoundError(f"--model {model!r}: not a local folder and not downloadable ({exc})") from exc


def _config_context(path: Path) -> int | None:
    config_file = path / "config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text())
    config = config.get("text_config", config)
    value = config.get("max_position_embeddings")
    return int(value) if value else None


def load_served_model(model: str, model_type: str | None = None, served_names: tuple[str, ...] = ()) -> ServedModel:
    """Everything the HTTP layer needs to know about `--model`, checked before any weights load."""
    from ocx.adapters.hf.checkpoint import infer_model_type

    path = resolve_checkpoint(model)
    canonical = resolve_model_type(infer_model_type(path, model_type))
    template = get_template(canonical)
    tokenizer = load_tokenizer(path, template.added_tokens)
    eot_id = tokenizer.special_id(template.eot_token)
    if eot_id is None:
        raise ValueError(f"{path}: the tokenizer has no {template.eot_token!r}, the end of turn of {canonical}")
    context = min(filter(None, [template.context_length, _config_context(path)]))
    names = [*served_names, canonical, *template.aliases, model, str(path)]
    return ServedModel(path=path, model_type=canonical, template=template, tokenizer=tokenizer,
                       context_length=context, names=tuple(dict.fromkeys(names)), stop_token_ids=(eot_id,))
