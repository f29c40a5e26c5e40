"""Settings defined once: a dataclass field carries its flag, type, range, help and recipe key.

`setting(...)` is `dataclasses.field` plus what every front end needs. The `ocx train` and
`ocx eval` flags (ocx/cli/setting_flags.py, from TrainConfig and EvalOptions) and the recipe
`train:` checks (recipes/settings_section.py) are generated from these fields, and values are
checked with the same rules everywhere (`value_problems`), so a new setting is one field.
Problems name settings by field; `render` turns `{field}` in a message into what the user
typed: `--val-data` on the command line, `train.val_data` in a recipe. Nothing here imports
click or torch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ocx.harness.errors import InputProblem

METADATA_KEY = "ocx_setting"


@dataclass(frozen=True)
class Num:
    """A numeric setting: an integer (`kind=int`) or any finite number, inside [low, high]."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    """True: `low` itself is refused (the value must be > low)."""
    high_open: bool = False

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        if self.low is not None and self.high is not None and not (self.low_open or self.high_open):
            return f"{what} from {_fmt(self.low)} to {_fmt(self.high)}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_fmt(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {_fmt(self.high)}")
        return f"{what} {' and '.join(parts)}".rstrip()

    def accepts(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or self.low_open and value == self.low):
            return False
        return not (
            self.high is not None and (value > self.high or self.high_open and value == self.high)
        )

    def problem(self, value: Any) -> str | None:
        """The message for a value of the right type outside the range, or None."""
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or self.kind is int and not isinstance(value, int) or not self.accepts(value):
            return f"must be {self.describe()}, got {value!r}"
        return None


@dataclass(frozen=True)
class Choice:
    """An enum setting: one of `options`."""

    options: tuple

    def describe(self) -> str:
        return ", ".join(repr(o) if isinstance(o, str) else str(o) for o in self.options)

    def problem(self, value: Any) -> str | None:
        # `2 == True` in Python: a YAML `yes` must not pass for the stage 1, nor 1.0 for 1.
        if value in self.options and type(value) in {type(o) for o in self.options}:
            return None
        return f"must be one of {self.describe()}, got {value!r}"


def _fmt(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) and abs(x) >= 10_000 else str(x)


@dataclass(frozen=True)
class Setting:
    """What the front ends know about one settings field (see `setting`)."""

    help: str
    group: str
    """Section of `--help` (model, data, optimisation, LoRA, validation, tracking, output...)."""
    rule: Num | Choice | None = None
    flag: str | None = None
    """The flag; default `--` and the field name with dashes. "" means no flag."""
    recipe: tuple[str, ...] | None = ()
    """Key path inside the recipe's section; () means (field name,); None: not in recipes."""
    default_text: str | None = None
    """What `--help` shows as the default where the field's default is None or a list."""
    item: str | None = None
    """List settings: one item, e.g. "module name such as q_proj" (checked as a string)."""
    nonempty: bool = False
    """List settings: an empty list is refused (leave the setting out for the default)."""
    parse: Callable[[str], Any] | None = None
    """The flag's text to the field's value; list settings default to comma-separated names."""
    section_required: bool = False
    """Recipes: required whenever its section (e.g. `train.lora`) is given."""
    resume_check: bool = True
    """False: a changed value does not refuse `--resume` (it changes where things go, what is
    shown or when it is saved, not what is trained)."""
    envvar: str | tuple[str, ...] | None = None
    """The flag reads this environment variable (or the first of these set) when not given."""
    metavar: str | None = None
    """The flag's value in `--help` (default: its type, e.g. INTEGER)."""
    multiple: bool = False
    """Repeatable flag: `--endpoint A --endpoint B` gives a tuple."""
    multi_value: bool = False
    """Several values after one flag, `--sets a b c` (repeatable too)."""
    negate: bool = False
    """An on/off flag that turns the field off: `--quiet` sets progress=False."""
    computed: bool = False
    """The command fills the field in when its flag is absent (`ocx eval --output`: from the
    model's name), so the flag is optional although the field has no default."""


def setting(
    default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, **meta: Any
) -> Any:
    """A dataclass field with its `Setting` metadata (help, group, rule, flag, recipe key...)."""
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={METADATA_KEY: Setting(**meta)}
    )


class Kind(NamedTuple):
    """A field's annotation, taken apart: its value type, whether None is allowed, a list?"""

    type: type
    nullable: bool
    is_list: bool


