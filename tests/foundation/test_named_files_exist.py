"""Docs, comments and configs name repository files that exist: a path in README.md, docs/,
pyproject.toml, .ci/run, a recipe or any Python file (`harness/runner.py`, `tests/perf/...`)
must resolve, so a renamed or deleted file cannot leave a pointer to nowhere behind it."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOP_FOLDERS = ("adapters", "harness", "benchmarks", "recipes", "tests", "docs", "ocx", r"\.ci")
PATH = re.compile(rf"(?<![\w/.-])((?:{'|'.join(TOP_FOLDERS)})/[\w./-]*\w)")
# Names that are meant not to exist: placeholders in the extending guide, a prefix, a fake
# benchmark in a runner test, and the old test-support modules a test checks are gone.
NOT_FILES = {
    ("docs/extending.md", "harness/templates/jinja/NAME.jinja"),
    ("docs/extending.md", "benchmarks/NAME.py"),
    ("tests/perf/core.py", "tests/perf/bench_"),
    ("tests/perf/runner.py", "tests/perf/bench_"),
    ("tests/perf/test_runner.py", "tests/perf/bench_x.py"),
    ("tests/foundation/test_testing_package.py", "harness/mock_server.py"),
    ("tests/foundation/test_testing_package.py", "benchmarks/testing.py"),
    ("tests/foundation/test_testing_package.py", "harness/data/synthetic.py"),
    ("adapters/train/ds_config.py", "adapters/train/zero"),  # zero<stage>.json
}
SKIPPED_FOLDERS = {".git", "node_modules", "__pycache__"}


def _scanned_files() -> list[Path]:
    fixed = [REPO / "README.md", REPO / "pyproject.toml", REPO / ".ci" / "run"]
    found = [
        p
        for pattern in ("docs/*.md", "**/*.py", "recipes/*.yaml")
        for p in REPO.glob(pattern)
        if not any(part in SKIPPED_FOLDERS or part.startswith(".venv") for part in p.parts)
        and p != Path(__file__).resolve()  # its table names files that must not exist
    ]
    return fixed + sorted(found)


def _resolves(name: str) -> bool:
    # `ocx/harness/x.py` is how an installed path reads; in the repository it is harness/x.py.
    candidates = [name, name.removeprefix("ocx/")] if name.startswith("ocx/") else [name]
    return any((REPO / c).exists() for c in candidates)


def _missing_names(path: Path) -> list[str]:
    rel = path.relative_to(REPO).as_posix()
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for match in PATH.finditer(line):
            name = match.group(1).rstrip(".")
            if (rel, name) not in NOT_FILES and not _resolves(name):
                out.append(f"{rel}:{number}: {name}")
    return out


def test_every_repository_path_named_in_docs_comments_and_configs_exists():
    files = _scanned_files()
    assert len(files) > 200  # the scan really covers the tree
    missing = [entry for path in files for entry in _missing_names(path)]
    assert missing == []


def test_the_check_finds_a_path_that_does_not_exist(tmp_path):
    doc = REPO / "docs" / "eval.md"
    assert _missing_names(doc) == []
    fake = tmp_path / "x.md"
    fake.write_text("see `harness/no_such_module.py` and harness/runner.py\n")
    found = [m.group(1) for m in PATH.finditer(fake.read_text()) if not _resolves(m.group(1))]
    assert found == ["harness/no_such_module.py"]
