"""Helpers the suites share: reading a suite's files from a data source into Samples."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

from ocx.benchmarks.base import DataSource, Sample, select_limit
from ocx.harness.errors import InputError, InputProblem

CHAIN_OF_THOUGHT = {"max_tokens": 1024, "temperature": 0.0}
ZERO_SHOT = {"max_tokens": 512, "temperature": 0.0}

# build(record, subset, index) -> Sample; raises KeyError/TypeError/ValueError on a bad record.
Builder = Callable[[dict, str, int], Sample]


def subset_name(path: str) -> str:
    """``"zs/agieval/lsat-ar.zero-shot.jsonl"`` -> ``"lsat-ar"``."""
    return PurePosixPath(path).name.removesuffix(".jsonl").removesuffix(".zero-shot")


def user_messages(question: str) -> list[dict]:
    # OpenChat evaluates every set as one user turn holding the whole (few-shot) prompt, no system.
    return [{"role": "user", "content": question}]


def load_subsets(
    data: DataSource,
    suite: str,
    folder: str,
    build: Builder,
    limit: int | None,
    files: list[str] | None = None,
) -> list[Sample]:
    """Samples from every JSONL file under ``folder`` (or the named ``files``), in file order.

    A record that ``build`` rejects is reported with its file, line and field; all problems are
    reported together before anything is evaluated.
    """
    paths = files if files is not None else data.list_files(folder)
    if not paths:
        raise InputError(
            InputProblem(
                data.description, None, folder, f"no {suite} data (*.jsonl) in this folder"
            )
        )
    if limit is None:
        return select_limit(_build_groups(data, paths, build, None), None)
    # --limit takes samples round-robin over the files, so each file gives at most `depth`: read
    # only that much of each (deeper only if short files leave the limit unmet).
    depth = max(1, -(-limit // len(paths)))
    while True:
        groups = _build_groups(data, paths, build, depth)
        if sum(map(len, groups)) >= limit or all(len(g) < depth for g in groups):
            return select_limit(groups, limit)
        depth *= 2


def _build_groups(
    data: DataSource, paths: list[str], build: Builder, depth: int | None
) -> list[list[Sample]]:
    """Samples per file (the first `depth` records of each, or all); every bad record reported."""
    from ocx.benchmarks.data import read_jsonl_head

    groups: list[list[Sample]] = []
    problems: list[InputProblem] = []
    for path in paths:
        subset = subset_name(path)
        records = data.read_jsonl(path) if depth is None else read_jsonl_head(data, path, depth)
        group, bad = build_samples(
            records, f"{data.description}:{path}", lambda r, i, subset=subset: build(r, subset, i)
        )
        groups.append(group)
        problems += bad
    if problems:
        raise InputError(problems)
    return groups


def build_samples(
    records: Iterable[dict], where: str, build: Callable[[dict, int], Sample]
) -> tuple[list[Sample], list[InputProblem]]:
    """``build(record, index)`` for each record, and a problem naming ``where``, the line and the
    field for each one it rejects (KeyError: a missing field; TypeError/ValueError: its message)."""
    samples: list[Sample] = []
    problems: list[InputProblem] = []
    for index, record in enumerate(records):
        try:
            samples.append(build(record, index))
        except KeyError as exc:
            problems.append(InputProblem(where, index + 1, str(exc.args[0]), "missing field"))
        except (TypeError, ValueError) as exc:
            problems.append(InputProblem(where, index + 1, None, str(exc)))
    return samples, problems


def load_records(
    records: Iterable[dict], where: str, build: Callable[[dict, int], Sample], limit: int | None
) -> list[Sample]:
    """The samples of one file's records (``limit`` of them), or every bad record reported."""
    samples, problems = build_samples(records, where, build)
    if problems:
        raise InputError(problems)
    return select_limit([samples], limit)


def option_letters(options: object, where: str = "options") -> str:
    """``["(A)", "(B)"]`` or ``["A", "B"]`` -> ``"AB"``.

    Any single characters are accepted: OpenChat's BBH-MC colored-objects task runs its option
    labels past "Z" into "[", "\\", "]", "^", "_", "`", "a", "b" (28+ options).
    """
    if not isinstance(options, list) or not options:
        raise ValueError(f"field {where!r} must be a non-empty list of option letters")
    letters = [
        str(o)[1:-1] if len(str(o)) == 3 and str(o)[0] == "(" and str(o)[-1] == ")" else str(o)
        for o in options
    ]
    if not all(len(x) == 1 for x in letters):
        raise ValueError(f"field {where!r} holds {options!r}, not single option letters")
    return "".join(letters)
