"""Recipe files: typed settings, validated before any heavy import, every problem at once.

A recipe is plain YAML with five sections (see `tiny-crlft.yaml` for a commented example):
`model` (base model, model type, tokenizer), `data` (files or generators, each with the C-RLFT
condition and weight of its assistant messages), `train` (any `ocx train` setting; checked
from TrainConfig's fields in settings_section.py), `eval` (suites and conditions evaluated
after every epoch; `limit`, `max_tokens` and `batch_size` checked from EvalOptions's fields)
and `output`.

Every value is checked here, before any work: types, ranges (finite numbers inside stated
bounds), enums and unknown keys with "did you mean", files that must exist, and that the
tokenizer belongs to the model type. Relative paths (`model.base` when it is a folder,
`model.tokenizer`, `data[].path`, `train.deepspeed_config`) are resolved here, against the
recipe's folder, and stored resolved, so `validate` and `run` read the same files from any
working directory. `output` stays relative to the working directory, like any output flag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocx.harness.errors import InputError, InputProblem
from ocx.harness.suggest import did_you_mean
from ocx.recipes.checks import Choice, Num, Problems
from ocx.recipes.settings_section import check_settings, check_train
from ocx.recipes.yaml_lines import load_with_lines

TOP_LEVEL = ("name", "description", "model", "data", "train", "eval", "output")
MODEL_KEYS = ("base", "model_type", "tokenizer", "tiny")
DATA_KEYS = ("path", "generator", "condition", "weight", "quality", "count", "seed")
EVAL_OWN_KEYS = ("suites", "conditions", "engine", "backend")
"""The `eval:` keys checked here; the others are EvalOptions fields with a recipe key (`limit`,
`max_tokens`, `batch_size`), checked from the fields like `ocx eval`'s flags."""
EVAL_BATCH_SIZE = 32
"""Recipes evaluate 32 prompts per generate call unless `eval.batch_size` says otherwise."""
GENERATORS = ("arithmetic",)
ENGINES = ("auto", "transformers", "vllm")
MAX_GENERATED = 100_000
"""Conversations one generator source may make (the arithmetic generator has 100 distinct
questions)."""
SEED = Num(int, 0, 2**32 - 1)


@dataclass
class DataSpec:
    """One data source: a JSONL file of conversations or a built-in generator."""

    condition: str
    """Condition written on every conversation of this source (C-RLFT class), e.g. "GPT4"."""
    weight: float
    """Loss weight of its assistant messages (user messages get 0), e.g. 1.0 for GPT-4, 0.1 for
    GPT-3.5."""
    path: Path | None = None
    """The JSONL file, resolved against the recipe's folder."""
    generator: str | None = None
    quality: str = "correct"
    count: int = 1000
    seed: int = 0


@dataclass
class EvalSpec:
    suites: list[str]
    conditions: list[str]
    """Conditions to evaluate under; the first is the one the best epoch is chosen by."""
    engine: str = "auto"
    """"auto": vLLM on a GPU when installed, else transformers (`backend`: its deprecated name)."""
    settings: dict = field(default_factory=lambda: {"batch_size": EVAL_BATCH_SIZE})
    """EvalOptions keyword arguments from the other keys (`limit`, `max_tokens`, `batch_size`)."""


@dataclass
class Recipe:
    name: str
    description: str
    file: str
    base_model: str
    """A Hugging Face folder (resolved against the recipe's folder) or hub id, or "tiny" for a
    tiny random Llama built from `tiny`."""
    model_type: str
    tokenizer: str | None
    """The tokenizer's path, resolved against the recipe's folder (None: the base model's own)."""
    tiny: dict
    data: list[DataSpec]
    train: dict
    eval: EvalSpec
    output: Path
    raw: dict = field(repr=False, default_factory=dict)


def _section(p: Problems, raw: dict, key: str) -> dict:
    value = raw.get(key)
    if value is None:
        p.add((key,), "section is required")
        return {}
    if not isinstance(value, dict):
        p.add((key,), f"must be a mapping, got {type(value).__name__}")
        return {}
    return value


def _looks_like_path(spec: str) -> bool:
    """A hub id is `name` or `org/name`; anything else with a slash or a dot prefix is a folder."""
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or spec.endswith("/")


