"""A recipe whose base is a hub id ("org/name") trains, evaluates every epoch and writes complete
checkpoints, offline: the model is served from a pre-populated Hugging Face cache, laid out as
huggingface_hub writes it ($HF_HOME/hub/models--org--name/{refs/main, snapshots/<commit>/})."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli import child_env

pytest.importorskip("torch")
pytest.importorskip("deepspeed")
pytestmark = [pytest.mark.slow, pytest.mark.deepspeed]

REPO_ID = "ocx-test/tiny-llama"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

RECIPE = f"""\
name: hub-tiny
description: a hub-id base served offline from the HF cache
model:
  base: {REPO_ID}
  model_type: openchat_3.5
data:
  - generator: arithmetic
    quality: correct
    count: 120
    condition: GPT4
    weight: 1.0
train:
  epochs: 2
  batch_max_len: 2048
  lr: 0.003
  seed: 0
  gradient_checkpointing: false
  progress: false
eval:
  suites: [arithmetic]
  conditions: [GPT4]
  limit: 4
  max_tokens: 8
  engine: transformers
output: out
"""


def populate_hf_cache(hf_home, tokenizer_file):
    """A tiny random Llama with the Mistral vocabulary as a hub snapshot: no ocx.json, no chat
    template (a hub base model has neither)."""
    from ocx.adapters.hf.tiny import build_tiny_checkpoint

    repo = hf_home / "hub" / ("models--" + REPO_ID.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    build_tiny_checkpoint(snapshot, tokenizer_file, "openchat_3.5")
    for name in ("ocx.json", "chat_template.jinja"):
        (snapshot / name).unlink()
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory, mistral_tokenizer_file):
    root = tmp_path_factory.mktemp("hub-recipe")
    populate_hf_cache(root / "hf", mistral_tokenizer_file)
    (root / "hub-tiny.yaml").write_text(RECIPE)
    # Without the rank/port variables an in-process training test of this session left behind
    # (its port is still held), so the recipe's trainer makes its own process group.
    env = child_env(
        drop=("HF_HUB_CACHE",), HF_HOME=str(root / "hf"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocx.cli",
            "recipe",
            "run",
            str(root / "hub-tiny.yaml"),
            "--output",
            str(root / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, env


def test_a_hub_id_recipe_trains_and_evaluates_every_epoch_offline(hub_run):
    root, _ = hub_run
    report = json.loads((root / "out" / "report.json").read_text())
    assert [e["epoch"] for e in report["epochs"]] == [0, 1]  # as the checkpoint folders
    assert all("arithmetic [GPT4]" in e["scores"] for e in report["epochs"])


def test_every_epoch_folder_is_a_complete_model_with_the_datas_tokenizer(hub_run):
    from transformers import AutoModelForCausalLM

    from ocx.adapters.serve.model import load_served_model

    root, _ = hub_run
    manifest = json.loads(
        next((root / "out" / "data").glob("tokenized-*/manifest.json")).read_text()
    )
    for epoch in (0, 1):
        folder = root / "out" / "train" / f"epoch_{epoch}"
        names = {p.name for p in folder.iterdir()}
        assert {
            "config.json",
            "model.safetensors",
            "tokenizer.model",
            "tokenizer_config.json",
            "chat_template.jinja",
            "ocx.json",
        } <= names, names
        meta = json.loads((folder / "ocx.json").read_text())
        assert (
            meta["model_type"] == "openchat_3.5"
            and meta["tokenizer_sha256"] == manifest["tokenizer_sha256"]
        )
        assert AutoModelForCausalLM.from_pretrained(folder).config.vocab_size == 32002
        served = load_served_model(
            str(folder)
        )  # what `ocx serve --model` checks before loading weights
        assert (
            served.model_type == "openchat_3.5"
            and served.tokenizer.sha256 == manifest["tokenizer_sha256"]
        )


def test_ocx_eval_loads_an_epoch_folder_with_no_other_model_argument(hub_run):
    root, env = hub_run
    out = root / "eval-again"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocx.cli",
            "eval",
            "--model",
            str(root / "out" / "train" / "epoch_1"),
            "--sets",
            "arithmetic",
            "--limit",
            "2",
            "--max-tokens",
            "4",
            "--output",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "arithmetic" in json.loads((out / "results.json").read_text())["summary"]


def test_a_hub_id_missing_from_the_offline_cache_is_a_clear_error(tmp_path):
    from ocx.adapters.hf.checkpoint import local_model_dir

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="not in the Hugging Face cache"):
        local_model_dir("ocx-test/not-cached-anywhere", tokenizer_only=True)
