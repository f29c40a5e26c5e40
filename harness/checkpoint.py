"""One checkpoint spec for every engine: what `--model` names, resolved once.

`resolve_checkpoint_spec(model, model_type)` turns a folder or a Hugging Face hub id into a
`CheckpointSpec`: the folder, the model type (from `--model-type` or the checkpoint's
ocx.json), its chat template, the exact tokenizer, the end-of-turn token and the context
length. `ocx eval`, `ocx serve` and recipes all read these from here, so they cannot disagree.

The context-length rule: the smaller of the template's `context_length` and the model
config's `max_position_embeddings` (of `text_config` for multimodal configs). The template's
is what the model was fine-tuned on (a Mistral-7B base allows 32,768 positions, OpenChat 3.5
was trained on 8,192); the config's is what the weights can address at all. Prompts longer
than that keep their end (the question and the assistant header), as OpenChat does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ocx.harness.errors import InputError, InputProblem
from ocx.harness.templates import ChatTemplate, get_template, resolve_model_type_option
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


def config_positions(path: Path) -> int | None:
    """`max_position_embeddings` of the folder's config.json (its text_config's), if any."""
    config_file = path / "config.json"
    if not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{config_file}: not a JSON config ({exc})") from None
    config = config.get("text_config", config) if isinstance(config, dict) else None
    if not isinstance(config, dict):
        raise ValueError(f"{config_file}: not a JSON object")
    value = config.get("max_position_embeddings")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{config_file}: max_position_embeddings must be a positive integer, got {value!r}"
        )
    return value


def context_length(template: ChatTemplate, positions: int | None) -> int:
    """Prompt plus completion tokens: the smaller of the template's and the config's (see above)."""
    return min(value for value in (template.context_length, positions) if value)


@dataclass(frozen=True)
class CheckpointSpec:
    """A resolved checkpoint: everything an engine and the text layer need before weights load."""

    path: Path
    """The local folder (a hub id resolves to its snapshot in the Hugging Face cache)."""
    model_type: str
    """The canonical model type (template name)."""
    template: ChatTemplate
    tokenizer: Tokenizer
    eot_id: int
    """The template's end-of-turn token: generation stops there."""
    context_length: int
    """Prompt plus completion tokens (`context_length()` above)."""

    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        return (self.eot_id,)

    def identity(self, engine: str) -> dict:
        """What makes this checkpoint's answers what they are (eval's cache key, result record)."""
        return {
            "kind": engine,
            "path": str(self.path),
            "fingerprint": checkpoint_fingerprint(self.path),
            "model_type": self.template.name,
            "template_sha256": self.template.sha256,
            "tokenizer_sha256": self.tokenizer.sha256,
        }


def is_hub_id(text: str) -> bool:
    """ "org/name" that is not a path on this machine: resolved through the Hugging Face cache."""
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not Path(text).exists()


def resolve_checkpoint_path(model: str | Path) -> Path:
    """A local folder as is; otherwise a hub id, from the cache (offline) or downloaded.

    Raises ValueError naming `model` when it is neither."""
    from ocx.adapters.hf.checkpoint import local_model_dir

    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if not is_hub_id(str(model)):
        raise ValueError(f"{model}: no such checkpoint folder")
    return local_model_dir(str(model)).resolve()


def checkpoint_model_type(path: Path | None, model_type: str | None = None) -> str:
    """The canonical model type: `--model-type` when given, else the checkpoint's ocx.json.

    `ocx eval`, `ocx serve` and recipes resolve here, on `resolve_model_type_option` (which
    `ocx data` and `ocx templates` call directly), so an unknown name gets one message: an
    InputError naming `--model-type` (or the ocx.json it came from) with "did you mean"; so does
    a folder with no model type. `path` may be None when `model_type` is given.
    """
    from ocx.adapters.hf.checkpoint import read_ocx_metadata

    if model_type is not None:
        return resolve_model_type_option(model_type)
    name = read_ocx_metadata(path).get("model_type") if path is not None else None
    if not name:
        message = "no ocx.json with a model_type in the checkpoint; pass --model-type"
        where = "command line" if path is None else str(path)
        raise InputError(InputProblem(where, None, "--model-type", message))
    return resolve_model_type_option(name, file=str(Path(path) / "ocx.json"), field="model_type")


def resolve_checkpoint_spec(model: str | Path, model_type: str | None = None) -> CheckpointSpec:
    """The spec of `model` (folder or hub id); InputError/ValueError name what is wrong."""
    path = resolve_checkpoint_path(model)
    canonical = checkpoint_model_type(path, model_type)
    template = get_template(canonical)
    tokenizer = load_tokenizer(path, template.added_tokens)
    eot_id = tokenizer.special_id(template.eot_token)
    if eot_id is None:
        raise ValueError(
            f"{path}: the tokenizer has no {template.eot_token!r}, the end of turn of {canonical}"
        )
    return CheckpointSpec(
        path=path,
        model_type=canonical,
        template=template,
        tokenizer=tokenizer,
        eot_id=eot_id,
        context_length=context_length(template, config_positions(path)),
    )
