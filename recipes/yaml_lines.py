"""YAML loading that remembers the line of every key, so recipe errors can name it.

Recipes are small, hand-written files, so the loader refuses what no recipe needs and what a
hostile or careless file could abuse: explicit tags (`!!python/object...`, `!include`), files
over `MAX_RECIPE_BYTES`, nesting deeper than `MAX_DEPTH`, duplicate keys, and alias expansion
past `MAX_VALUES` values (a "billion laughs" file is refused after 10,000 values, in
milliseconds, instead of expanding to billions). Anchors, aliases and `<<` merge keys within
those bounds work as in any YAML file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ocx.harness.errors import InputError, InputProblem

Path_ = tuple  # a key path such as ("train", "epochs") or ("data", 0, "weight")

MAX_RECIPE_BYTES = 1 << 20
"""A recipe is a few hundred bytes; 1 MiB leaves room for long comments and refuses data dumped
by mistake."""
MAX_VALUES = 10_000
"""Values (scalars, lists, mappings) after alias expansion; the largest built-in recipe has ~60."""
MAX_DEPTH = 32
"""Nesting depth; also stops a recursive alias (`a: &x [*x]`)."""


class _Budget:
    def __init__(self, file: str):
        self.file, self.values = file, 0
        self.loader = yaml.SafeLoader(
            ""
        )  # one constructor for every scalar: building one costs ~20 us

    def spend(self, node: yaml.Node, depth: int) -> None:
        self.values += 1
        line = node.start_mark.line + 1
        if self.values > MAX_VALUES:
            raise InputError(
                InputProblem(
                    self.file,
                    line,
                    None,
                    f"YAML expands to more than {MAX_VALUES:,} values "
                    "(aliases nested inside aliases?); recipes are refused past that bound",
                )
            )
        if depth > MAX_DEPTH:
            raise InputError(
                InputProblem(
                    self.file,
                    line,
                    None,
                    f"YAML nested deeper than {MAX_DEPTH} levels (a recursive alias?)",
                )
            )


class _NoTagsLoader(yaml.SafeLoader):
    """SafeLoader's composer, refusing every explicit tag before anything is constructed."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        tag = getattr(event, "tag", None)
        if tag is not None and not isinstance(event, yaml.AliasEvent):
            raise _TagRefused(tag, event.start_mark)
        return super().compose_node(parent, index)


class _TagRefused(Exception):
    def __init__(self, tag: str, mark):
        self.tag, self.mark = tag, mark


def _construct(node: yaml.Node, path: Path_, lines: dict[Path_, int], budget: _Budget) -> Any:
    budget.spend(node, len(path))
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        return _mapping(node, path, lines, budget)
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), lines, budget) for i, item in enumerate(node.value)]
    return budget.loader.construct_object(node, deep=True)


def _mapping(node: yaml.MappingNode, path: Path_, lines: dict[Path_, int], budget: _Budget) -> dict:
    _refuse_bad_keys(node, path, budget.file)
    try:
        budget.loader.flatten_mapping(
            node
        )  # resolves `<<: *defaults` merge keys, as SafeLoader does
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise InputError(
            InputProblem(budget.file, node.start_mark.line + 1, None, f"invalid YAML: {message}")
        ) from None
    out: dict = {}
    # After flattening, merged keys come first and the mapping's own keys after: the last wins.
    for key_node, value_node in node.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        lines[(*path, key)] = line  # the key's line, not the value's
        out[key] = _construct(value_node, (*path, key), lines, budget)
        lines[(*path, key)] = line
    return out


def _refuse_bad_keys(node: yaml.MappingNode, path: Path_, file: str) -> None:
    """Keys must be plain names, each written once (YAML would silently keep the last)."""
    first: dict[str, int] = {}
    for key_node, _ in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise InputError(
                InputProblem(
                    file,
                    line,
                    dotted(path) or None,
                    "a key must be a plain name, not a list or mapping",
                )
            )
        key = key_node.value
        if key in first and key != "<<":
            raise InputError(
                InputProblem(
                    file,
                    line,
                    dotted((*path, key)),
                    f"duplicate key {key!r} (first on line {first[key]})",
                )
            )
        first.setdefault(key, line)


def read_recipe_text(path: Path) -> str:
    """A recipe file's text, reading at most MAX_RECIPE_BYTES + 1 bytes; InputError if too big
    or not UTF-8."""
    with open(path, "rb") as f:
        data = f.read(MAX_RECIPE_BYTES + 1)
    if len(data) > MAX_RECIPE_BYTES:
        raise InputError(
            InputProblem(
                str(path),
                None,
                None,
                f"larger than {MAX_RECIPE_BYTES:,} bytes, the limit for "
                "a recipe (is this a data file?)",
            )
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            InputProblem(str(path), line, None, f"not valid UTF-8 (byte {exc.start})")
        ) from None


def load_with_lines(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML; return the data and a map from key path to 1-based line number.

    Raises InputError (file, line, message) for invalid YAML, explicit tags, or a file
    past the size, depth or alias-expansion bounds above.
    """
    if len(text) > MAX_RECIPE_BYTES:
        raise InputError(
            InputProblem(
                file,
                None,
                None,
                f"{len(text):,} characters; a recipe is limited to "
                f"{MAX_RECIPE_BYTES:,} (is this a data file?)",
            )
        )
    try:
        node = yaml.compose(text, Loader=_NoTagsLoader)
    except _TagRefused as exc:
        raise InputError(
            InputProblem(
                file,
                exc.mark.line + 1,
                None,
                f"YAML tag {exc.tag!r} refused: recipes are "
                "plain data (write the value without a tag)",
            )
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        message = " ".join(str(exc).split())  # one line
        raise InputError(
            InputProblem(file, mark.line + 1 if mark else None, None, f"invalid YAML: {message}")
        ) from None
    lines: dict[Path_, int] = {}
    if node is None:
        return {}, lines
    budget = _Budget(file)
    try:
        return _construct(node, (), lines, budget), lines
    finally:
        budget.loader.dispose()


def dotted(path: Path_) -> str:
    """("data", 0, "weight") -> "data[0].weight"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
