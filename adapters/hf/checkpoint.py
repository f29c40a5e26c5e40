"""ocx's metadata beside a Hugging Face model folder (`ocx.json`).

It records what produced the checkpoint (model type, template and tokenizer hashes, training
settings) so evaluation and serving pick the right template without being told.
"""

from __future__ import annotations

import json
from pathlib import Path

from ocx.harness.templates.export import TEMPLATE_METADATA_FILE


def read_ocx_metadata(path: str | Path) -> dict:
    """The checkpoint's ocx.json, or {} for a folder ocx did not write (or a hub id)."""
    file = Path(path) / TEMPLATE_METADATA_FILE
    if not file.is_file():
        return {}
    return json.loads(file.read_text())


def write_ocx_metadata(path: str | Path, metadata: dict) -> None:
    """Merge `metadata` into the folder's ocx.json (the folder is not yet published)."""
    merged = {**read_ocx_metadata(path), **metadata}
    (Path(path) / TEMPLATE_METADATA_FILE).write_text(
        json.dumps(merged, indent=2, sort_keys=True) + "\n"
    )


# What a model's tokenizer is made of; the weights are not needed to read it.
TOKENIZER_PATTERNS = [
    "tokenizer*",
    "special_tokens_map.json",
    "config.json",
    "generation_config.json",
    "ocx.json",
    "chat_template*",
]


def local_model_dir(model: str | Path, *, tokenizer_only: bool = False) -> Path:
    """A local folder for a model given as a folder or a hub id ("org/name").

    A hub id resolves through huggingface_hub: from the local cache (`$HF_HOME/hub`) with
    HF_HUB_OFFLINE=1, downloading otherwise (only the tokenizer files with `tokenizer_only`).
    Raises ValueError naming the model when it is neither.
    """
    path = Path(model)
    if path.is_dir():
        return path
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(
                str(model), allow_patterns=TOKENIZER_PATTERNS if tokenizer_only else None
            )
        )
    except HFValidationError:
        raise ValueError(f"{model}: no such folder, and not a Hugging Face hub id") from None
    except LocalEntryNotFoundError:
        raise ValueError(
            f"{model}: no such folder, and not in the Hugging Face cache {constants.HF_HUB_CACHE} "
            "(offline: download it there first, or pass a local folder)"
        ) from None
