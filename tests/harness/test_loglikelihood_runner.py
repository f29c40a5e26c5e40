"""The log-likelihood runner: acc / acc_norm from a backend's log-likelihoods, caching, dedup."""

from __future__ import annotations

import json

import pytest

from ocx.benchmarks.base import MultipleChoice, Sample
from ocx.harness.cache import ResponseCache
from ocx.harness.loglikelihood_encode import PairEncoder
from ocx.harness.loglikelihood_runner import LoglikelihoodRunner
from ocx.harness.logprobs import Loglikelihood
from ocx.harness.runner import RequestsFailedError
from ocx.harness.stats import accuracy_interval


class CharTokenizer:
    """One token per character (its code point); BOS is 1. Enough for the runner's bookkeeping."""

    bos_token, eos_token = "<s>", "</s>"

    def special_id(self, token):
        return {"<s>": 1, "</s>": 2}.get(token)

    def encode_text(self, text):
        return [ord(c) for c in text]

    def encode_batch(self, texts):
        return [self.encode_text(t) for t in texts]


class TableBackend:
    """Log-likelihoods from a table keyed by the continuation text; records every request."""

    def __init__(self, table: dict[str, float], model: str = "fake", fail: set[str] = frozenset()):
        self.table, self.model, self.fail = table, model, fail
        self.asked: list[tuple[tuple[int, ...], str]] = []

    def identity(self):
        return {"kind": "table", "model": self.model}

    def loglikelihood(self, requests, on_result, on_error):
        for request in requests:
            text = "".join(map(chr, request.continuation_ids))
            self.asked.append((request.context_ids, text))
            if text in self.fail:
                on_error(request.index, RuntimeError(f"no score for {text!r}"))
                continue
            logprob = self.table[text]
            on_result(request.index, Loglikelihood(logprob, logprob > -1, (logprob,)))


class ListSuite:
    """A suite whose samples are given as MultipleChoice items."""

    version, source, max_fewshot = "1", "test items", 0

    def __init__(self, name: str, items: list[MultipleChoice]):
        self.name, self.items = name, items

    def load(self, data, limit=None):
        items = self.items[:limit] if limit else self.items
        return [
            Sample(
                f"{self.name}/t/{i}",
                mc.context,
                [{"role": "user", "content": mc.context}],
                str(mc.gold),
                {},
            )
            for i, mc in enumerate(items)
        ]

    def multiple_choice(self, sample, num_fewshot=0):
        return self.items[int(sample.id.rsplit("/", 1)[1])]


ITEMS = [
    # acc right (" yes" likeliest), acc_norm wrong (" no" likeliest per character: -2/2 vs
    # -3/3? see table)
    MultipleChoice("Is it?", ("yes", "no"), (0,)),
    # a tie: the first option wins
    MultipleChoice("Pick", ("x", "y"), (1,)),
    # two gold options
    MultipleChoice("Which", ("red", "blue", "green"), (1, 2)),
]
# continuations are " yes" (4 chars with delimiter; acc_norm divides by len("yes") = 3), ...
TABLE = {
    " yes": -1.5,
    " no": -1.2,
    " x": -0.7,
    " y": -0.7,
    " red": -3.0,
    " blue": -2.0,
    " green": -2.5,
}


def run(backend, cache, items=ITEMS, chat=False, name="toy"):
    runner = LoglikelihoodRunner(backend, cache, PairEncoder(CharTokenizer(), chat=chat))
    return runner.run([ListSuite(name, items)], data=None)


def test_acc_and_acc_norm_follow_lm_eval_on_hand_computed_log_likelihoods():
    with ResponseCache(None) as cache:
        result = run(TableBackend(TABLE), cache)
    summary = result.summaries["toy"].scores()
    # item 0: acc picks " no" (-1.2 > -1.5): wrong;
    #         acc_norm: -1.5/3 = -0.5 vs -1.2/2 = -0.6 -> "yes": right
    # item 1: tie -0.7 = -0.7 -> first ("x"): wrong both ways
    # item 2: acc " blue" (-2.0), gold: right;
    #         acc_norm -3/3=-1, -2/4=-0.5, -2.5/5=-0.5 -> tie -> "blue": right
    records = [r.to_dict() for r in result.records]
    assert [(r["pred"], r["pred_norm"], r["acc"], r["acc_norm"]) for r in records] == [
        (1, 0, False, True),
        (0, 0, False, False),
        (1, 1, True, True),
    ]
    assert summary["accuracy"] == pytest.approx(1 / 3) and summary["acc_norm"] == pytest.approx(
        2 / 3
    )
    assert summary["correct"] == 1 and summary["n"] == 3
    expected = accuracy_interval([0.0, 0.0, 1.0]).as_dict()
    assert {k: summary[k] for k in expected} == expected
    assert summary["acc_norm_stderr"] == accuracy_interval([1.0, 0.0, 1.0]).stderr
    assert records[0]["options"][0] == {
        "choice": "yes",
        "continuation": " yes",
        "logprob": -1.5,
        "is_greedy": False,
        "tokens": 4,
    }
    assert result.settings["scoring"] == "loglikelihood" and result.settings["chat"] is False


