"""Recipe files: typed settings, validated before any heavy import, every problem at once.

A recipe is plain YAML with five sections (see `tiny-crlft.yaml` for a commented example):
`model` (base model, model type, tokenizer), `data` (files or generators, each with the C-RLFT
condition and weight of its assistant messages), `train` (any `ocx train` setting), `eval`
(suites and conditions evaluated after every epoch) and `output`.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocx.harness.errors import InputError, InputProblem
from ocx.recipes.yaml_lines import dotted, load_with_lines

TOP_LEVEL = ("name", "description", "model", "data", "train", "eval", "output")
MODEL_KEYS = ("base", "model_type", "tokenizer", "tiny")
DATA_KEYS = ("path", "generator", "condition", "weight", "quality", "count", "seed")
EVAL_KEYS = ("suites", "conditions", "limit", "backend", "max_tokens", "batch_size")
GENERATORS = ("arithmetic",)
BACKENDS = ("auto", "transformers", "vllm")
# TrainConfig fields a recipe may not set: the recipe runner fills them in.
TRAIN_MANAGED = ("data", "model", "out", "resume", "extra_metadata")


@dataclass
class DataSpec:
    """One data source: a JSONL file of conversations or a built-in generator."""

    condition: str
    """Condition written on every conversation of this source (C-RLFT class), e.g. "GPT4"."""
    weight: float
    """Loss weight of its assistant messages (user messages get 0), e.g. 1.0 for GPT-4, 0.1 for GPT-3.5."""
    path: Path | None = None
    generator: str | None = None
    quality: str = "correct"
    count: int = 1000
    seed: int = 0


@dataclass
class EvalSpec:
    suites: list[str]
    conditions: list[str]
    """Conditions to evaluate under; the first is the one the best epoch is chosen by."""
    limit: int | None = None
    backend: str = "auto"
    max_tokens: int | None = None
    batch_size: int = 32


@dataclass
class Recipe:
    name: str
    description: str
    file: str
    base_model: str
    """A Hugging Face folder or hub id, or "tiny" for a tiny random Llama built from `tiny`."""
    model_type: str
    tokenizer: str | None
    tiny: dict
    data: list[DataSpec]
    train: dict
    eval: EvalSpec
    output: Path
    raw: dict = field(repr=False, default_factory=dict)


class _Problems:
    def __init__(self, file: str, lines: dict):
        self.file, self.lines, self.items = file, lines, []

    def add(self, path: tuple, message: str) -> None:
        line = None
        for n in range(len(path), -1, -1):  # the nearest enclosing key that has a line
            if path[:n] in self.lines:
                line = self.lines[path[:n]]
                break
        self.items.append(InputProblem(self.file, line, dotted(path) or None, message))

    def unknown_keys(self, mapping: dict, allowed: tuple, path: tuple) -> None:
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(allowed)}"
                self.add((*path, key), f"unknown key {key!r}{hint}")

    def typed(self, mapping: dict, key: str, types: tuple, path: tuple, *, required: bool = False) -> Any:
        if key not in mapping or mapping[key] is None:
            if required:
                self.add((*path, key), "is required")
            return None
        value = mapping[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            self.add((*path, key), f"must be {names}, got {type(value).__name__} {value!r}")
            return None
        return value


def _section(p: _Problems, raw: dict, key: str) -> dict:
    value = raw.get(key)
    if value is None:
        p.add((key,), "section is required")
        return {}
    if not isinstance(value, dict):
        p.add((key,), f"must be a mapping, got {type(value).__name__}")
        return {}
    return value


def _check_model(p: _Problems, model: dict, base_dir: Path) -> tuple[str, str, str | None, dict]:
    from ocx.harness.templates import UnknownTemplateError, resolve_model_type

    p.unknown_keys(model, MODEL_KEYS, ("model",))
    base = p.typed(model, "base", (str,), ("model",), required=True)
    model_type = p.typed(model, "model_type", (str,), ("model",), required=True)
    if model_type:
        try:
            resolve_model_type(model_type)
        except UnknownTemplateError as exc:
            p.add(("model", "model_type"), str(exc))
    tokenizer = p.typed(model, "tokenizer", (str,), ("model",), required=base == "tiny")
    if tokenizer and resolve_tokenizer(tokenizer, base_dir) is None:
        p.add(("model", "tokenizer"), f"tokenizer not found: {tokenizer}")
    tiny = p.typed(model, "tiny", (dict,), ("model",)) or {}
    for key, value in tiny.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            p.add(("model", "tiny", key), f"must be a number, got {value!r}")
    return base or "", model_type or "", tokenizer, tiny


def _check_data(p: _Problems, raw: Any, base_dir: Path) -> list[DataSpec]:
    if not isinstance(raw, list) or not raw:
        p.add(("data",), "must be a non-empty list of data sources")
        return []
    specs = []
    for i, item in enumerate(raw):
        path = ("data", i)
        if not isinstance(item, dict):
            p.add(path, "must be a mapping with `path` or `generator`")
            continue
        p.unknown_keys(item, DATA_KEYS, path)
        condition = p.typed(item, "condition", (str,), path, required=True)
        weight = p.typed(item, "weight", (int, float), path, required=True)
        if weight is not None and weight < 0:
            p.add((*path, "weight"), f"must be >= 0, got {weight}")
        file, generator = item.get("path"), item.get("generator")
        if (file is None) == (generator is None):
            p.add(path, "needs exactly one of `path` (a JSONL file) or `generator`")
        elif file is not None:
            file = p.typed(item, "path", (str,), path)
            if file and not (base_dir / file).is_file():
                p.add((*path, "path"), f"data file not found: {base_dir / file}")
        elif generator not in GENERATORS:
            p.add((*path, "generator"), f"unknown generator {generator!r}; expected one of {', '.join(GENERATORS)}")
        quality = item.get("quality", "correct")
        if quality not in ("correct", "wrong"):
            p.add((*path, "quality"), f"must be 'correct' or 'wrong', got {quality!r}")
        count = p.typed(item, "count", (int,), path) or 1000
        if count < 1:
            p.add((*path, "count"), f"must be positive, got {count}")
        specs.append(DataSpec(condition or "", float(weight or 0), base_dir / file if isinstance(file, str) else None,
                              generator, quality, count, item.get("seed", 0)))
    return specs


def _check_train(p: _Problems, train: dict) -> dict:
    from ocx.adapters.train.config import TrainConfig

    fields = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name not in TRAIN_MANAGED}
    p.unknown_keys(train, tuple(fields), ("train",))
    for key, value in train.items():
        if key not in fields or value is None:
            continue
        default = fields[key].default
        expected = (int, float) if isinstance(default, float) or key == "lr" else type(default)
        if default is None and key != "lr":
            continue
        if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
            p.add(("train", key), f"must be {getattr(expected, '__name__', 'a number')}, got {type(value).__name__} {value!r}")
    return dict(train)


def _check_eval(p: _Problems, raw: dict, default_condition: str) -> EvalSpec:
    from ocx.benchmarks import GROUPS, suite_names

    p.unknown_keys(raw, EVAL_KEYS, ("eval",))
    suites = p.typed(raw, "suites", (list,), ("eval",), required=True) or []
    known = [*suite_names(), *GROUPS]
    for i, name in enumerate(suites):
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            p.add(("eval", "suites", i), f"unknown suite {name!r}{hint}")
    conditions = p.typed(raw, "conditions", (list,), ("eval",)) or [default_condition]
    for i, c in enumerate(conditions):
        if not isinstance(c, str):
            p.add(("eval", "conditions", i), f"must be a string, got {c!r}")
    limit = p.typed(raw, "limit", (int,), ("eval",))
    backend = raw.get("backend", "auto")
    if backend not in BACKENDS:
        p.add(("eval", "backend"), f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return EvalSpec(list(suites), [str(c) for c in conditions], limit, backend,
                    p.typed(raw, "max_tokens", (int,), ("eval",)), p.typed(raw, "batch_size", (int,), ("eval",)) or 32)


def resolve_tokenizer(spec: str, base_dir: Path) -> Path | None:
    """A tokenizer path, or "mistral-common:v1" for the vocabulary the mistral-common package ships."""
    if spec == "mistral-common:v1":
        from importlib import resources

        try:
            path = Path(str(resources.files("mistral_common") / "data" / "tokenizer.model.v1"))
        except ModuleNotFoundError:
            return None
        return path if path.is_file() else None
    path = base_dir / spec
    return path if path.exists() else None


def parse_recipe(text: str, file: str, base_dir: Path, overrides: list[str] = ()) -> Recipe:
    """Validate a recipe's text; raise InputError listing every problem with its line."""
    raw, lines = load_with_lines(text, file)
    p = _Problems(file, lines)
    if not isinstance(raw, dict):
        raise InputError(InputProblem(file, 1, None, "a recipe must be a YAML mapping"))
    apply_overrides(raw, overrides, p)
    p.unknown_keys(raw, TOP_LEVEL, ())
    base, model_type, tokenizer, tiny = _check_model(p, _section(p, raw, "model"), base_dir)
    data = _check_data(p, raw.get("data"), base_dir)
    train = _check_train(p, _section(p, raw, "train"))
    default_condition = _default_condition(model_type)
    evaluation = _check_eval(p, _section(p, raw, "eval"), default_condition)
    output = p.typed(raw, "output", (str,), (), required=True) or "runs/recipe"
    name = p.typed(raw, "name", (str,), (), required=True) or Path(file).stem
    if p.items:
        raise InputError(p.items)
    return Recipe(name, raw.get("description", ""), file, base, model_type, tokenizer, tiny, data, train, evaluation,
                  Path(output), raw)


def _default_condition(model_type: str) -> str:
    from ocx.harness.templates import UnknownTemplateError, get_template

    try:
        return get_template(model_type).default_condition
    except UnknownTemplateError:
        return ""


def apply_overrides(raw: dict, overrides: list[str], p: _Problems) -> None:
    """`train.epochs=3` or `data.0.weight=0.2` on the command line; values parse as YAML."""
    import yaml

    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.items.append(InputProblem("command line", None, item, "overrides look like section.key=value"))
            continue
        parts = [int(k) if k.isdigit() else k for k in key.split(".")]
        node = raw
        try:
            for part in parts[:-1]:
                node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
            node[parts[-1]] = yaml.safe_load(value)
        except (IndexError, KeyError, TypeError, AttributeError):
            p.items.append(InputProblem("command line", None, key, f"no such place in the recipe: {item!r}"))
