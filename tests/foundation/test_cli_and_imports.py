"""The CLI: fast start without heavy imports, did-you-mean, clean errors, templates commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from ocx.cli import COMMANDS

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "vllm", "deepspeed", "pyarrow", "openai", "fastapi")


def _run(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "ocx.cli.__main__", *args], capture_output=True, text=True, **kwargs
    )


def _loaded_heavy_modules(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_ocx_and_its_foundation_loads_no_heavy_library():
    code = (
        "import ocx, ocx.cli, ocx.cli.options, ocx.harness.templates.encode, "
        "ocx.harness.conversation, ocx.harness.tokenizers, ocx.harness.suggest"
    )
    assert _loaded_heavy_modules(code) == []


@pytest.mark.parametrize("args", [[], *[[name] for name in COMMANDS]])
def test_help_of_every_command_loads_no_heavy_library(args):
    code = (
        "import sys\nfrom ocx.cli import cli\n"
        f"try:\n    cli({args + ['--help']!r}, standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    assert _loaded_heavy_modules(code) == []


def test_unknown_command_suggests_the_closest_name():
    out = _run("tempaltes")
    assert out.returncode == 2 and "did you mean 'templates'" in out.stderr
    out = _run("templates", "chek")
    assert out.returncode == 2 and "did you mean 'check'" in out.stderr


def test_unknown_model_type_suggests_the_closest_name(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"items": [{"role": "user", "content": "a"}]}\n')
    out = _run("templates", "render", "-m", "openchat_35", str(tmp_path / "c.jsonl"))
    assert out.returncode == 2 and "did you mean 'openchat_3.5'" in out.stderr


def _templates_tokenize(tokenizer: Path, conversations: Path):
    return _run(
        "templates", "tokenize", "-m", "openchat_3.5", "-t", str(tokenizer), str(conversations)
    )


def test_templates_tokenize_writes_ids_and_weights(tmp_path, mistral_tokenizer_file):
    (tmp_path / "c.jsonl").write_text(
        json.dumps(
            {
                "condition": "GPT4 Correct",
                "items": [
                    {"role": "user", "content": "Hello", "weight": 0},
                    {"role": "assistant", "content": "Hi", "weight": 1},
                ],
            }
        )
        + "\n"
    )
    out = _templates_tokenize(mistral_tokenizer_file, tmp_path / "c.jsonl")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert row["input_ids"][:10] == [1, 420, 6316, 28781, 3198, 3123, 1247, 28747, 22557, 32000]
    assert row["weights"][-2:] == [1.0, 1.0] and len(row["weights"]) == len(row["input_ids"])


def test_templates_tokenize_bad_input_exits_2_naming_file_line_field_and_writes_nothing(
    tmp_path, mistral_tokenizer_file
):
    good = json.dumps({"items": [{"role": "user", "content": "a", "weight": 0}]})
    (tmp_path / "c.jsonl").write_text(
        good + "\n" + '{"items": [{"role": "user", "content": "a"}]}\n'
    )
    out = _templates_tokenize(mistral_tokenizer_file, tmp_path / "c.jsonl")
    assert out.returncode == 2 and out.stdout == ""
    assert f"{tmp_path / 'c.jsonl'}:2: items[0].weight: missing weight" in out.stderr


def test_templates_check_fails_with_the_first_differing_token_on_a_wrong_fixture(
    tmp_path, shared_dir
):
    data = json.loads((shared_dir / "fixtures" / "documented_token_ids.json").read_text())
    data["cases"] = data["cases"][:1]
    data["cases"][0]["input_ids"][3] += 1
    (tmp_path / "bad.json").write_text(json.dumps(data))
    out = _run(
        "templates", "check", "--shared", str(shared_dir), "--fixtures", str(tmp_path / "bad.json")
    )
    assert out.returncode == 1
    assert "input_ids differ at position 3" in out.stdout


def test_templates_export_writes_a_tokenizer_folder(tmp_path, mistral_tokenizer_file):
    export = ["templates", "export", "-m", "openchat_3.5", "-t", str(mistral_tokenizer_file)]
    out = _run(*export, "-o", str(tmp_path / "tok"))
    assert out.returncode == 0, out.stderr
    config = json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())
    assert (
        config["eos_token"] == "<|end_of_turn|>"
        and config["legacy"] is True
        and "GPT4 Correct" in config["chat_template"]
    )
    again = _run(*export, "-o", str(tmp_path / "tok"))
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_every_package_folder_is_listed_in_pyproject_and_none_installs_bare():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for name, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *rel)))
    assert found <= listed, f"missing from pyproject packages: {sorted(found - listed)}"
    assert all(p == "ocx" or p.startswith("ocx.") for p in listed)


def test_bare_harness_and_benchmarks_packages_are_not_importable(tmp_path):
    code = "import importlib.util as u; print(u.find_spec('harness'), u.find_spec('benchmarks'))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert out.stdout.strip() == "None None"