def test_a_rerun_is_answered_from_the_cache_and_a_new_model_is_not(tmp_path):
    path = tmp_path / "cache.sqlite"
    with ResponseCache(path) as cache:
        first = run(TableBackend(TABLE), cache)
    assert first.sent == 7 and first.cached == 0

    class Untouchable(TableBackend):
        def loglikelihood(self, requests, on_result, on_error):
            raise AssertionError("a fully cached run must not start the model")

    with ResponseCache(path) as cache:
        again = run(Untouchable({}), cache)
    assert again.sent == 0 and again.cached == 7
    assert [r.to_dict()["options"] for r in again.records] == [
        r.to_dict()["options"] for r in first.records
    ]
    assert all(r.cached for r in again.records)
    with ResponseCache(path) as cache:
        other = run(TableBackend(TABLE, model="other"), cache)
    assert other.sent == 7  # the model identity is part of the key


def test_identical_context_and_option_pairs_are_asked_once():
    backend = TableBackend(TABLE)
    twice = [ITEMS[0], ITEMS[0], MultipleChoice("Is it?", ("no", "maybe"), (0,))]
    backend.table = {**TABLE, " maybe": -9.0}
    with ResponseCache(None) as cache:
        result = run(backend, cache, items=twice)
    assert sorted(text for _, text in backend.asked) == [" maybe", " no", " yes"]
    assert result.sent == 3 and len(result.records) == 3


def test_a_pair_recurring_far_apart_is_asked_once_and_not_counted_as_cached():
    backend = TableBackend(TABLE)
    items = [ITEMS[0]] * 70 + [ITEMS[1]]  # the runner encodes and looks up 32 samples at a time
    with ResponseCache(None) as cache:
        result = run(backend, cache, items=items)
    assert sorted(text for _, text in backend.asked) == [" no", " x", " y", " yes"]
    assert result.sent == 4 and result.cached == 0 and len(result.records) == 71
    assert all(r.to_dict()["options"][0]["logprob"] == -1.5 for r in result.records[:70])


def test_failed_requests_stop_the_run_and_the_answered_ones_are_cached(tmp_path):
    path = tmp_path / "cache.sqlite"
    with ResponseCache(path) as cache:
        with pytest.raises(RequestsFailedError, match="1 of 7 log-likelihood requests failed"):
            run(TableBackend(TABLE, fail={" green"}), cache)
    with ResponseCache(path) as cache:
        backend = TableBackend(TABLE)
        result = run(backend, cache)
    assert [text for _, text in backend.asked] == [" green"] and result.cached == 6


def test_a_damaged_cache_row_is_asked_again(tmp_path):
    path = tmp_path / "cache.sqlite"
    with ResponseCache(path) as cache:
        run(TableBackend(TABLE), cache)
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("UPDATE responses SET response = 'not json' WHERE rowid = 1")
    with ResponseCache(path) as cache:
        result = run(TableBackend(TABLE), cache)
    assert result.sent == 1 and result.cached == 6


def test_an_option_that_encodes_to_no_tokens_is_refused_by_sample():
    from ocx.harness.errors import InputError

    with ResponseCache(None) as cache, pytest.raises(InputError, match="toy/t/0.*no tokens"):
        run(
            TableBackend(TABLE),
            cache,
            items=[MultipleChoice("Q", ("",), (0,), target_delimiter="")],
        )


def test_chat_and_plain_prompts_are_cached_apart():
    from ocx.harness.templates import get_template

    class ChatChars(CharTokenizer):
        def special_id(self, token):
            return {"<s>": 1, "</s>": 2, "<|end_of_turn|>": 3}.get(token)

        @property
        def specials(self):
            return {"<s>": 1, "</s>": 2, "<|end_of_turn|>": 3}

    backend = TableBackend({**TABLE, "yes": -1.0, "no": -2.0})
    items = [ITEMS[0]]
    with ResponseCache(None) as cache:
        plain = LoglikelihoodRunner(backend, cache, PairEncoder(ChatChars(), chat=False)).run(
            [ListSuite("t", items)], None
        )
        chat = LoglikelihoodRunner(
            backend,
            cache,
            PairEncoder(
                ChatChars(),
                chat=True,
                template=get_template("openchat_3.5"),
                condition="GPT4 Correct",
            ),
        ).run([ListSuite("t", items)], None)
    assert plain.sent == 2 and chat.sent == 2 and chat.cached == 0
    # Chat mode scores the bare option after the assistant header (no delimiter).
    assert [text for _, text in backend.asked[2:]] == ["yes", "no"]
    assert json.dumps(chat.records[0].to_dict()["options"][0]["continuation"]) == '"yes"'


def test_the_progress_bar_counts_every_option_once_cached_or_asked(tmp_path):
    class Progress:
        def __init__(self):
            self.total, self.done = {}, {}

        def add_task(self, name, total):
            self.total[name], self.done[name] = total, 0
            return name

        def advance(self, task):
            self.done[task] += 1

    items = [ITEMS[0], ITEMS[0], ITEMS[2]]
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        for _ in range(2):  # asked, then cached
            progress = Progress()
            LoglikelihoodRunner(
                TableBackend(TABLE),
                cache,
                PairEncoder(CharTokenizer(), chat=False),
                progress=progress,
            ).run([ListSuite("p", items)], None)
            assert progress.total == progress.done == {"p": 7}
