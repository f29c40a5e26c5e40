"""Recipe files: typed settings, validated before any heavy import, every problem at once.

A recipe is plain YAML with five sections (see `tiny-crlft.yaml` for a commented example):
`model` (base model, model type, tokenizer), `data` (files or generators, each with the C-RLFT
condition and weight of its assistant messages), `train` (any `ocx train` setting), `eval`
(suites and conditions evaluated after every epoch) and `output`.

Every value is checked here, before any work: types, ranges (finite numbers inside stated
bounds), enums and unknown keys with "did you mean", files that must exist, and that the
tokenizer belongs to the model type. Relative paths (`model.base` when it is a folder,
`model.tokenizer`, `data[].path`, `train.deepspeed_config`) are resolved here, against the
recipe's folder, and stored resolved, so `validate` and `run` read the same files from any
working directory. `output` stays relative to the working directory, like any output flag.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocx.harness.errors import InputError, InputProblem
from ocx.recipes.checks import Choice, Num, Problems, suggest
from ocx.recipes.yaml_lines import load_with_lines

TOP_LEVEL = ("name", "description", "model", "data", "train", "eval", "output")
MODEL_KEYS = ("base", "model_type", "tokenizer", "tiny")
DATA_KEYS = ("path", "generator", "condition", "weight", "quality", "count", "seed")
EVAL_KEYS = ("suites", "conditions", "limit", "engine", "backend", "max_tokens", "batch_size")
GENERATORS = ("arithmetic",)
ENGINES = ("auto", "transformers", "vllm")
# TrainConfig fields a recipe may not set: the recipe runner fills them in.
TRAIN_MANAGED = ("data", "model", "out", "tokenizer", "resume", "extra_metadata")

MAX_GENERATED = 100_000
"""Conversations one generator source may make (the arithmetic generator has 100 distinct questions)."""
SEED = Num(int, 0, 2**32 - 1)
# Ranges of the `train` settings; the dataclass's own `validate` runs too (see _check_train).
TRAIN_RULES: dict[str, Num | Choice] = {
    "epochs": Num(int, 1, 1000),
    "batch_max_len": Num(int, 1, 1 << 24),
    "lr": Num(float, 0, 1, low_open=True),
    "lr_min_ratio": Num(float, 0, 1),
    "lr_warmup_ratio": Num(float, 0, 1, high_open=True),
    "weight_decay": Num(float, 0),
    "beta1": Num(float, 0, 1, high_open=True),
    "beta2": Num(float, 0, 1, high_open=True),
    "eps": Num(float, 0, 1, low_open=True),
    "grad_clip": Num(float, 0),
    "seed": SEED,
    "zero_stage": Choice((2, 3)),
    "save_every_steps": Num(int, 0),
    "max_steps": Num(int, 1),
    "loss_chunk_size": Num(int, 1, 1 << 20),
    "too_long": Choice(("refuse", "truncate")),
    "quantize": Choice(("4bit",)),
    "grad_accum_steps": Num(int, 1, 65536),
    "val_fraction": Num(float, 0, 1, high_open=True),
    "val_every_steps": Num(int, 0),
}
# `train.lora: {rank, alpha, dropout, target_modules, merge}` sets these TrainConfig fields.
LORA_FIELDS = {
    "rank": "lora_rank",
    "alpha": "lora_alpha",
    "dropout": "lora_dropout",
    "target_modules": "lora_target_modules",
    "merge": "merge_lora",
}
LORA_RULES = {
    "rank": Num(int, 1, 4096),
    "alpha": Num(float, 0, low_open=True),
    "dropout": Num(float, 0, 1, high_open=True),
}
EVAL_RULES = {
    "limit": Num(int, 1),
    "max_tokens": Num(int, 1, 1 << 20),
    "batch_size": Num(int, 1, 4096),
}


@dataclass
class DataSpec:
    """One data source: a JSONL file of conversations or a built-in generator."""

    condition: str
    """Condition written on every conversation of this source (C-RLFT class), e.g. "GPT4"."""
    weight: float
    """Loss weight of its assistant messages (user messages get 0), e.g. 1.0 for GPT-4, 0.1 for GPT-3.5."""
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
    limit: int | None = None
    engine: str = "auto"
    """"auto": vLLM on a GPU when installed, else transformers (`backend`: its deprecated name)."""
    max_tokens: int | None = None
    batch_size: int = 32


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
        p.number(
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
    weight = p.number(item, "weight", Num(float, 0), path, default=0.0)
    file, generator = item.get("path"), item.get("generator")
    if (file is None) == (generator is None):
        p.add(path, "needs exactly one of `path` (a JSONL file) or `generator`")
    elif file is not None:
        file = p.typed(item, "path", (str,), path)
        if file is not None and not (base_dir / file).is_file():
            p.add((*path, "path"), f"data file not found: {base_dir / file}")
    else:
        generator = p.choice(item, "generator", Choice(GENERATORS), path)
    quality = p.choice(item, "quality", Choice(("correct", "wrong")), path, default="correct")
    count = p.number(item, "count", Num(int, 1, MAX_GENERATED), path, default=1000)
    seed = p.number(item, "seed", SEED, path, default=0)
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


def _expected_types(annotation: Any) -> tuple[tuple, bool]:
    """(accepted YAML types, None allowed) for a TrainConfig field's annotation."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    args = typing.get_args(annotation) if union else (annotation,)
    accepted: set = set()
    for a in (typing.get_origin(a) or a for a in args):
        accepted |= {float: {int, float}, Path: {str}}.get(a, {a} if a is not type(None) else set())
    return tuple(accepted), type(None) in args


