"""`ocx recipe`: list, show, validate, copy and run YAML recipes."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from ocx.cli import SuggestingGroup
from ocx.cli.options import console


@click.group(cls=SuggestingGroup)
def recipe() -> None:
    """YAML recipes: tokenize, train, evaluate every epoch, report the best epoch."""


@recipe.command("list")
def list_recipes() -> None:
    """The built-in recipes."""
    import yaml
    from rich.table import Table

    from ocx.recipes import builtin_recipes

    table = Table(title="built-in recipes")
    for column in ("name", "model type", "base model", "description"):
        table.add_column(column)
    for name, path in builtin_recipes().items():
        raw = yaml.safe_load(path.read_text())
        table.add_row(
            name, raw["model"]["model_type"], raw["model"]["base"], raw.get("description", "")
        )
    console().print(table)


@recipe.command("show")
@click.argument("name")
def show(name: str) -> None:
    """Print a recipe's YAML."""
    from rich.syntax import Syntax

    from ocx.recipes import locate

    file, _ = locate(name)
    console().print(Syntax(file.read_text(), "yaml"))


@recipe.command("validate")
@click.argument("name_or_file")
@click.argument("overrides", nargs=-1)
def validate(name_or_file: str, overrides: tuple[str, ...]) -> None:
    """Check a recipe (types, model type, suites, data files) without importing torch."""
    from ocx.recipes import load_recipe

    r = load_recipe(name_or_file, list(overrides))
    console().print(
        f"[green]ok[/] {r.file}: {r.model_type}, {len(r.data)} data sources, "
        f"{r.train.get('epochs', 'default')} epochs, suites {', '.join(r.eval.suites)}"
    )


@recipe.command("cp")
@click.argument("name")
@click.argument("dest", type=click.Path(dir_okay=True))
def copy(name: str, dest: str) -> None:
    """Copy a built-in recipe to DEST to edit it."""
    from ocx.recipes import locate

    file, _ = locate(name)
    target = Path(dest) / file.name if Path(dest).is_dir() else Path(dest)
    if target.exists():
        raise click.UsageError(f"{target} already exists")
    shutil.copyfile(file, target)
    console().print(f"wrote {target}")


@recipe.command("run")
@click.argument("name_or_file")
@click.argument("overrides", nargs=-1)
@click.option(
    "--output", type=click.Path(file_okay=False), help="Override the recipe's output folder."
)
def run(name_or_file: str, overrides: tuple[str, ...], output: str | None) -> None:
    """Run a recipe: prepare data, tokenize (cached), train, evaluate every epoch, report.

    OVERRIDES are `section.key=value` pairs, e.g. `train.epochs=2 eval.limit=20`.
    A killed run resumes where it stopped when started again with the same output folder.
    """
    from ocx.recipes import load_recipe
    from ocx.recipes.runner import run_recipe

    r = load_recipe(name_or_file, list(overrides))
    if output:
        r.output = Path(output)
    run_recipe(r)
