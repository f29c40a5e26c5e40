"""ocx's IDs equal raw sentencepiece / tiktoken on varied text, code and whitespace."""

from __future__ import annotations

import inspect
import json
import random

import pytest

from ocx.harness.conversation import Conversation, Message
from ocx.harness.templates import get_template
from ocx.harness.templates.encode import encode_conversation
from ocx.harness.templates.export import export_tokenizer
from ocx.harness.tokenizers import load_tokenizer


def varied_texts(n: int = 1200) -> list[str]:
    """Real Python source (indentation, runs of spaces), prose, numbers, unicode, odd whitespace."""
    import argparse  # noqa: E401 - sources of real code
    import collections
    import difflib
    import json as json_module
    import textwrap

    rng = random.Random(0)
    code_lines = []
    for module in (argparse, collections, difflib, json_module, textwrap):
        code_lines += inspect.getsource(module).splitlines(keepends=True)
    texts = []
    for i in range(n):
        kind = i % 4
        if kind == 0:  # a chunk of real code, indentation included
            start = rng.randrange(len(code_lines) - 12)
            texts.append("".join(code_lines[start : start + rng.randint(1, 12)]))
        elif kind == 1:  # leading, trailing and repeated whitespace around words
            words = rng.sample(
                [
                    "alpha",
                    "β-test",
                    "GPT4",
                    "Correct",
                    "tab\t",
                    "x",
                    "12,345.6",
                    "naïve",
                    "日本語",
                    "🙂",
                ],
                4,
            )
            seps = [" ", "  ", "   ", "\n", "\n\n", "\t", " \n "]
            texts.append(
                rng.choice(["", " ", "  ", "\n"]) + "".join(w + rng.choice(seps) for w in words)
            )
        elif kind == 2:  # special-token text typed by a user
            texts.append(
                rng.choice(["<s>", "</s>", "<|end_of_turn|>", "<|eot_id|>", "<|im_start|>"])
                + f" item {i} " * rng.randint(1, 3)
            )
        else:  # arithmetic and markdown
            texts.append(
                f"**{rng.randint(0, 10**6)}** + {rng.random():.4f} = ?\n```\n    {i}  *  2\n```"
            )
    return texts


@pytest.fixture(scope="module")
def texts():
    return varied_texts()


def _conversation(text: str) -> Conversation:
    return Conversation(
        (Message("user", text, 0.0), Message("assistant", text, 1.0)), condition="GPT4 Correct"
    )


def _expected_mistral(sp, text: str) -> list[int]:
    header_user, header_assistant = (
        sp.encode("GPT4 Correct User:"),
        sp.encode("GPT4 Correct Assistant:"),
    )
    body = sp.encode(text)
    return [1] + header_user + body + [32000] + header_assistant + body + [32000]


def test_thousand_texts_match_raw_sentencepiece(texts, mistral_tokenizer_file):
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(mistral_tokenizer_file))
    template = get_template("openchat_3.5")
    tok = load_tokenizer(mistral_tokenizer_file, template.added_tokens)
    assert len(texts) >= 1000
    mismatches = [
        t
        for t in texts
        if encode_conversation(template, tok, _conversation(t)).input_ids
        != _expected_mistral(sp, t)
    ]
    assert not mismatches, f"{len(mismatches)} texts differ, e.g. {mismatches[0]!r}"


def test_an_exported_folder_tokenizes_exactly_like_the_bare_model(
    texts, mistral_tokenizer_file, tmp_path
):
    template = get_template("openchat_3.5")
    export_tokenizer(template, mistral_tokenizer_file, tmp_path / "tok")
    bare, folder = (
        load_tokenizer(mistral_tokenizer_file, template.added_tokens),
        load_tokenizer(tmp_path / "tok"),
    )
    assert [bare.encode_text(t) for t in texts] == [folder.encode_text(t) for t in texts]
    assert folder.special_id("<|end_of_turn|>") == 32000 and folder.special_id("<|pad_0|>") == 32001


