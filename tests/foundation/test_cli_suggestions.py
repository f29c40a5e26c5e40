"""One "did you mean", one model-type resolver and one set of shared options for every command."""

from __future__ import annotations

import click
import pytest

from tests.cli import invoke_ocx


def test_did_you_mean_names_the_close_choices_quoted_or_nothing():
    from ocx.harness.suggest import did_you_mean, unknown_name

    assert did_you_mean("vlm", ["vllm", "openai", "transformers"]) == "; did you mean 'vllm'?"
    assert did_you_mean("gsm8kk", ["gsm8k", "mmlu"]) == "; did you mean 'gsm8k'?"
    assert did_you_mean("zzz", ["vllm", "openai"]) == ""
    assert did_you_mean(3, [2, 3, 4], n=1) == "; did you mean '3'?"  # not only strings
    assert unknown_name("engine", "vlm", ["openai", "vllm"]) == (
        "unknown engine 'vlm'; did you mean 'vllm'? (known: openai, vllm)"
    )


MODEL_TYPE_ERROR = (
    "error: command line: --model-type: unknown model type 'openchat_35'; "
    "did you mean 'openchat_3.5'"
)


def test_every_command_says_the_same_about_an_unknown_model_type(monkeypatch, capsys, tmp_path):
    conversations = tmp_path / "c.jsonl"
    conversations.write_text('{"items": [{"role": "user", "content": "a"}]}\n')
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    commands = {
        "data tokenize": ["data", "tokenize", conversations, "-m", "openchat_35", "-t", tmp_path]
        + ["-o", tmp_path / "out"],
        "templates render": ["templates", "render", "-m", "openchat_35", conversations],
        "serve": ["serve", "--model", folder, "--model-type", "openchat_35", "--port", "0"],
        "eval": ["eval", "--model", folder, "--model-type", "openchat_35", "--sets", "arithmetic"]
        + ["--output", tmp_path / "eval"],
    }
    lines = {}
    for name, args in commands.items():
        code, _, err = invoke_ocx(monkeypatch, capsys, *args)
        assert code == 2, (name, err)
        lines[name] = [line for line in err.splitlines() if "--model-type" in line]
    assert all(found and found[0].startswith(MODEL_TYPE_ERROR) for found in lines.values()), lines
    assert len({found[0] for found in lines.values()}) == 1, lines
    assert not (tmp_path / "out").exists() and not (tmp_path / "eval").exists()


def test_a_checkpoint_with_an_unknown_model_type_in_ocx_json_names_that_file(tmp_path):
    from ocx.harness.checkpoint import checkpoint_model_type
    from ocx.harness.errors import InputError

    (tmp_path / "ocx.json").write_text('{"model_type": "openchat_35"}')
    with pytest.raises(InputError) as caught:
        checkpoint_model_type(tmp_path)
    assert str(caught.value).startswith(
        f"{tmp_path / 'ocx.json'}: model_type: unknown model type 'openchat_35'; did you mean"
    )
    assert checkpoint_model_type(tmp_path, "openchat_v3.2_mistral") == "openchat_3.5"


@pytest.mark.parametrize(
    "value, parsed",
    [
        ("gpu_memory_utilization=0.5", {"gpu_memory_utilization": 0.5}),
        ("enforce_eager=true", {"enforce_eager": True}),
        ("max-model-len=4096", {"max_model_len": 4096}),
        ("dtype=bfloat16", {"dtype": "bfloat16"}),
        ("quantization=null", {"quantization": None}),
        ('override_generation_config={"top_k": 5}', {"override_generation_config": {"top_k": 5}}),
        ("tokenizer_mode=", {"tokenizer_mode": ""}),
        ("served=a=b", {"served": "a=b"}),
    ],
)
def test_engine_args_are_json_when_they_parse_and_strings_otherwise(value, parsed):
    from ocx.cli.options import parse_engine_args

    problems = []
    assert parse_engine_args([value], problems) == parsed and problems == []


@pytest.mark.parametrize("value", ["gpu_memory_utilization", "=0.5", "not a key=1", "1x=2"])
def test_a_malformed_engine_arg_is_named_with_what_was_typed(value):
    from ocx.cli.options import parse_engine_args

    problems = []
    assert parse_engine_args(["dtype=float32", value], problems) == {"dtype": "float32"}
    assert [str(p) for p in problems] == [
        f"command line: --engine-arg: expected KEY=VALUE, got {value!r}"
    ]


def test_ocx_serve_reports_a_malformed_engine_arg_with_exit_2(monkeypatch, capsys, tmp_path):
    code, _, err = invoke_ocx(
        monkeypatch, capsys, "serve", "--model", tmp_path, "--engine-arg", "enforce_eager"
    )
    assert code == 2 and "--engine-arg: expected KEY=VALUE, got 'enforce_eager'" in err


def _command(**attrs):
    @click.command(**attrs)
    @click.option("--keys", multiple=True)
    @click.option("--port", type=int, default=1)
    def command(keys, port):
        click.echo(f"{list(keys)} {port}")

    return command


def test_several_values_follow_one_flag_and_a_missing_value_is_reported():
    from click.testing import CliRunner

    from ocx.cli.options import MultiValueCommand

    command = _command(cls=MultiValueCommand, multi_value=("--keys",))
    runner = CliRunner()
    assert runner.invoke(command, ["--keys", "a", "b", "--port", "2"]).output == "['a', 'b'] 2\n"
    assert runner.invoke(command, ["--keys=a", "b", "--keys", "c"]).output == "['a', 'b', 'c'] 1\n"
    missing = runner.invoke(command, ["--keys", "--port", "2"])
    assert missing.exit_code == 2 and "requires an argument" in missing.output


def test_help_is_grouped_in_the_order_given_and_the_rest_is_other_options():
    from click.testing import CliRunner

    from ocx.cli.options import MultiValueCommand

    groups = {"Server": ("port", "help"), "Keys": ("keys",)}
    command = _command(cls=MultiValueCommand, option_groups=groups)
    text = CliRunner().invoke(command, ["--help"]).output
    assert text.index("Server:") < text.index("--port") < text.index("--help") < text.index("Keys:")
    assert "Other options" not in text and text.index("Keys:") < text.index("--keys")


def test_ocx_serve_help_has_model_engine_server_and_limits_sections():
    from click.testing import CliRunner

    from ocx.cli.serve import serve

    text = CliRunner().invoke(serve, ["--help"]).output
    sections = [line for line in text.splitlines() if line and not line.startswith(" ")]
    assert sections[-4:] == ["Model:", "Engine:", "Server:", "Limits:"], sections