def _check_base(p: Problems, model: dict, base_dir: Path) -> str:
    base = p.typed(model, "base", (str,), ("model",), required=True)
    if base is None or base == "tiny":
        return base or ""
    if not base.strip():
        p.add(("model", "base"), "is empty: give a model folder, a hub id (org/name) or tiny")
        return ""
    local = base_dir / Path(base).expanduser()
    if local.is_dir():
        return str(local.resolve())
    if _looks_like_path(base):
        p.add(("model", "base"), f"model folder not found: {local}")
    return base


def _check_model(p: Problems, model: dict, base_dir: Path) -> tuple[str, str, str | None, dict]:
    from ocx.harness.templates import UnknownTemplateError, get_template

    p.unknown_keys(model, MODEL_KEYS, ("model",))
    base = _check_base(p, model, base_dir)
    model_type = p.typed(model, "model_type", (str,), ("model",), required=True)
    template = None
    if model_type:
        try:
            template = get_template(model_type)
        except UnknownTemplateError as exc:
            p.add(("model", "model_type"), str(exc))
    tokenizer = p.typed(model, "tokenizer", (str,), ("model",), required=base == "tiny")
    resolved = None
    if tokenizer is not None:
        resolved = resolve_tokenizer(tokenizer, base_dir)
        if resolved is None:
            p.add(
                ("model", "tokenizer"),
                f"tokenizer not found: {base_dir / tokenizer if tokenizer else repr('')}",
            )
        elif template is not None:
            from ocx.harness.tokenizer_check import tokenizer_problem

            problem = tokenizer_problem(resolved, template)[1]
            if problem:
                p.add(("model", "tokenizer"), f"{resolved}: {problem}")
    tiny = p.typed(model, "tiny", (dict,), ("model",)) or {}
    for key in tiny:
        sizes = str(key).startswith("num_") or str(key).endswith(
            ("_size", "_layers", "_heads", "_embeddings")
        )
        p.checked(
            tiny, key, Num(int, 1) if sizes else Num(float, 0, low_open=True), ("model", "tiny")
        )
    return base, model_type or "", str(resolved) if resolved else tokenizer, tiny


def _check_source(p: Problems, item: dict, path: tuple, base_dir: Path) -> DataSpec:
    p.unknown_keys(item, DATA_KEYS, path)
    condition = p.typed(item, "condition", (str,), path, required=True)
    if "weight" not in item or item["weight"] is None:
        p.add(
            (*path, "weight"), "is required (the loss weight of this source's assistant messages)"
        )
    weight = p.checked(item, "weight", Num(float, 0), path, default=0.0)
    file, generator = item.get("path"), item.get("generator")
    if (file is None) == (generator is None):
        p.add(path, "needs exactly one of `path` (a JSONL file) or `generator`")
    elif file is not None:
        file = p.typed(item, "path", (str,), path)
        if file is not None and not (base_dir / file).is_file():
            p.add((*path, "path"), f"data file not found: {base_dir / file}")
    else:
        generator = p.checked(item, "generator", Choice(GENERATORS), path)
    quality = p.checked(item, "quality", Choice(("correct", "wrong")), path, default="correct")
    count = p.checked(item, "count", Num(int, 1, MAX_GENERATED), path, default=1000)
    seed = p.checked(item, "seed", SEED, path, default=0)
    resolved = (base_dir / file).resolve() if isinstance(file, str) else None
    return DataSpec(condition or "", float(weight), resolved, generator, quality, count, seed)


def _check_data(p: Problems, raw: Any, base_dir: Path) -> list[DataSpec]:
    if not isinstance(raw, list) or not raw:
        p.add(("data",), "must be a non-empty list of data sources")
        return []
    specs = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            p.add(("data", i), "must be a mapping with `path` or `generator`")
            continue
        specs.append(_check_source(p, item, ("data", i), base_dir))
    return specs