class Spec(NamedTuple):
    """One setting of a settings class."""

    name: str
    meta: Setting
    kind: Kind
    field: dataclasses.Field

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-") if self.meta.flag is None else self.meta.flag

    @property
    def recipe(self) -> tuple[str, ...] | None:
        return None if self.meta.recipe is None else (self.meta.recipe or (self.name,))

    @property
    def required(self) -> bool:
        return (
            self.field.default is dataclasses.MISSING
            and self.field.default_factory is dataclasses.MISSING
        )

    def default(self) -> Any:
        if self.field.default_factory is not dataclasses.MISSING:
            return self.field.default_factory()
        return None if self.required else self.field.default


def _kind(annotation: Any) -> Kind:
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    args = list(typing.get_args(annotation) if union else (annotation,))
    nullable = type(None) in args
    (main,) = [a for a in args if a is not type(None)]
    if typing.get_origin(main) is list:
        return Kind(typing.get_args(main)[0], nullable, True)
    return Kind(typing.get_origin(main) or main, nullable, False)


@functools.cache
def specs(cls: type) -> tuple[Spec, ...]:
    """The settings of `cls`, in field order (fields without `setting` metadata are left out)."""
    hints = typing.get_type_hints(cls)
    return tuple(
        Spec(f.name, f.metadata[METADATA_KEY], _kind(hints[f.name]), f)
        for f in dataclasses.fields(cls)
        if METADATA_KEY in f.metadata
    )


def flags(cls: type) -> dict[str, str]:
    """Field name -> flag, for `render` on the command line."""
    return {s.name: s.flag for s in specs(cls) if s.flag}


def by_flag(cls: type, flag: str | None) -> str | None:
    """The field a flag sets (e.g. from another module's problem), or None."""
    return next((s.name for s in specs(cls) if s.flag and s.flag == flag), None)


class Problem(NamedTuple):
    """A problem with one setting; `{other_field}` in the message names another setting."""

    name: str
    message: str


def render(message: str, names: dict[str, str]) -> str:
    """`{field}` -> what the user typed for it (a flag, or a recipe key); other text untouched."""
    return re.sub(r"\{(\w+)\}", lambda m: names.get(m.group(1), m.group(0)), message)


def named(problem: Problem, where: str, names: dict[str, str]) -> InputProblem:
    """A settings problem as `WHERE: --flag: message` (`names`: field -> what the user typed)."""
    return InputProblem(where, None, names[problem.name], render(problem.message, names))


def rule_problems(settings: Any) -> list[Problem]:
    """Every value of a settings object outside its field's rule."""
    cls = type(settings)
    return value_problems(cls, {spec.name: getattr(settings, spec.name) for spec in specs(cls)})


def value_problems(cls: type, values: Mapping[str, Any]) -> list[Problem]:
    """Every one of `values` (field name -> value) outside its field's rule (None passes where
    the field allows it), in field order."""
    problems = []
    for spec in specs(cls):
        if spec.name not in values:
            continue
        value = values[spec.name]
        if value is None and spec.kind.nullable:
            continue
        if spec.kind.is_list:
            message = _list_problem(spec, value)
        elif spec.meta.rule is not None:
            message = spec.meta.rule.problem(value)
        else:
            continue
        if message:
            problems.append(Problem(spec.name, message))
    return problems


def _list_problem(spec: Spec, value: Any) -> str | None:
    if not isinstance(value, list | tuple):
        return f"must be a list, got {value!r}"
    if spec.meta.nonempty and not value:
        return "is empty: " + empty_hint(spec)
    if spec.meta.item and not all(isinstance(v, str) and v.strip() for v in value):
        return f"must be {_plural(spec.meta.item)}, got {list(value)!r}"
    return None


def empty_hint(spec: Spec) -> str:
    default = f" ({spec.meta.default_text})" if spec.meta.default_text else ""
    return f"name at least one or leave it out for the default{default}"


def _plural(item: str) -> str:
    """ "module name such as q_proj" -> "module names such as q_proj"."""
    noun, _, rest = item.partition(" such as ")
    return f"{noun}s such as {rest}" if rest else f"{noun}s"


def split_names(text: str) -> list[str]:
    """A comma-separated flag value as a list (empty names kept, so that checks refuse them)."""
    return [n.strip() for n in text.split(",")]
