"""`ocx report RESULT...`: compare evaluation runs in a table and an HTML report."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--html", "html_path", type=click.Path(path_type=Path), default=Path("eval_report.html"),
              show_default=True, help="Where to write the HTML report (bar chart per suite).")
@click.option("--title", default="ocx evaluation report", show_default=True, help="Title of the HTML report.")
def report(results: tuple[Path, ...], html_path: Path, title: str) -> None:
    """Compare results.json files (or the folders holding them) from `ocx eval`.

    With two or more runs, each later run is tested against the first on the items both
    answered (McNemar's exact test, or a paired bootstrap), and significant differences are
    marked with *.
    """
    from rich.console import Console

    from ocx.harness.atomic import atomic_write_text
    from ocx.harness.report import comparison_table, html_report, load_runs, paired_table

    runs = load_runs(list(results))
    console = Console()
    console.print(comparison_table(runs))
    if len(runs) > 1:
        console.print(paired_table(runs))
    atomic_write_text(html_path, html_report(runs, title=title))
    console.print(f"HTML report: {html_path}")
