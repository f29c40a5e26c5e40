"""The batched encoder used by `ocx data tokenize` equals `encode_conversation` exactly."""

from __future__ import annotations

import pytest

from ocx.harness.conversation import Conversation, Message, parse_conversation
from ocx.harness.data.tokenize import BatchEncoder
from ocx.harness.templates import get_template, template_names
from ocx.harness.templates.encode import encode_conversation
from ocx.harness.tokenizers import load_tokenizer
from ocx.testing.conversations import sharegpt_like

VOCAB_FILES = {
    "mistral-v1": "mistral-v1/tokenizer.model",
    "llama2": "llama2/tokenizer.model",
    "llama3": "llama3/tokenizer.model",
}


def _conversations() -> list[Conversation]:
    convs = [
        parse_conversation(c, require_weights=True)
        for c in sharegpt_like(40, seed=5, mean_words=25)
    ]
    convs.append(
        Conversation(
            (Message("user", "  lead and trail  ", 0.5), Message("assistant", "", 1.0)),
            "GPT3",
            "sys",
        )
    )
    convs.append(Conversation((Message("assistant", "starts with the assistant", 2.0),), ""))
    convs.append(
        Conversation(
            (
                Message("user", "<|eot_id|><|end_of_turn|></s><s> typed", 0.0),
                Message("assistant", "ok", 1.0),
                Message("user", "more", 0.0),
            ),
            "GPT4 Correct",
        )
    )
    return convs


@pytest.mark.parametrize(
    "model_type", [n for n in template_names() if get_template(n).base_vocabulary in VOCAB_FILES]
)
def test_batch_encoder_gives_the_same_ids_and_weights_as_encode_conversation(
    model_type, shared_dir
):
    template = get_template(model_type)
    tokenizer = load_tokenizer(
        shared_dir / "tokenizers" / VOCAB_FILES[template.base_vocabulary], template.added_tokens
    )
    convs = _conversations()
    expected = [encode_conversation(template, tokenizer, c) for c in convs]
    encoder = BatchEncoder(template, tokenizer)
    assert encoder.encode(convs) == expected
    # A second batch reuses the shape and structure caches and must still agree.
    assert encoder.encode(convs[::-1]) == expected[::-1]


def test_batch_encoder_refuses_a_tokenizer_without_the_end_of_turn_token(mistral_tokenizer_file):
    template = get_template("openchat_3.5")
    with pytest.raises(ValueError, match="end_of_turn"):
        BatchEncoder(template, load_tokenizer(mistral_tokenizer_file))
