"""Value checks for recipe fields: every problem collected with its file, line and field.

`Problems` is the collector the recipe schema uses: types (YAML `yes` is a boolean, never a
number; `1e12` without a dot is a string in YAML 1.1), numeric ranges (finite, inside stated
bounds), enums and unknown keys with "did you mean".
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from ocx.harness.errors import InputProblem
from ocx.recipes.yaml_lines import dotted


@dataclass(frozen=True)
class Num:
    """A numeric field: an integer (`kind=int`) or any finite number, inside [low, high]."""

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


@dataclass(frozen=True)
class Choice:
    """An enum field: one of `options`."""

    options: tuple


def _fmt(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) and abs(x) >= 10_000 else str(x)


def suggest(value: Any, options) -> str:
    """'; did you mean X?' for the closest option, or ''."""
    close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _kind_name(value: Any) -> str:
    return (
        "boolean"
        if isinstance(value, bool)
        else {str: "string", int: "integer", float: "number", list: "list", dict: "mapping"}.get(
            type(value), type(value).__name__
        )
    )


class Problems:
    """Problems of one recipe file; `lines` maps key paths to their 1-based line."""

    def __init__(self, file: str, lines: dict, overridden: set[tuple] = frozenset()):
        self.file, self.lines, self.overridden, self.items = file, lines, set(overridden), []

    def add(self, path: tuple, message: str) -> None:
        if any(path[:n] in self.overridden for n in range(1, len(path) + 1)):
            self.items.append(InputProblem("command line", None, dotted(path), message))
            return
        line = None
        for n in range(len(path), -1, -1):  # the nearest enclosing key that has a line
            if path[:n] in self.lines:
                line = self.lines[path[:n]]
                break
        self.items.append(InputProblem(self.file, line, dotted(path) or None, message))

    def unknown_keys(self, mapping: dict, allowed, path: tuple) -> None:
        for key in mapping:
            if key not in allowed:
                hint = suggest(key, allowed) or f"; expected one of {', '.join(allowed)}"
                self.add((*path, key), f"unknown key {key!r}{hint}")

    def typed(
        self, mapping: dict, key: str, types: tuple, path: tuple, *, required: bool = False
    ) -> Any:
        if key not in mapping or mapping[key] is None:
            if required:
                self.add((*path, key), "is required")
            return None
        value = mapping[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            names = " or ".join(
                {str: "a string", list: "a list", dict: "a mapping", bool: "true or false"}.get(
                    t, t.__name__
                )
                for t in types
            )
            self.add((*path, key), f"must be {names}, got {_kind_name(value)} {value!r}")
            return None
        return value

    def number(self, mapping: dict, key: str, rule: Num, path: tuple, default: Any = None) -> Any:
        """The value if it satisfies `rule`, else `default` (a problem is recorded; None is allowed)."""
        if key not in mapping or mapping[key] is None:
            return default
        value = mapping[key]
        integer_only = rule.kind is int
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or integer_only
            and not isinstance(value, int)
        ):
            hint = ""
            if isinstance(value, str) and _parses_as_number(value):
                hint = " (YAML reads it as text: write digits only, e.g. 1000, or a float with a dot, e.g. 1.0e-5)"
            self.add(
                (*path, key), f"must be {rule.describe()}, got {_kind_name(value)} {value!r}{hint}"
            )
            return default
        if not rule.accepts(value):
            self.add((*path, key), f"must be {rule.describe()}, got {value!r}")
            return default
        return value

    def choice(
        self, mapping: dict, key: str, rule: Choice, path: tuple, default: Any = None
    ) -> Any:
        if key not in mapping or mapping[key] is None:
            return default
        value = mapping[key]
        # `2 == True` in Python: a YAML `yes` must not pass for the stage 1, nor 1.0 for 1.
        if value in rule.options and type(value) in {type(o) for o in rule.options}:
            return value
        options = ", ".join(repr(o) if isinstance(o, str) else str(o) for o in rule.options)
        self.add(
            (*path, key),
            f"must be one of {options}, got {_kind_name(value)} {value!r}{suggest(value, rule.options)}",
        )
        return default


def _parses_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