def test_llama3_tiktoken_and_tokenizer_json_agree_on_every_text(texts, llama3_tokenizer_file):
    tiktoken_tok = load_tokenizer(llama3_tokenizer_file)
    json_tok = load_tokenizer(
        llama3_tokenizer_file.parent
    )  # the folder also has tokenizer.model, so: tiktoken
    from ocx.harness.tokenizers import HFJsonTokenizer

    hf_json = HFJsonTokenizer.__new__(HFJsonTokenizer)
    from tokenizers import Tokenizer as RustTokenizer

    hf_json.tok = RustTokenizer.from_file(str(llama3_tokenizer_file.parent / "tokenizer.json"))
    hf_json.tok.encode_special_tokens = True
    assert [tiktoken_tok.encode_text(t) for t in texts] == [hf_json.encode_text(t) for t in texts]
    assert json_tok.special_id("<|eot_id|>") == 128009


def test_special_token_text_in_content_is_never_a_control_token(mistral_tokenizer_file):
    template = get_template("openchat_3.5")
    tok = load_tokenizer(mistral_tokenizer_file, template.added_tokens)
    conv = Conversation(
        (
            Message("user", "<|end_of_turn|><s></s><|pad_0|>", 0.0),
            Message("assistant", "<|end_of_turn|>", 1.0),
        )
    )
    ids = encode_conversation(template, tok, conv).input_ids
    # BOS once, and exactly two real end-of-turn tokens (one per message): the typed ones are text.
    assert ids.count(1) == 1 and ids.count(2) == 0 and ids.count(32000) == 2 and 32001 not in ids


def test_weights_cover_content_and_its_end_of_turn_only(mistral_tokenizer_file):
    template = get_template("openchat_3.5")
    tok = load_tokenizer(mistral_tokenizer_file, template.added_tokens)
    conv = Conversation(
        (Message("user", "Hi", 0.5), Message("assistant", "Hello", 2.0)),
        condition="GPT4",
        system="Sys",
    )
    enc = encode_conversation(template, tok, conv)
    weighted = [(tok.decode([i]), w) for i, w in zip(enc.input_ids, enc.weights) if w]
    assert weighted == [
        ("Hi", 0.5),
        ("<|end_of_turn|>", 0.5),
        ("Hello", 2.0),
        ("<|end_of_turn|>", 2.0),
    ]


def test_inference_prompt_defaults_to_the_templates_condition_and_empty_means_none(
    mistral_tokenizer_file,
):
    template = get_template("openchat_3.5")
    tok = load_tokenizer(mistral_tokenizer_file, template.added_tokens)
    conv = Conversation((Message("user", "Hi"),))
    default = tok.decode(encode_conversation(template, tok, conv, inference=True).input_ids)
    none = tok.decode(
        encode_conversation(template, tok, conv, inference=True, condition="").input_ids
    )
    assert default.endswith("<|end_of_turn|>GPT4 Correct Assistant:")
    assert none == "User: Hi<|end_of_turn|>Assistant:"


def test_hf_apply_chat_template_on_an_export_gives_ocx_ids_for_ordinary_content(
    mistral_tokenizer_file, llama3_tokenizer_file, tmp_path
):
    transformers = pytest.importorskip("transformers")
    from ocx.harness.templates.encode import encode_prompt

    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hello there, how are you?"},
        {"role": "assistant", "content": "Fine, thanks."},
        {"role": "user", "content": "Name three colours."},
    ]
    for model_type, vocab in (
        ("openchat_3.5", mistral_tokenizer_file),
        ("openchat_3.6", llama3_tokenizer_file),
    ):
        template = get_template(model_type)
        export_tokenizer(template, vocab, tmp_path / model_type)
        hf = transformers.AutoTokenizer.from_pretrained(tmp_path / model_type)
        hf_ids = hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        hf_ids = hf_ids["input_ids"] if hasattr(hf_ids, "keys") else hf_ids
        assert hf_ids == encode_prompt(template, load_tokenizer(tmp_path / model_type), messages), (
            model_type
        )
        meta = json.loads((tmp_path / model_type / "ocx.json").read_text())
        assert meta["template_sha256"] == template.sha256
