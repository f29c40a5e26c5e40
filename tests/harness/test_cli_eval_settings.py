"""`ocx eval`'s flags are EvalOptions's fields: a setting added as one field is a working flag.

The first test follows docs/extending.md "Add a setting (train or eval)" once for eval, on a
subclass of EvalOptions (the real class stays as it is for the other tests); the last two show a
field with a recipe key becoming a recipe `eval:` key, checked with its flag's rule.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from ocx.cli.eval import _validate, eval_command, eval_command_for
from ocx.harness.errors import InputError
from ocx.harness.eval_options import EvalOptions, in_client
from ocx.harness.settings import Num, setting, specs
from ocx.recipes.checks import Problems
from ocx.recipes.schema import EVAL_OWN_KEYS
from ocx.recipes.settings_section import check_settings
from ocx.recipes.yaml_lines import load_with_lines
from tests.cli import invoke_ocx

ENDPOINT = ["--endpoint", "http://127.0.0.1:9/v1", "--model-name", "m"]


@dataclass(frozen=True, kw_only=True)
class WithNewSettings(EvalOptions):
    """EvalOptions plus two settings, each written as the guide says: one field."""

    warmup_requests: int = in_client(
        0, rule=Num(int, 0), help="Requests sent and discarded before the first timed one."
    )
    trace_file: Path | None = setting(
        None, group="Tracing", recipe=None, help="Write one line per request here."
    )


def _sections(help_text: str) -> dict[str, str]:
    """{section title: its text, wrapped lines joined} of a click `--help` page."""
    parts = re.split(r"^(\S[^\n]*):\n", help_text, flags=re.M)
    return {title: " ".join(text.split()) for title, text in zip(parts[1::2], parts[2::2])}


def _captured_run(monkeypatch, command, args):
    """Invoke `command`; the options it would run with, instead of running them."""
    seen = []
    monkeypatch.setattr(
        "ocx.harness.eval_session.run_eval_session", lambda opts, console: seen.append(opts)
    )
    result = CliRunner().invoke(command, args, terminal_width=100)
    return result, seen


def test_a_setting_added_as_one_field_is_a_flag_in_its_help_section_and_reaches_the_options(
    monkeypatch,
):
    command = eval_command_for(WithNewSettings)
    sections = _sections(CliRunner().invoke(command, ["--help"], terminal_width=100).output)
    assert "--warmup-requests INTEGER RANGE" in sections["Endpoint client"]
    assert "[default: 0; x>=0]" in sections["Endpoint client"]
    assert "--trace-file PATH" in sections["Tracing"]  # a new group is a new section, last
    assert list(sections)[-1] == "Tracing"

    args = [*ENDPOINT, "--warmup-requests", "5", "--trace-file", "t.jsonl", "--limit", "2"]
    result, seen = _captured_run(monkeypatch, command, args)
    assert result.exit_code == 0, result.output
    (opts,) = seen
    assert isinstance(opts, WithNewSettings)
    assert (opts.warmup_requests, opts.trace_file, opts.limit) == (5, Path("t.jsonl"), 2)

    result, seen = _captured_run(monkeypatch, command, [*ENDPOINT, "--warmup-requests", "-1"])
    assert isinstance(result.exception, InputError) and not seen
    assert str(result.exception) == (
        "command line: --warmup-requests: must be an integer >= 0, got -1"
    )


def test_every_eval_options_field_but_two_derived_ones_is_set_by_a_flag():
    flagged = {spec.name for spec in specs(EvalOptions) if spec.flag}
    without_flag = {f.name for f in dataclasses.fields(EvalOptions)} - flagged
    # endpoint: the first --endpoint; print_summary: recipes print their own table
    assert without_flag == {"endpoint", "print_summary"}


def test_eval_without_flags_runs_with_the_eval_options_defaults(monkeypatch):
    result, (opts,) = _captured_run(monkeypatch, eval_command, ENDPOINT)
    assert result.exit_code == 0, result.output
    for f in dataclasses.fields(EvalOptions):
        if f.default is not dataclasses.MISSING and f.name not in ("endpoint", "endpoints"):
            assert getattr(opts, f.name) == f.default, f.name
    assert opts.sets == ["all"] and opts.overrides == {} and opts.engine_args == {}
    assert opts.cache == Path("eval_results/m/cache.sqlite") and opts.engine == "openai"


def test_each_flag_reaches_its_field_with_its_type():
    ctx = eval_command.make_context(
        "eval",
        [
            *ENDPOINT,
            *("--sets", "mmlu", "gsm8k", "--limit", "3", "--temperature", "0.5", "--seed", "7"),
            *("--quiet", "--no-chat", "--no-cache", "--matcher", "openchat", "--timeout", "2.5"),
            *("--engine-arg", "max-model-len=4096", "--samples", "4", "--top-p", "1"),
        ],
    )
    opts = _validate(ctx.params)
    assert opts.sets == ["mmlu", "gsm8k"] and opts.limit == 3 and opts.samples == 4
    assert opts.overrides == {"temperature": 0.5, "seed": 7, "top_p": 1.0}
    assert (opts.progress, opts.chat, opts.cache) == (False, False, None)
    assert (opts.matcher, opts.timeout) == ("openchat", 2.5)
    assert opts.engine_args == {"max_model_len": 4096}


def _run_ocx_eval(monkeypatch, capsys, args):
    """`ocx eval ARGS` through the real entry point: (exit code, stderr, options it would run)."""
    seen = []
    monkeypatch.setattr(
        "ocx.harness.eval_session.run_eval_session", lambda opts, console: seen.append(opts)
    )
    code, _, err = invoke_ocx(monkeypatch, capsys, "eval", *args)
    return code, err, seen


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--limit", "0"], ["--limit: must be an integer >= 1, got 0"]),
        (["--top-p", "1.5"], ["--top-p: must be a finite number from 0 to 1, got 1.5"]),
        (["--timeout", "0"], ["--timeout: must be a finite number > 0, got 0.0"]),
        (["--temperature", "nan"], ["--temperature: must be a finite number >= 0, got nan"]),
        (["--matcher", "opnchat"], ["'--matcher'", "'ocx', 'openchat'"]),
        (["--seed", "seven"], ["'--seed'", "not a valid integer"]),
        (["--sets"], ["'--sets' requires an argument"]),
    ],
)
def test_a_bad_value_is_refused_naming_the_flag_the_user_typed(monkeypatch, capsys, args, says):
    code, err, seen = _run_ocx_eval(monkeypatch, capsys, [*ENDPOINT, *args])
    assert code == 2 and not seen
    assert all(part in err for part in says) and "Traceback" not in err, err


def test_every_value_out_of_range_is_reported_at_once_with_the_other_problems(monkeypatch, capsys):
    args = ["--endpoint", "ftp://h", "--model-name", "m", "--limit", "0", "--samples", "0"]
    code, err, seen = _run_ocx_eval(monkeypatch, capsys, [*args, "--concurrency", "-3"])
    assert code == 2 and not seen
    assert [line.removeprefix("error: command line: ") for line in err.splitlines()] == [
        "--limit: must be an integer >= 1, got 0",  # in --help order
        "--samples: must be an integer >= 1, got 0",
        "--concurrency: must be an integer >= 1, got -3",
        "--endpoint: not an http(s) URL with a host: 'ftp://h'",
    ]


@dataclass(frozen=True, kw_only=True)
class WithRecipeKey(EvalOptions):
    """An eval setting that recipes may set too: `recipe=()` makes it the key `eval.<name>`."""

    warmup_requests: int = in_client(
        0, rule=Num(int, 0), help="Requests sent and discarded first.", recipe=()
    )


RECIPE_EVAL = """\
name: r
eval:
  suites: [gsm8k]
  limit: {limit}
  warmup_requests: {warmup}
