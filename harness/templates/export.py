"""Export a model type's tokenizer as a Hugging Face tokenizer folder with its chat template.

The folder loads in transformers and vLLM (`tokenizer.apply_chat_template` gives the same IDs
as ocx for ordinary content) and in ocx itself (`load_tokenizer(folder)` reads the vocabulary
file directly, so IDs stay exact on any text).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ocx.harness.atomic import atomic_dir
from ocx.harness.templates import ChatTemplate
from ocx.harness.tokenizers import (
    LLAMA3_PATTERN,
    HFJsonTokenizer,
    SentencePieceTokenizer,
    TiktokenTokenizer,
    Tokenizer,
    load_tokenizer,
)

TEMPLATE_METADATA_FILE = "ocx.json"


def _added_tokens_decoder(specials: dict[str, int]) -> dict[str, dict]:
    return {
        str(i): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t, i in sorted(specials.items(), key=lambda kv: kv[1])
    }


def _write_vocabulary(tok: Tokenizer, out: Path) -> dict:
    """Copy or convert the vocabulary; return the tokenizer_config.json fields it implies."""
    if isinstance(tok, SentencePieceTokenizer):
        shutil.copyfile(tok.model_file, out / "tokenizer.model")
        # legacy=True keeps sentencepiece's dummy prefix after special tokens, as OpenChat trains.
        return {
            "tokenizer_class": "LlamaTokenizer",
            "legacy": True,
            "unk_token": tok.sp.id_to_piece(tok.sp.unk_id()),
            "added_tokens_decoder": _added_tokens_decoder(dict(tok.specials)),
        }
    if isinstance(tok, TiktokenTokenizer):
        from transformers.convert_slow_tokenizer import TikTokenConverter

        shutil.copyfile(tok.model_file, out / "tokenizer.model")
        converter = TikTokenConverter(
            vocab_file=str(tok.model_file),
            pattern=LLAMA3_PATTERN,
            extra_special_tokens=list(tok.special_tokens),
        )
        converter.converted().save(str(out / "tokenizer.json"))
        return {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "added_tokens_decoder": _added_tokens_decoder(tok.special_tokens),
        }
    if isinstance(tok, HFJsonTokenizer):
        shutil.copyfile(tok.folder / "tokenizer.json", out / "tokenizer.json")
        return {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "added_tokens_decoder": _added_tokens_decoder(tok.special_tokens),
        }
    raise TypeError(f"cannot export tokenizer of type {type(tok).__name__}")


def write_tokenizer_files(template: ChatTemplate, tokenizer_path: str | Path, out: Path) -> dict:
    """Write the tokenizer files into an existing folder; return ocx's metadata for it."""
    tok = load_tokenizer(tokenizer_path, template.added_tokens)
    if tok.special_id(template.eot_token) is None:
        raise ValueError(
            f"{tokenizer_path}: no {template.eot_token!r} token, the end of turn of {template.name}"
        )
    config = _write_vocabulary(tok, out)
    config.update(
        {
            "bos_token": tok.bos_token,
            "add_bos_token": tok.bos_token is not None,
            "add_eos_token": False,
            # Generation ends at the end-of-turn token, so it is the tokenizer's EOS.
            "eos_token": template.eot_token,
            "pad_token": None,
            "clean_up_tokenization_spaces": False,
            "model_max_length": template.context_length,
            "chat_template": template.source,
        }
    )
    (out / "tokenizer_config.json").write_text(
        json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    )
    (out / "chat_template.jinja").write_text(template.source)
    (out / "special_tokens_map.json").write_text(
        json.dumps({k: config[k] for k in ("bos_token", "eos_token") if config[k]}, indent=2) + "\n"
    )
    return {
        "model_type": template.name,
        "template_sha256": template.sha256,
        "tokenizer_sha256": tok.sha256,
        "eot_token": template.eot_token,
        "eot_token_id": tok.special_id(template.eot_token),
    }


def export_tokenizer(
    template: ChatTemplate,
    tokenizer_path: str | Path,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
) -> dict:
    """Write an HF tokenizer folder with the chat template and ocx.json; atomic."""
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        metadata = write_tokenizer_files(template, tokenizer_path, tmp)
        (tmp / TEMPLATE_METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata
