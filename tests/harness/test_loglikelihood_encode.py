"""Context and continuation token IDs for log-likelihood scoring, as lm-eval's `_encode_pair`."""

from __future__ import annotations

import pytest

from ocx.benchmarks.base import MultipleChoice
from ocx.harness.loglikelihood_encode import PairEncoder, split_trailing_space
from ocx.harness.templates import get_template
from ocx.harness.templates.encode import encode_prompt
from ocx.harness.tokenizers import load_tokenizer

OPENCHAT_TOKENS = {"<|end_of_turn|>": 32000, "<|pad_0|>": 32001}


@pytest.fixture(scope="module")
def mistral(mistral_tokenizer_file):
    return load_tokenizer(mistral_tokenizer_file, OPENCHAT_TOKENS)


@pytest.fixture(scope="module")
def llama3(llama3_tokenizer_file):
    return load_tokenizer(llama3_tokenizer_file)


@pytest.fixture(scope="module")
def sp(mistral_tokenizer_file):
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=str(mistral_tokenizer_file))


def lm_eval_pair(sp, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval 0.4.13's `_encode_pair` for a causal model whose tokenizer adds BOS (HF's Llama
    tokenizer), written out with raw sentencepiece: the reference ocx must equal."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = [sp.bos_id()] + sp.encode(context + continuation)
    context_enc = [sp.bos_id()] + sp.encode(context)
    return context_enc, whole[len(context_enc) :]


def plain(tokenizer, context: str, *choices: str, delimiter: str = " "):
    return PairEncoder(tokenizer, chat=False).encode(
        MultipleChoice(context, choices, (0,), delimiter)
    )


def test_trailing_spaces_of_the_context_move_to_the_continuation():
    assert split_trailing_space("Answer: ", "A") == ("Answer:", " A")
    assert split_trailing_space("Answer:\n\n ", "B") == ("Answer:", "\n\n B")
    assert split_trailing_space("Answer:", " C") == ("Answer:", " C")


def test_an_option_after_answer_colon_is_the_single_word_start_token_not_a_lone_space(mistral, sp):
    encoded = plain(mistral, "Question: 2+2?\nAnswer:", "A", "B")
    assert encoded.context_ids[0] == 1  # BOS, as the HF Llama tokenizer adds it
    assert encoded.context_ids[1:] == tuple(sp.encode("Question: 2+2?\nAnswer:"))
    assert encoded.continuation_ids == ((sp.piece_to_id("▁A"),), (sp.piece_to_id("▁B"),))


def test_a_context_ending_in_a_space_scores_the_same_ids_as_the_space_in_the_delimiter(mistral):
    with_space = plain(mistral, "Answer: ", "A", delimiter="")
    without = plain(mistral, "Answer:", "A")
    assert with_space == without


@pytest.mark.parametrize(
    "context, continuation",
    [
        ("Réponse : ", "ça va"),  # accents, trailing space moved
        ("答案是", "日本語"),  # CJK, no spaces at all
        ("The emoji is\n\n", "🙂 (smile)"),  # byte-fallback pieces, newlines moved
        ("I like sunflow", "ers"),  # the continuation goes on the context's last word
        ("x =  ", "  42"),  # runs of spaces on both sides
        ("Tab\t", "\tend"),
    ],
)
def test_ids_equal_lm_evals_encode_pair_on_unicode_and_whitespace(
    mistral, sp, context, continuation
):
    encoded = plain(mistral, context, continuation, delimiter="")
    reference = lm_eval_pair(sp, context, continuation)
    assert (list(encoded.context_ids), list(encoded.continuation_ids[0])) == reference
    assert sp.decode(list(encoded.context_ids) + list(encoded.continuation_ids[0])) == sp.decode(
        sp.encode(context + continuation)
    )


def test_a_word_split_across_the_seam_is_scored_as_the_whole_texts_tail_not_the_continuation_alone(
    mistral, sp
):
    encoded = plain(mistral, "I like sunflow", "ers", delimiter="")
    whole = [1] + sp.encode("I like sunflowers")
    assert (
        encoded.continuation_ids[0]
        == tuple(whole[len(encoded.context_ids) :])
        == (sp.piece_to_id("ers"),)
    )
    assert encoded.continuation_ids[0] != tuple(sp.encode("ers"))  # alone it would be "▁ers"


def test_a_continuation_the_context_swallows_encodes_to_nothing_as_in_lm_eval(mistral):
    # "Par" + "is" is "▁Paris", one token, as long as "▁Par": lm-eval's rule leaves no tokens to
    # score (its hf model asserts); the runner refuses such a sample by name.
    assert plain(mistral, "The capital of France is Par", "is", delimiter="").continuation_ids == (
        (),
    )


def test_chat_mode_scores_the_option_as_the_start_of_the_assistants_answer(mistral):
    template = get_template("openchat_3.5")
    encoder = PairEncoder(mistral, chat=True, template=template, condition="GPT4 Correct")
    encoded = encoder.encode(
        MultipleChoice("Q: 2+2?\nA: Among A through B, the answer is", ("A", "B"), (0,))
    )
    prompt = encode_prompt(
        template,
        mistral,
        [{"role": "user", "content": "Q: 2+2?\nA: Among A through B, the answer is"}],
        condition="GPT4 Correct",
    )
    assert list(encoded.context_ids) == prompt  # ends with "GPT4 Correct Assistant:"
    assert mistral.decode(prompt[-7:]).endswith("GPT4 Correct Assistant:")
    # The option is the assistant's first token, "▁A" (no delimiter: lm-eval drops it under a
    # chat template).
    assert encoded.continuation_ids == (
        tuple(mistral.encode_text("A")),
        tuple(mistral.encode_text("B")),
    )
    assert 32000 in encoded.context_ids  # the user turn's end of turn


def test_no_chat_has_no_template_tokens_and_chat_mode_no_plain_prefix(mistral):
    mc = MultipleChoice("Answer:", ("A",), (0,))
    plain_ids = PairEncoder(mistral, chat=False).encode(mc)
    chat_ids = PairEncoder(
        mistral, chat=True, template=get_template("openchat_3.5"), condition=""
    ).encode(mc)
    assert 32000 not in plain_ids.context_ids
    assert plain_ids.context_ids == (1, *mistral.encode_text("Answer:"))
    assert chat_ids.context_ids != plain_ids.context_ids
    assert (
        chat_ids.continuation_ids == plain_ids.continuation_ids == ((mistral.encode_text("A")[0],),)
    )


def test_a_system_prompt_goes_before_the_user_turn_in_chat_mode(mistral):
    template = get_template("openchat_3.5")
    mc = MultipleChoice("Answer:", ("A",), (0,))
    with_system = PairEncoder(
        mistral, chat=True, template=template, system_prompt="Be brief."
    ).encode(mc)
    assert list(with_system.context_ids) == encode_prompt(
        template,
        mistral,
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Answer:"}],
    )


def test_an_empty_context_is_conditioned_on_bos_as_lm_eval_does(mistral):
    encoded = plain(mistral, "", "Hello", delimiter="")
    assert encoded.context_ids == (1,)
    assert encoded.continuation_ids == (tuple(mistral.encode_text("Hello")),)


def test_llama3_gets_begin_of_text_and_a_one_token_spaced_letter(llama3):
    tokenizer = llama3
    encoded = plain(tokenizer, "Answer:", "A", "B")
    assert encoded.context_ids[0] == tokenizer.special_id("<|begin_of_text|>")
    assert encoded.continuation_ids == (
        (tokenizer.encode_text(" A")[0],),
        (tokenizer.encode_text(" B")[0],),
    )
    assert len(tokenizer.encode_text(" A")) == 1


def test_chat_mode_without_a_template_is_refused(mistral):
    with pytest.raises(ValueError, match="chat template"):
        PairEncoder(mistral, chat=True)


@pytest.mark.parametrize(
    "name",
    [
        "openchat_3.5",
        "openchat_3.6",
        "openchat_v3.2",
        "openchat_v3.1_llama2",
        "chatml",
        "zephyr",
        "llama3_instruct",
    ],
)  # (Gemma's vocabulary is not in ../shared)
def test_chat_continuations_equal_the_whole_prefilled_answers_tail_for_every_template(
    name, mistral_tokenizer_file, llama3
):
    template = get_template(name)
    tokenizer = (
        llama3
        if name in ("openchat_3.6", "llama3_instruct")
        else load_tokenizer(mistral_tokenizer_file, template.added_tokens)
    )
    context = "Q: naïve  spacing\n\n(A) x (B) y\nA: Among A through B, the answer is "
    choices = ("A", " B", "Paris", "日本")
    for condition in (None, "GPT4 Correct"):
        encoder = PairEncoder(
            tokenizer, chat=True, template=template, condition=condition, system_prompt="Sys"
        )
        encoded = encoder.encode(MultipleChoice(context, choices, (0,)))
        for choice, continuation in zip(choices, encoded.continuation_ids):
            messages = [{"role": "system", "content": "Sys"}, {"role": "user", "content": context}]
            whole = encode_prompt(
                template,
                tokenizer,
                [*messages, {"role": "assistant", "content": choice}],
                condition=condition,
            )
            assert whole[: len(encoded.context_ids)] == list(encoded.context_ids)
            assert tuple(whole[len(encoded.context_ids) :]) == continuation