"""


def _eval_section(text: str, settings: type, tmp_path) -> tuple[dict, list[str]]:
    """The recipe's `eval:` keys that are `settings` fields, as parse_recipe checks them."""
    raw, lines = load_with_lines(text, "recipe.yaml")
    problems = Problems("recipe.yaml", lines)
    valid = check_settings(problems, "eval", raw["eval"], settings, tmp_path, also=EVAL_OWN_KEYS)
    return valid, [str(p) for p in problems.items]


def test_a_field_with_a_recipe_key_is_an_eval_recipe_key_checked_like_its_flag(tmp_path):
    valid, problems = _eval_section(RECIPE_EVAL.format(limit=3, warmup=2), WithRecipeKey, tmp_path)
    assert problems == [] and valid == {"limit": 3, "warmup_requests": 2}
    _, problems = _eval_section(RECIPE_EVAL.format(limit=0, warmup=-1), WithRecipeKey, tmp_path)
    assert problems == [
        "recipe.yaml:4: eval.limit: must be an integer >= 1, got 0",
        "recipe.yaml:5: eval.warmup_requests: must be an integer >= 0, got -1",
    ]
    _, problems = _eval_section(RECIPE_EVAL.format(limit=3, warmup=2), EvalOptions, tmp_path)
    assert problems == [
        "recipe.yaml:5: eval.warmup_requests: unknown key 'warmup_requests'; expected one of "
        "suites, conditions, engine, backend, batch_size, limit, max_tokens"
    ]


def test_recipe_eval_keys_and_eval_flags_share_one_range_per_setting(monkeypatch, capsys):
    keyed = {spec.name for spec in specs(EvalOptions) if spec.recipe}
    assert keyed == {"batch_size", "limit", "max_tokens"}
    text = RECIPE_EVAL.format(limit=1, warmup=0).replace("  warmup_requests: 0\n", "")
    for key, flag, value, message in [
        ("max_tokens", "--max-tokens", 1048577, "must be an integer from 1 to 1,048,576"),
        ("batch_size", "--batch-size", 4097, "must be an integer from 1 to 4096"),
    ]:
        recipe_text = f"{text}  {key}: {value}\n"
        _, problems = _eval_section(recipe_text, EvalOptions, Path("."))
        assert problems == [f"recipe.yaml:5: eval.{key}: {message}, got {value}"]
        code, err, seen = _run_ocx_eval(monkeypatch, capsys, [*ENDPOINT, flag, str(value)])
        assert code == 2 and not seen
        assert f"command line: {flag}: {message}, got {value}" in err
