"""`ocx report RESULT...`: compare evaluation runs; `ocx report RUN_DIR`: redraw a recipe report."""

from __future__ import annotations

from pathlib import Path

import click

from ocx.cli.options import console


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the HTML report [default: eval_report.html; for a recipe output folder, "
    "its report.html].",
)
@click.option(
    "--title", default="ocx evaluation report", show_default=True, help="Title of the HTML report."
)
def report(results: tuple[Path, ...], html_path: Path | None, title: str) -> None:
    """Compare results.json files (or the folders holding them) from `ocx eval`.

    With two or more runs, each later run is tested against the first on the items both
    answered (McNemar's exact test, or a paired bootstrap), and significant differences are
    marked with *.

    Given the output folder of `ocx recipe run`, print its per-epoch table again and redraw its
    report.html (loss curves, each suite's score per epoch and condition, the best epoch) from
    what the run left on disk.
    """
    from ocx.recipes.report import load_recipe_info

    screen = console()
    recipe_info = [load_recipe_info(p) if p.is_dir() else None for p in results]
    if any(recipe_info):
        if len(results) > 1:
            raise click.UsageError(
                "give one recipe output folder on its own (or results.json files to compare)"
            )
        _recipe_report(screen, results[0], recipe_info[0], html_path)
        return
    _compare(screen, results, html_path or Path("eval_report.html"), title)


def _compare(console, results: tuple[Path, ...], html_path: Path, title: str) -> None:
    from ocx.harness.atomic import atomic_write_text
    from ocx.harness.report import comparison_table, html_report, load_runs, paired_table

    runs = load_runs(list(results))
    console.print(comparison_table(runs))
    if len(runs) > 1:
        console.print(paired_table(runs))
    atomic_write_text(html_path, html_report(runs, title=title))
    console.print(f"HTML report: {html_path}")


def _recipe_report(console, output: Path, info: dict, html_path: Path | None) -> None:
    from ocx.recipes.report import recipe_table, recorded_rows, report_document, write_recipe_report

    rows = recorded_rows(output, info["conditions"])
    document = report_document(output, info, rows)
    _, written = write_recipe_report(output, document, html_path)
    console.print(recipe_table(document))
    console.print(f"HTML report: {written}")