def _check_eval(p: Problems, raw: dict, default_condition: str, base_dir: Path) -> EvalSpec:
    from ocx.benchmarks import GROUPS, suite_names
    from ocx.harness.eval_options import EvalOptions

    settings = check_settings(p, "eval", raw, EvalOptions, base_dir, also=EVAL_OWN_KEYS)
    suites = p.typed(raw, "suites", (list,), ("eval",), required=True) or []
    if "suites" in raw and isinstance(raw["suites"], list) and not suites:
        p.add(("eval", "suites"), "must name at least one suite")
    known = [*suite_names(), *GROUPS]
    for i, name in enumerate(suites):
        if name not in known:
            p.add(
                ("eval", "suites", i),
                f"unknown suite {name!r}{did_you_mean(name, known, n=1)} "
                "(`ocx eval --list` lists them)",
            )
    suites = [s for s in suites if s in known]
    conditions = p.typed(raw, "conditions", (list,), ("eval",)) or [default_condition]
    for i, c in enumerate(conditions):
        if not isinstance(c, str):
            p.add(("eval", "conditions", i), f"must be a string, got {c!r}")
    return EvalSpec(
        suites,
        [str(c) for c in conditions],
        _eval_engine(p, raw),
        {"batch_size": EVAL_BATCH_SIZE, **settings},
    )


def _eval_engine(p, raw: dict) -> str:
    """`eval.engine`, or `eval.backend`, its name before the one inference layer (kept for one
    release)."""
    if "engine" in raw and "backend" in raw:
        p.add(("eval", "backend"), "give only eval.engine (eval.backend is its deprecated name)")
    key = "backend" if "backend" in raw and "engine" not in raw else "engine"
    return p.checked(raw, key, Choice(ENGINES), ("eval",), default="auto")


def resolve_tokenizer(spec: str, base_dir: Path) -> Path | None:
    """A tokenizer path, or "mistral-common:v1" for the vocabulary the mistral-common package
    ships."""
    if spec == "mistral-common:v1":
        from importlib import resources

        try:
            path = Path(str(resources.files("mistral_common") / "data" / "tokenizer.model.v1"))
        except ModuleNotFoundError:
            return None
        return path if path.is_file() else None
    if not spec.strip():
        return None
    path = base_dir / Path(spec).expanduser()
    return path.resolve() if path.exists() else None


def parse_recipe(text: str, file: str, base_dir: Path, overrides: list[str] = ()) -> Recipe:
    """Validate a recipe's text; raise InputError listing every problem with its line."""
    raw, lines = load_with_lines(text, file)
    if not isinstance(raw, dict):
        raise InputError(InputProblem(file, 1, None, "a recipe must be a YAML mapping"))
    p = Problems(file, lines, apply_overrides(raw, overrides))
    p.unknown_keys(raw, TOP_LEVEL, ())
    base, model_type, tokenizer, tiny = _check_model(p, _section(p, raw, "model"), base_dir)
    data = _check_data(p, raw.get("data"), base_dir)
    train = check_train(p, _section(p, raw, "train"), base_dir)
    default_condition = _default_condition(model_type)
    evaluation = _check_eval(p, _section(p, raw, "eval"), default_condition, base_dir)
    output = p.typed(raw, "output", (str,), (), required=True) or "runs/recipe"
    name = p.typed(raw, "name", (str,), (), required=True) or Path(file).stem
    description = p.typed(raw, "description", (str,), ()) or ""
    if p.items:
        raise InputError(p.items)
    return Recipe(
        name,
        description,
        file,
        base,
        model_type,
        tokenizer,
        tiny,
        data,
        train,
        evaluation,
        Path(output),
        raw,
    )


def _default_condition(model_type: str) -> str:
    from ocx.harness.templates import UnknownTemplateError, get_template

    try:
        return get_template(model_type).default_condition
    except UnknownTemplateError:
        return ""


def apply_overrides(raw: dict, overrides: list[str]) -> set[tuple]:
    """Apply `train.epochs=3` or `data.0.weight=0.2` (values parse as YAML); return the paths set.

    A malformed override raises InputError naming the command line.
    """
    problems, paths = [], set()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            problems.append(
                InputProblem("command line", None, item, "overrides look like section.key=value")
            )
            continue
        parts = [int(k) if k.isdigit() else k for k in key.split(".")]
        try:
            parsed = load_with_lines(value, "command line")[0] if value.strip() else None
        except InputError as exc:
            problems += [dataclasses.replace(prob, field=key) for prob in exc.problems]
            continue
        node = raw
        try:
            for part in parts[:-1]:
                node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
            node[parts[-1]] = parsed
        except (IndexError, KeyError, TypeError, AttributeError):
            problems.append(
                InputProblem("command line", None, key, f"no such place in the recipe: {item!r}")
            )
            continue
        paths.add(tuple(parts))
    if problems:
        raise InputError(problems)
    return paths