def _check_train(p: Problems, train: dict, base_dir: Path) -> dict:
    from ocx.adapters.train.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    fields = {
        f.name
        for f in dataclasses.fields(TrainConfig)
        if f.name not in TRAIN_MANAGED and f.name not in LORA_FIELDS.values()
    }
    p.unknown_keys(train, tuple(sorted(fields | {"lora"})), ("train",))
    valid: dict = _check_lora(p, train.get("lora"))
    for key in train:
        if key not in fields:
            continue
        rule = TRAIN_RULES.get(key)
        types, nullable = _expected_types(hints[key])
        if train[key] is None:
            if nullable:
                valid[key] = None
            else:
                p.add(("train", key), "is empty (null); remove the key to use the default")
            continue
        if isinstance(rule, Num):
            value = p.number(train, key, rule, ("train",), default=...)
        elif isinstance(rule, Choice):
            value = p.choice(train, key, rule, ("train",), default=...)
        else:
            value = p.typed(train, key, types, ("train",), required=True) if types else train[key]
            value = ... if value is None else value
        if value is not ...:
            valid[key] = value
    if isinstance(valid.get("deepspeed_config"), str):
        path = base_dir / valid["deepspeed_config"]
        if not path.is_file():
            p.add(("train", "deepspeed_config"), f"DeepSpeed config not found: {path}")
        valid["deepspeed_config"] = str(path.resolve())
    if isinstance(
        valid.get("val_data"), str
    ):  # a tokenized dataset folder, like ocx train --val-data
        valid["val_data"] = str((base_dir / valid["val_data"]).resolve())
    _train_config_rules(p, valid)
    return {**{k: v for k, v in train.items() if k != "lora"}, **valid}


