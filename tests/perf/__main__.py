"""`python -m tests.perf [NAME...] [--quick] [--repeats N] [--json OUT] [--gpu]`: run benchmarks.

Run from the repository root (the benchmarks use test fixtures and peers' venvs, so they live
beside the tests, not in the installed package). Exit status: 0 when every chosen benchmark
ran or was skipped with a reason, 1 when one failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tests.perf.runner import discover, run


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.perf", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="benchmarks to run (default: all CPU ones)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, seconds each: checks the benchmarks work"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="rounds per benchmark (default 5, quick 1)"
    )
    parser.add_argument(
        "--json", type=Path, metavar="OUT", help="write every figure, round and load reading here"
    )
    parser.add_argument(
        "--gpu", action="store_true", help="also run the GPU benchmarks (they skip without CUDA)"
    )
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="skip baselines whose peer venv is not built yet instead of building it",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    args.repeats = args.repeats or (1 if args.quick else 5)
    return args


def print_summary(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for name, bench in result["benchmarks"].items():
        if bench["status"] != "ok":
            console.print(f"[bold]{name}[/]: {bench['status']}: {bench.get('reason', '')}")
            continue
        table = Table(title=f"{name}: {bench['title']} ({result['repeats']} rounds)")
        for column in ("ratio", "median", "min - max", "target", "met", "limit", "of limit"):
            table.add_column(column)
        for r in bench["ratios"]:
            if "missing" in r:
                table.add_row(r["name"], "-", r["missing"], "", "", "", "")
                continue
            target = (
                ""
                if r["target"] is None
                else f"{'>=' if r['better'] == 'higher' else '<='} {r['target']:g}"
            )
            table.add_row(
                r["name"],
                f"{r['median']:.3g}",
                f"{r['min']:.3g} - {r['max']:.3g}",
                target,
                {True: "yes", False: "[red]no[/]"}.get(r.get("met"), ""),
                f"{r['limit_value']:.3g}" if "limit_value" in r else "",
                f"{r['of_limit']:.0%}" if "of_limit" in r else "",
            )
        console.print(table)
        for variant, reason in bench["skipped_variants"].items():
            console.print(f"  skipped {variant}: {reason}")


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault(
        "HF_HUB_OFFLINE", "1"
    )  # benchmarks build tiny models; nothing comes from a hub
    if args.list:
        for name, module in discover().items():
            gpu = "[gpu] " if getattr(module, "GPU", False) else ""
            print(f"{name:20} {gpu}{getattr(module, 'TITLE', '')}")
        return 0
    try:
        result = run(args.names, args.quick, args.repeats, args.gpu, not args.no_build)
    except KeyError as exc:
        names = ", ".join(discover())
        print(
            f"python -m tests.perf: unknown benchmark {', '.join(exc.args[0])} (known: {names})",
            file=sys.stderr,
        )
        return 2
    print_summary(result)
    if args.json:
        partial = args.json.with_name(args.json.name + ".partial")
        partial.write_text(json.dumps(result, indent=2) + "\n")
        partial.replace(args.json)  # never a half-written result file
    failed = [n for n, b in result["benchmarks"].items() if b["status"] == "failed"]
    for name in failed:
        print(f"\n[{name}] failed:\n{result['benchmarks'][name]['traceback']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
