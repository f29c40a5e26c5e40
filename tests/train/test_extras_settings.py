"""Gradient accumulation, validation and tracking settings: checked before anything heavy,
refused with exit 2 and the fix; the validation split is deterministic and never splits a
conversation's copies."""

from __future__ import annotations

import json

import pytest

from ocx.adapters.train.config import TrainConfig  # noqa: E402
from ocx.harness.errors import InputError  # noqa: E402
from tests.cli import invoke_train
from tests.train.conftest import write_token_dataset


def rows(n: int, seed: int = 0):
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(4, 20)
        out.append(
            ([rng.randrange(100, 30000) for _ in range(length)], [0.0] * 2 + [1.0] * (length - 2))
        )
    return out


@pytest.fixture()
def dataset(tmp_path):
    from ocx.harness.data import load_tokenized

    return load_tokenized(write_token_dataset(tmp_path / "data", rows(40)))


def test_the_validation_split_holds_out_the_fraction_and_does_not_depend_on_row_order(
    tmp_path, dataset
):
    from ocx.adapters.train.validation import split_by_conversation
    from ocx.harness.data import load_tokenized

    kept, held = split_by_conversation(dataset, 0.2, seed=42)
    assert (len(kept), len(held)) == (32, 8) and not set(kept) & set(held)
    assert list(split_by_conversation(dataset, 0.2, seed=42)[1]) == list(held)
    reversed_data = load_tokenized(write_token_dataset(tmp_path / "reversed", rows(40)[::-1]))
    _, held_reversed = split_by_conversation(reversed_data, 0.2, seed=42)
    assert sorted(39 - int(i) for i in held_reversed) == sorted(int(i) for i in held)
    assert list(split_by_conversation(dataset, 0.2, seed=7)[1]) != list(held)  # the seed chooses


def test_copies_of_a_conversation_are_never_split_between_training_and_validation(tmp_path):
    from ocx.adapters.train.validation import split_by_conversation
    from ocx.harness.data import load_tokenized

    data = load_tokenized(
        write_token_dataset(tmp_path / "d", rows(5) * 4)
    )  # every conversation 4 times
    kept, held = split_by_conversation(data, 0.1, seed=0)
    as_ids = lambda indices: {tuple(data[int(i)]["input_ids"]) for i in indices}  # noqa: E731
    assert len(held) % 4 == 0 and len(held) >= 4 and not as_ids(kept) & as_ids(held)


def test_a_tiny_fraction_still_holds_out_one_conversation_and_keeps_one(dataset):
    from ocx.adapters.train.validation import split_by_conversation

    assert len(split_by_conversation(dataset, 1e-6, seed=0)[1]) == 1
    assert len(split_by_conversation(dataset, 0.999, seed=0)[0]) == 1