def _check_lora(p: Problems, raw: Any) -> dict:
    """`train.lora` as TrainConfig fields (lora_rank, ...); an absent or null section: full fine-tuning."""
    path = ("train", "lora")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        p.add(path, f"must be a mapping such as {{rank: 16, alpha: 32}}, got {raw!r}")
        return {}
    p.unknown_keys(raw, tuple(LORA_FIELDS), path)
    if raw.get("rank") is None:
        p.add((*path, "rank"), "is required (the adapter's rank, e.g. 16)")
    valid = {LORA_FIELDS[key]: p.number(raw, key, rule, path) for key, rule in LORA_RULES.items()}
    targets = p.typed(raw, "target_modules", (list, str), path)
    targets = [targets] if isinstance(targets, str) else targets
    for i, name in enumerate(targets or []):
        if not isinstance(name, str) or not name.strip():
            p.add(
                (*path, "target_modules", i), f"must be a module name such as q_proj, got {name!r}"
            )
    if targets == []:
        p.add(
            (*path, "target_modules"),
            "is empty: name modules (e.g. [q_proj, v_proj]) or remove the key (all-linear)",
        )
    valid["lora_target_modules"] = targets or None
    valid["merge_lora"] = bool(p.typed(raw, "merge", (bool,), path))
    return {k: v for k, v in valid.items() if v is not None} if valid["lora_rank"] else {}


def _train_config_rules(p: Problems, valid: dict) -> None:
    """TrainConfig's own checks (the ones `ocx train` applies), for settings not already refused."""
    from ocx.adapters.train.config import TrainConfig

    reported = {prob.field for prob in p.items}
    try:
        TrainConfig(data=Path("."), model="", out=Path("."), **valid).validate()
    except InputError as exc:
        for problem in exc.problems:
            key = (problem.field or "").lstrip("-").replace("-", "_")
            if key in valid and f"train.{key}" not in reported:
                p.add(("train", key), problem.message)
            elif problem.file != "ocx train":  # it names its own file, e.g. the DeepSpeed JSON
                p.items.append(problem)
    except (TypeError, ValueError) as exc:  # a check that assumed a type the recipe did not give
        p.add(("train",), f"invalid settings: {exc}")


def _check_eval(p: Problems, raw: dict, default_condition: str) -> EvalSpec:
    from ocx.benchmarks import GROUPS, suite_names

    p.unknown_keys(raw, EVAL_KEYS, ("eval",))
    suites = p.typed(raw, "suites", (list,), ("eval",), required=True) or []
    if "suites" in raw and isinstance(raw["suites"], list) and not suites:
        p.add(("eval", "suites"), "must name at least one suite")
    known = [*suite_names(), *GROUPS]
    for i, name in enumerate(suites):
        if name not in known:
            p.add(
                ("eval", "suites", i),
                f"unknown suite {name!r}{suggest(name, known)} (`ocx eval --list` lists them)",
            )
    suites = [s for s in suites if s in known]
    conditions = p.typed(raw, "conditions", (list,), ("eval",)) or [default_condition]
    for i, c in enumerate(conditions):
        if not isinstance(c, str):
            p.add(("eval", "conditions", i), f"must be a string, got {c!r}")
    return EvalSpec(
        suites,
        [str(c) for c in conditions],
        p.number(raw, "limit", EVAL_RULES["limit"], ("eval",)),
        _eval_engine(p, raw),
        p.number(raw, "max_tokens", EVAL_RULES["max_tokens"], ("eval",)),
        p.number(raw, "batch_size", EVAL_RULES["batch_size"], ("eval",), default=32),
    )


def _eval_engine(p, raw: dict) -> str:
    """`eval.engine`, or `eval.backend`, its name before the one inference layer (kept for one release)."""
    if "engine" in raw and "backend" in raw:
        p.add(("eval", "backend"), "give only eval.engine (eval.backend is its deprecated name)")
    key = "backend" if "backend" in raw and "engine" not in raw else "engine"
    return p.choice(raw, key, Choice(ENGINES), ("eval",), default="auto")


def resolve_tokenizer(spec: str, base_dir: Path) -> Path | None:
    """A tokenizer path, or "mistral-common:v1" for the vocabulary the mistral-common package ships."""
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
    train = _check_train(p, _section(p, raw, "train"), base_dir)
    default_condition = _default_condition(model_type)
    evaluation = _check_eval(p, _section(p, raw, "eval"), default_condition)
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
