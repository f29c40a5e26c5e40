"""The chat-completions API through the official `openai` client, on the transformers engine."""

from __future__ import annotations

import pytest

from ocx.harness.templates.encode import encode_prompt

HELLO = [{"role": "user", "content": "Hello, who are you?"}]


def _prompt_tokens(model, messages, condition=None) -> int:
    return len(encode_prompt(model.template, model.tokenizer, messages, condition=condition))


def test_non_streaming_completion_has_exact_usage_and_respects_max_tokens(client, served_model):
    r = client.chat.completions.create(model="tiny-chat", messages=HELLO, max_tokens=7, seed=1)
    assert r.object == "chat.completion" and r.model == "tiny-chat"
    assert len(r.choices) == 1 and r.choices[0].message.role == "assistant"
    assert r.usage.prompt_tokens == _prompt_tokens(served_model, HELLO)
    if r.choices[0].finish_reason == "length":
        assert r.usage.completion_tokens == 7
    assert r.usage.completion_tokens <= 7
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_max_completion_tokens_is_honoured_like_max_tokens(client):
    r = client.chat.completions.create(
        model="tiny-chat", messages=HELLO, max_completion_tokens=3, temperature=0
    )
    assert r.usage.completion_tokens <= 3


def test_streaming_yields_the_same_text_as_non_streaming_for_a_seed_and_ends_with_usage(client):
    kwargs = dict(model="tiny-chat", messages=HELLO, max_tokens=12, seed=7, temperature=0.9)
    whole = client.chat.completions.create(**kwargs)
    chunks = list(
        client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [whole.choices[0].finish_reason]
    assert (
        chunks[-1].choices == []
        and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    )


def test_raw_stream_ends_with_done(server_url):
    import httpx

    body = {"model": "tiny-chat", "messages": HELLO, "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{server_url}/v1/chat/completions", json=body, timeout=60) as r:
        events = [line for line in r.iter_lines() if line]
    assert r.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "data: [DONE]"


def test_n_two_returns_two_choices_whose_tokens_add_up(client):
    r = client.chat.completions.create(model="tiny-chat", messages=HELLO, n=2, max_tokens=6, seed=3)
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].message.content != r.choices[1].message.content  # seeds 3 and 4 differ
    assert r.usage.completion_tokens == 12 or any(c.finish_reason == "stop" for c in r.choices)


def test_streaming_with_n_two_delivers_both_choices(client):
    chunks = list(
        client.chat.completions.create(
            model="tiny-chat", messages=HELLO, n=2, max_tokens=4, seed=3, stream=True
        )
    )
    finished = {c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason}
    assert finished == {0, 1}


def test_same_seed_gives_same_output_and_greedy_is_deterministic(client):
    a = client.chat.completions.create(model="tiny-chat", messages=HELLO, max_tokens=10, seed=11)
    b = client.chat.completions.create(model="tiny-chat", messages=HELLO, max_tokens=10, seed=11)
    assert a.choices[0].message.content == b.choices[0].message.content
    g1 = client.chat.completions.create(
        model="tiny-chat", messages=HELLO, max_tokens=10, temperature=0
    )
    g2 = client.chat.completions.create(
        model="tiny-chat", messages=HELLO, max_tokens=10, temperature=0
    )
    assert g1.choices[0].message.content == g2.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
def test_stop_string_cuts_the_output_before_it(client, stream):
    kwargs = dict(model="tiny-chat", messages=HELLO, max_tokens=16, temperature=0)
    full = client.chat.completions.create(**kwargs).choices[0].message.content
    assert len(full) > 6, full
    stop = full[3:6]
    expected = full[: full.index(stop)]
    if stream:
        chunks = list(client.chat.completions.create(**kwargs, stop=[stop], stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        reason = [
            c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
        ][0]
    else:
        r = client.chat.completions.create(**kwargs, stop=stop)
        text, reason = r.choices[0].message.content, r.choices[0].finish_reason
    assert text == expected and reason == "stop"


def test_condition_system_message_and_default_shape_the_prompt(client, served_model):
    def usage(messages, **extra):
        return client.chat.completions.create(
            model="tiny-chat", messages=messages, max_tokens=1, extra_body=extra
        ).usage.prompt_tokens

    assert usage(HELLO) == _prompt_tokens(served_model, HELLO, "GPT4 Correct")
    assert usage(HELLO, condition="Math Correct") == _prompt_tokens(
        served_model, HELLO, "Math Correct"
    )
    assert usage(HELLO, condition="") == _prompt_tokens(served_model, HELLO, "")
    assert usage(HELLO, condition="") < usage(HELLO)  # "" means no condition, not the default
    with_system = [{"role": "system", "content": "You are a careful assistant."}, *HELLO]
    assert usage(with_system) == _prompt_tokens(served_model, with_system) > usage(HELLO)


def test_model_resolves_by_served_name_type_alias_and_path(client, served_model):
    for name in ["tiny-chat", "openchat_3.5", "openchat_v3.2_mistral", str(served_model.path)]:
        r = client.chat.completions.create(model=name, messages=HELLO, max_tokens=1)
        assert r.model == name
    listed = [m.id for m in client.models.list().data]
    assert {"tiny-chat", "openchat_3.5", "openchat_v3.2_mistral"} <= set(listed)


def test_default_max_tokens_is_the_rest_of_the_context(served_model):
    from ocx.adapters.serve.chat import prepare
    from ocx.adapters.serve.protocol import ChatCompletionRequest

    prep = prepare(ChatCompletionRequest(model="tiny-chat", messages=HELLO), served_model)
    assert prep.settings[0].max_tokens == served_model.context_length - len(prep.prompt_ids)
    assert served_model.context_length == 2048  # the tiny config's max_position_embeddings < 8192


def test_health_and_chat_page_are_served(server_url):
    import httpx

    assert httpx.get(f"{server_url}/health").json()["status"] == "ok"
    page = httpx.get(f"{server_url}/")
    assert page.status_code == 200 and "<title>ocx chat</title>" in page.text
