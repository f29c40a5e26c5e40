"""`logprobs` and `top_logprobs` on chat completions, in OpenAI's shape, streaming included: the
end of turn is never reported, a stop string drops the logprobs of the tokens it cuts, and a
character split over byte-fallback tokens is rebuilt from their `bytes`."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.serve.conftest import running_server
from tests.serve.fake_logprobs import LogprobEngine, generated_logprob

HELLO = [{"role": "user", "content": "Hello"}]
ANSWER = "Paris is nice 𝔘 ok"


@pytest.fixture(scope="module")
def answer_ids(served_model):
    return served_model.tokenizer.encode_text(ANSWER)


@pytest.fixture(scope="module")
def url(served_model, answer_ids):
    with running_server(
        LogprobEngine(answer_ids, eot=served_model.stop_token_ids[0]), served_model
    ) as u:
        yield u


def chat(url: str, **body) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "tiny-chat", "messages": HELLO, **body},
        timeout=60,
    )


def streamed(url: str, **body) -> list[dict]:
    chunks = []
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        timeout=60,
        json={"model": "tiny-chat", "messages": HELLO, "stream": True, **body},
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line.removeprefix("data: ")))
    return chunks


def test_each_generated_token_is_reported_once_and_the_end_of_turn_never(url, answer_ids):
    r = chat(url, logprobs=True, top_logprobs=3)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    content = choice["logprobs"]["content"]
    assert choice["message"]["content"] == ANSWER and choice["finish_reason"] == "stop"
    assert len(content) == len(answer_ids)
    assert [e["logprob"] for e in content] == [generated_logprob(k) for k in range(len(answer_ids))]
    assert all(
        len(e["top_logprobs"]) == 3 and e["top_logprobs"][0]["token"] == e["token"] for e in content
    )
    assert b"".join(bytes(e["bytes"]) for e in content).decode("utf-8").strip() == ANSWER


def test_a_character_split_over_byte_fallback_tokens_is_rebuilt_from_their_bytes(url, served_model):
    content = chat(url, logprobs=True).json()["choices"][0]["logprobs"]["content"]
    byte_tokens = [e for e in content if len(e["bytes"]) == 1 and e["bytes"][0] >= 0x80]
    assert len(byte_tokens) == 4  # 𝔘 is four UTF-8 bytes, each its own <0xNN> piece
    assert bytes(b for e in byte_tokens for b in e["bytes"]).decode("utf-8") == "𝔘"
    assert byte_tokens[0]["token"] == "\\xf0"
    assert all(e["top_logprobs"] == [] for e in content)


def test_without_logprobs_the_field_is_null(url):
    assert chat(url).json()["choices"][0]["logprobs"] is None


def test_a_stop_string_drops_the_logprobs_of_the_tokens_it_cuts(url, served_model):
    choice = chat(url, logprobs=True, stop=[" is"]).json()["choices"][0]
    assert choice["message"]["content"] == "Paris"
    tokens = [e["token"] for e in choice["logprobs"]["content"]]
    assert "".join(tokens).strip() == "Paris"


def test_streamed_logprobs_arrive_with_their_text_and_equal_the_whole(url):
    whole = chat(url, logprobs=True, top_logprobs=2).json()["choices"][0]
    chunks = streamed(url, logprobs=True, top_logprobs=2)
    entries, text = [], ""
    for chunk in chunks:
        choice = chunk["choices"][0]
        text += choice["delta"].get("content") or ""
        if choice.get("logprobs"):
            entries += choice["logprobs"]["content"]
    assert text == whole["message"]["content"]
    assert entries == whole["logprobs"]["content"]


def test_streamed_logprobs_are_held_back_with_a_possible_stop_string(url):
    chunks = streamed(url, logprobs=True, stop=[" is n"])
    entries = [
        e
        for c in chunks
        if c["choices"][0].get("logprobs")
        for e in c["choices"][0]["logprobs"]["content"]
    ]
    assert "".join(e["token"] for e in entries).strip() == "Paris"


def test_every_choice_of_n_gets_its_own_logprobs(url, answer_ids):
    choices = chat(url, logprobs=True, n=3, seed=1).json()["choices"]
    assert [len(c["logprobs"]["content"]) for c in choices] == [len(answer_ids)] * 3


@pytest.mark.parametrize(
    "body, param",
    [
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 10**20}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
        ({"logprobs": 5}, "logprobs"),
        ({"logprobs": "true"}, "logprobs"),
    ],
)
def test_bad_logprobs_settings_are_400s_naming_the_field(url, body, param):
    r = chat(url, **body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_logprobs_false_with_top_logprobs_zero_is_accepted_as_clients_send_it(url):
    r = chat(url, logprobs=False, top_logprobs=0)
    assert r.status_code == 200 and r.json()["choices"][0]["logprobs"] is None


@pytest.mark.parametrize("kind", ["sentencepiece", "tiktoken", "tokenizer.json"])
def test_token_bytes_rebuild_the_exact_text_with_every_kind_of_tokenizer(
    shared_dir, tmp_path, kind
):
    import shutil

    from ocx.adapters.serve.logprobs_format import TokenTexts
    from ocx.harness.tokenizers import HFJsonTokenizer, SentencePieceTokenizer, TiktokenTokenizer

    if kind == "sentencepiece":
        tokenizer = SentencePieceTokenizer(
            shared_dir / "tokenizers" / "mistral-v1" / "tokenizer.model"
        )
    elif kind == "tiktoken":
        tokenizer = TiktokenTokenizer(shared_dir / "tokenizers" / "llama3" / "tokenizer.model")
    else:
        shutil.copy(shared_dir / "tokenizers" / "llama3" / "tokenizer.json", tmp_path)
        tokenizer = HFJsonTokenizer(tmp_path)
    text = "Grüße, 世界! 🙂 𝔘 ok  two\n\tend"
    ids = tokenizer.encode_text(text)
    texts = TokenTexts(tokenizer)
    joined = b"".join(texts.bytes_of(i) for i in ids)
    assert (
        joined.decode("utf-8").lstrip(" ") == text
    )  # sentencepiece's word boundary opens the text
    assert any(texts.text_of(i).startswith("\\x") for i in ids)  # 𝔘 is split below a character
