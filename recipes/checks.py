"""Value checks for recipe fields: every problem collected with its file, line and field.

`Problems` is the collector the recipe schema uses: types (YAML `yes` is a boolean, never a
number; `1e12` without a dot is a string in YAML 1.1), numeric ranges (finite, inside stated
bounds), enums and unknown keys with "did you mean".
"""

from __future__ import annotations

from typing import Any

from ocx.harness.errors import InputProblem
from ocx.harness.settings import Choice, Num
from ocx.harness.suggest import did_you_mean
from ocx.recipes.yaml_lines import dotted

__all__ = ["Choice", "Num", "Problems"]


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
                hint = did_you_mean(key, allowed, n=1) or f"; expected one of {', '.join(allowed)}"
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

    def checked(
        self, mapping: dict, key: str, rule: Num | Choice, path: tuple, default: Any = None
    ) -> Any:
        """The value if `rule` accepts it, else `default` (a problem is recorded; None is
        allowed)."""
        if key not in mapping or mapping[key] is None:
            return default
        value = mapping[key]
        message = (_num_problem if isinstance(rule, Num) else _choice_problem)(rule, value)
        if message:
            self.add((*path, key), message)
            return default
        return value


def _num_problem(rule: Num, value: Any) -> str | None:
    """YAML's wrong kinds named (`yes` is a boolean, `1e3` text), then the rule's range."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (rule.kind is int and not isinstance(value, int))
    ):
        hint = ""
        if isinstance(value, str) and _parses_as_number(value):
            hint = (
                " (YAML reads it as text: write digits only, e.g. 1000, "
                "or a float with a dot, e.g. 1.0e-5)"
            )
        return f"must be {rule.describe()}, got {_kind_name(value)} {value!r}{hint}"
    return rule.problem(value)


def _choice_problem(rule: Choice, value: Any) -> str | None:
    if rule.problem(value) is None:
        return None
    got = f"{_kind_name(value)} {value!r}{did_you_mean(value, rule.options, n=1)}"
    return f"must be one of {rule.describe()}, got {got}"


def _parses_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
