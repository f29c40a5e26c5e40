"""Recipes: plain YAML files that join data, training and evaluation into one command.

Built-in recipes are the `*.yaml` files in this package; `ocx recipe cp NAME DEST` copies one to
edit. Relative paths in a recipe file resolve against the file's folder; in a built-in recipe
(which lives inside the installed package) against the current directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ocx.harness.errors import InputError, InputProblem
from ocx.harness.suggest import unknown_name


def builtin_recipes() -> dict[str, Path]:
    folder = resources.files("ocx.recipes")
    return {
        entry.name.removesuffix(".yaml"): Path(str(entry))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml")
    }


def locate(name_or_file: str) -> tuple[Path, Path]:
    """(recipe file, folder its relative paths resolve against) for a built-in name or a path."""
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise InputError(InputProblem(name_or_file, None, None, "recipe file not found"))
        return path, path.resolve().parent
    recipes = builtin_recipes()
    if name_or_file not in recipes:
        message = unknown_name("recipe", name_or_file, recipes)
        raise InputError(InputProblem("command line", None, None, message))
    return recipes[name_or_file], Path.cwd()


def load_recipe(name_or_file: str, overrides: list[str] = ()):
    """Find and validate a recipe (no torch is imported)."""
    from ocx.recipes.schema import parse_recipe
    from ocx.recipes.yaml_lines import read_recipe_text

    file, base_dir = locate(name_or_file)
    return parse_recipe(read_recipe_text(file), str(file), base_dir, list(overrides))