def test_validation_data_tokenized_with_another_tokenizer_is_refused_naming_the_field(tmp_path):
    from ocx.adapters.train.validation import load_val_data

    val = write_token_dataset(tmp_path / "val", rows(3))
    manifest = json.loads((val / "manifest.json").read_text())
    (val / "manifest.json").write_text(json.dumps({**manifest, "tokenizer_sha256": "b" * 64}))
    with pytest.raises(InputError) as err:
        load_val_data(val, {**manifest, "tokenizer_sha256": "a" * 64})
    (problem,) = err.value.problems
    assert problem.file.endswith("manifest.json") and problem.field == "tokenizer_sha256"


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--report-to", "tensorbord"],
            "unknown tracker 'tensorbord'; did you mean 'tensorboard'?",
        ),
        (["--report-to", "tensorboard,mlflow"], "unknown tracker 'mlflow'"),
        (
            ["--grad-accum-steps", "0"],
            "--grad-accum-steps: must be an integer from 1 to 65,536, got 0",
        ),
        (["--val-fraction", "1"], "--val-fraction: must be a finite number >= 0 and < 1, got 1.0"),
        (["--val-every-steps", "10"], "--val-every-steps: needs a validation set"),
        (
            ["--val-fraction", "0.1", "--val-data", "."],
            "give either --val-data or --val-fraction, not both",
        ),
    ],
)
def test_bad_extras_flags_exit_2_with_the_fix_and_no_traceback(
    tmp_path, monkeypatch, capsys, flags, message
):
    data = write_token_dataset(tmp_path / "data", rows(3))
    code, out, err = invoke_train(monkeypatch, capsys, data, tmp_path / "o", *flags)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_wandb_missing_is_refused_with_the_pip_command(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(InputError) as err:
        TrainConfig(
            data=write_token_dataset(tmp_path / "d", rows(2)),
            model="m",
            out=tmp_path / "o",
            report_to=["wandb"],
        ).validate()
    assert [p.message for p in err.value.problems] == ["wandb is not installed: pip install wandb"]


def test_report_to_parses_commas_case_and_none():
    from ocx.adapters.train.tracking import parse_report_to

    assert parse_report_to(" TensorBoard, wandb,tensorboard ") == ["tensorboard", "wandb"]
    assert parse_report_to("none") == [] and parse_report_to(["none"]) == []


def test_deepspeed_accumulates_as_many_steps_as_the_trainer_whatever_the_users_file_says(tmp_path):
    from ocx.adapters.train.ds_config import build_ds_config

    user = tmp_path / "ds.json"
    user.write_text(json.dumps({"gradient_accumulation_steps": 8}))
    config = build_ds_config(2, user, grad_clip=1.0, bf16=False, grad_accum_steps=4)
    assert (config["gradient_accumulation_steps"], config["train_micro_batch_size_per_gpu"]) == (
        4,
        1,
    )


def test_an_epochs_last_optimizer_step_takes_the_remaining_micro_steps():
    from ocx.adapters.train.schedule import optimizer_steps

    assert [optimizer_steps(n, 4) for n in (1, 4, 5, 8, 9)] == [1, 1, 2, 2, 3]


def test_recipes_check_the_new_train_keys_like_the_flags():
    from ocx.recipes import load_recipe

    with pytest.raises(InputError) as err:
        load_recipe(
            "tiny-crlft",
            ["train.grad_accum_steps=0", "train.report_to=[tensorbord]", "train.val_fraction=1.5"],
        )
    fields = {p.field: p.message for p in err.value.problems}
    assert {"train.grad_accum_steps", "train.report_to", "train.val_fraction"} <= set(fields), (
        fields
    )
    assert "did you mean 'tensorboard'" in fields["train.report_to"]
    recipe = load_recipe(
        "tiny-crlft",
        [
            "train.grad_accum_steps=4",
            "train.report_to=[tensorboard]",
            "train.val_fraction=0.1",
            "train.val_every_steps=5",
        ],
    )
    assert (recipe.train["grad_accum_steps"], recipe.train["report_to"]) == (4, ["tensorboard"])


def test_identical_conversations_cannot_be_split_and_nothing_is_held_out(tmp_path):
    from ocx.adapters.train.validation import split_by_conversation
    from ocx.harness.data import load_tokenized

    data = load_tokenized(write_token_dataset(tmp_path / "d", rows(1) * 5))
    kept, held = split_by_conversation(data, 0.5, seed=0)
    assert (len(kept), len(held)) == (5, 0)


def test_eval_scores_of_an_epoch_read_back_after_training_go_to_the_runs_trackers(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ocx.adapters.train import tracking

    out = tmp_path / "train"
    out.mkdir()
    (out / "train.json").write_text(json.dumps({"config": {"report_to": ["tensorboard"]}}))
    (out / "metrics.jsonl").write_text(json.dumps({"kind": "epoch", "epoch": 0, "step": 7}) + "\n")
    assert tracking.active_tracker() is None
    tracking.log_eval_scores(0, {"gsm8k [GPT4]": 0.5, "gsm8k [GPT3]": 0.25}, out)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("eval/gsm8k [GPT4]")] == [(7, 0.5)]
    assert [(e.step, e.value) for e in events.Scalars("eval/gsm8k [GPT3]")] == [(7, 0.25)]


def test_eval_scores_of_a_run_without_trackers_are_not_logged_anywhere(tmp_path):
    from ocx.adapters.train import tracking

    (tmp_path / "train.json").write_text(json.dumps({"config": {"report_to": []}}))
    tracking.log_eval_scores(0, {"gsm8k [GPT4]": 0.5}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.json"]
