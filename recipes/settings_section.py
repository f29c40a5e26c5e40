"""Recipe sections checked against a settings class's fields (harness/settings.py).

Each key is a field's recipe key (`epochs`, or `rank` inside `lora:` for `lora_rank`); its type,
range and choices come from the field. `train:` is TrainConfig's, and TrainConfig's own checks
then run on what passed, so a recipe refuses exactly what `ocx train` refuses, naming
`recipe.yaml:LINE: train.KEY` where the command line names the flag. `eval:` takes the
EvalOptions fields that carry a recipe key (`limit`, `max_tokens`, `batch_size`; the same rules
as `ocx eval`'s flags) beside the keys recipes/schema.py checks itself. Relative paths are
resolved against the recipe's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocx.harness.errors import InputError, InputProblem
from ocx.harness.settings import Problem, Spec, empty_hint, render, specs
from ocx.recipes.checks import Problems
from ocx.recipes.yaml_lines import dotted

SECTION = "train"
SKIP = object()
"""A value that was refused (a problem is recorded) and is left out of the settings."""


def recipe_specs(cls: type) -> dict[tuple, Spec]:
    """Recipe key path inside `train:` -> the setting of `cls`."""
    return {spec.recipe: spec for spec in specs(cls) if spec.recipe}


def check_settings(
    p: Problems, section: str, raw: dict, cls: type, base_dir: Path, also: tuple[str, ...] = ()
) -> dict:
    """The valid settings of recipe section `section` as keyword arguments of `cls`; problems
    go to `p`. `also`: the section's other keys, which the caller checks."""
    by_key = recipe_specs(cls)
    sections = {key[0] for key in by_key if len(key) > 1}
    p.unknown_keys(raw, (*also, *sorted({key[0] for key in by_key})), (section,))
    valid: dict = {}
    for key in raw:
        if key in sections:
            valid |= _check_section(p, (section, key), raw[key], by_key, base_dir)
        elif (key,) in by_key:
            _check_value(p, raw, key, (section,), by_key[(key,)], base_dir, valid)
    return valid


def check_train(p: Problems, train: dict, base_dir: Path, cls: type | None = None) -> dict:
    """The `train:` section's valid settings as keyword arguments of `cls` (default:
    TrainConfig), after TrainConfig's own checks; problems go to `p`."""
    if cls is None:
        from ocx.adapters.train.config import TrainConfig

        cls = TrainConfig
    valid = check_settings(p, SECTION, train, cls, base_dir)
    _config_problems(p, valid, recipe_specs(cls), cls)
    return valid


def _check_section(p: Problems, path: tuple, raw: Any, by_key: dict, base_dir: Path) -> dict:
    """A nested section such as `train.lora`; without its required key, none of its settings
    apply."""
    key = path[-1]
    members = {k[1]: spec for k, spec in by_key.items() if len(k) == 2 and k[0] == key}
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        p.add(path, f"must be a mapping of {', '.join(members)}, got {raw!r}")
        return {}
    p.unknown_keys(raw, tuple(members), path)
    valid: dict = {}
    for sub, spec in members.items():
        if spec.meta.section_required and raw.get(sub) is None:
            p.add((*path, sub), f"is required when {dotted(path)} is given")
        if sub in raw:
            _check_value(p, raw, sub, path, spec, base_dir, valid)
    required = [s.name for s in members.values() if s.meta.section_required]
    return valid if all(valid.get(name) is not None for name in required) else {}


def _check_value(
    p: Problems, mapping: dict, key: str, path: tuple, spec: Spec, base_dir: Path, valid: dict
) -> None:
    if mapping[key] is None:
        if spec.kind.nullable:
            valid[spec.name] = None
        else:
            p.add((*path, key), "is empty (null); remove the key to use the default")
        return
    if spec.kind.is_list:
        value = _names(p, mapping, key, path, spec)
    elif spec.meta.rule is not None:
        value = p.checked(mapping, key, spec.meta.rule, path, default=SKIP)
    else:
        accepted = {float: (int, float), Path: (str,)}.get(spec.kind.type, (spec.kind.type,))
        value = p.typed(mapping, key, accepted, path)
        value = SKIP if value is None else value
    if value is SKIP:
        return
    if spec.kind.type is Path:  # like a flag's path, but against the recipe's folder
        value = str((base_dir / value).resolve())
    valid[spec.name] = value


def _names(p: Problems, mapping: dict, key: str, path: tuple, spec: Spec) -> Any:
    """A list of names, or one name as a one-item list."""
    value = p.typed(mapping, key, (list, str), path)
    if value is None:
        return SKIP
    value = [value] if isinstance(value, str) else value
    if spec.meta.nonempty and not value:
        p.add((*path, key), "is empty: " + empty_hint(spec))
        return SKIP
    bad = [i for i, name in enumerate(value) if not isinstance(name, str) or not name.strip()]
    for i in bad:
        p.add((*path, key, i), f"must be a {spec.meta.item or 'name'}, got {value[i]!r}")
    return SKIP if bad else value


def _config_problems(p: Problems, valid: dict, by_key: dict, cls: type) -> None:
    """The settings class's own checks (those `ocx train` applies) on what the recipe set."""
    names = {spec.name: dotted((SECTION, *key)) for key, spec in by_key.items()}
    reported = {problem.field for problem in p.items}
    try:
        found = cls(data=Path("."), model="", out=Path("."), **valid).problems()
    except (InputError, TypeError, ValueError) as exc:  # a check that assumed another type
        p.add((SECTION,), f"invalid settings: {exc}")
        return
    keys = {spec.name: key for key, spec in by_key.items()}
    for problem in found:
        if isinstance(problem, InputProblem):  # it names its own file, e.g. the DeepSpeed JSON
            p.items.append(problem)
        elif isinstance(problem, Problem) and problem.name in valid:
            if names[problem.name] not in reported:
                p.add((SECTION, *keys[problem.name]), render(problem.message, names))
