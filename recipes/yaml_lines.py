"""YAML loading that remembers the line of every key, so recipe errors can name it."""

from __future__ import annotations

from typing import Any

import yaml

from ocx.harness.errors import InputError, InputProblem

Path_ = tuple  # a key path such as ("train", "epochs") or ("data", 0, "weight")


def _construct(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1  # the key's line, not the value's
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def load_with_lines(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML; return the data and a map from key path to 1-based line number."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(InputProblem(file, mark.line + 1 if mark else None, None, f"invalid YAML: {exc}")) from None
    lines: dict[Path_, int] = {}
    if node is None:
        return {}, lines
    return _construct(node, (), lines), lines


def dotted(path: Path_) -> str:
    """("data", 0, "weight") -> "data[0].weight"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
