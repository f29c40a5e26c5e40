"""Click flags made from a settings dataclass (harness/settings.py), for `ocx train` and `ocx eval`.

    params = setting_options(TrainConfig)     # one click option per field with a flag
    groups = option_groups(TrainConfig)       # their `--help` sections, from the fields' groups
    values = settings_from(TrainConfig, ctx.params)   # the flags given, as field values
    problems = flag_problems(EvalOptions, values, "command line")

A flag's default is the field's (None and lists: absent, so the field's default applies), so
every default is written once, on the field. Ranges are shown in `--help` (`INTEGER RANGE`,
`[x>=1]`) but not checked by click: the values are checked by the fields' rules, the same ones a
recipe gets, so every bad flag is reported at once (exit 2), in the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from ocx.harness.errors import InputProblem
from ocx.harness.settings import Choice, Num, Spec, flags, named, specs, split_names, value_problems


class _RangeInHelp:
    """A number type that shows its range in `--help` but leaves checking it to the rules."""

    number: click.ParamType

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return self.number.convert(value, param, ctx)


class _IntRangeInHelp(_RangeInHelp, click.IntRange):
    number = click.INT


class _FloatRangeInHelp(_RangeInHelp, click.FloatRange):
    number = click.FLOAT


def _click_type(spec: Spec) -> Any:
    rule = spec.meta.rule
    if isinstance(rule, Choice):
        return click.Choice([str(o) for o in rule.options])
    if isinstance(rule, Num):
        kind = _IntRangeInHelp if rule.kind is int else _FloatRangeInHelp
        return kind(rule.low, rule.high, min_open=rule.low_open, max_open=rule.high_open)
    if spec.kind.type is Path and not spec.kind.is_list:
        return click.Path(path_type=Path)
    if spec.kind.type in (int, float) and not spec.kind.is_list:
        return {int: click.INT, float: click.FLOAT}[spec.kind.type]
    return click.STRING  # text; a list is comma-separated (`settings_from` splits it)


def _repeated(spec: Spec) -> bool:
    return spec.meta.multiple or spec.meta.multi_value


def _flag_default(spec: Spec) -> Any:
    """The field's default as click shows and passes it back (repeated flags: a tuple; else
    None for None and lists, which leaves the field's default to apply)."""
    default = spec.default()
    if _repeated(spec):
        return tuple(default or ())
    return None if default is None or isinstance(default, list | dict) else default


def option_for(spec: Spec) -> click.Option:
    """The click option of one setting: a bool is an on/off flag (`--x/--no-x` where it defaults
    to True, unless `negate` names the flag that turns it off)."""
    meta = spec.meta
    help = meta.help
    if meta.default_text:  # click would show a text default in parentheses
        help += f"  [default: {meta.default_text}]"
    envvar = list(meta.envvar) if isinstance(meta.envvar, tuple) else meta.envvar
    common = {"help": help, "envvar": envvar, "metavar": meta.metavar}
    if spec.kind.type is bool and not spec.kind.is_list:
        if spec.default() and not meta.negate:
            no = f"--no-{spec.flag.removeprefix('--')}"
            return click.Option(
                [f"{spec.flag}/{no}", spec.name], default=True, show_default=True, **common
            )
        return click.Option([spec.flag, spec.name], is_flag=True, default=False, **common)
    default = _flag_default(spec)
    return click.Option(
        [spec.flag, spec.name],
        type=_click_type(spec),
        multiple=_repeated(spec),
        default=default,
        required=spec.required and not meta.computed,
        show_default=default not in (None, ()),
        **common,
    )


def _flagged(cls: type) -> list[Spec]:
    return [spec for spec in specs(cls) if spec.flag]


def setting_options(cls: type) -> list[click.Option]:
    """One option per setting of `cls` that has a flag, in field order."""
    return [option_for(spec) for spec in _flagged(cls)]


def option_groups(cls: type, after: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """{`--help` section: parameter names}, from the fields' groups in field order.

    `after` places the command's own options: {parameter: the field it follows}, e.g.
    {"no_cache": "cache"} lists `--no-cache` right after `--cache`, in its section.
    """
    groups: dict[str, list[str]] = {}
    for spec in _flagged(cls):
        names = groups.setdefault(spec.meta.group, [])
        names.append(spec.name)
        names += [name for name, field in (after or {}).items() if field == spec.name]
    return groups


def multi_value_flags(cls: type) -> tuple[str, ...]:
    """The flags that take several values after one use (`--sets a b c`), for MultiValueCommand."""
    return tuple(spec.flag for spec in _flagged(cls) if spec.meta.multi_value)


def settings_from(cls: type, params: Mapping[str, Any]) -> dict:
    """The dataclass keyword arguments of the flags given (absent flags: the field's default)."""
    values = {}
    for spec in _flagged(cls):
        value = params.get(spec.name)
        if value is None:
            continue
        if spec.meta.negate:
            value = not value
        elif isinstance(spec.meta.rule, Choice) and isinstance(value, str):
            value = next(o for o in spec.meta.rule.options if str(o) == value)
        elif spec.meta.parse is not None:
            value = spec.meta.parse(value)
        elif spec.kind.is_list:
            value = list(value) if _repeated(spec) else split_names(value)
        values[spec.name] = value
    return values


def flag_problems(cls: type, values: Mapping[str, Any], where: str) -> list[InputProblem]:
    """Every flag value outside its field's rule, as `WHERE: --flag: message`."""
    names = flags(cls)
    return [named(problem, where, names) for problem in value_problems(cls, values)]
