"""Peers' own code for the baselines, each in its own cached virtualenv (never in ocx's venv).

A venv is built once per spec under `$OCX_BENCH_CACHE` (default `~/.cache/ocx/bench`), in a
folder named after the spec's hash, so a changed spec builds a new one and reruns reuse it.
It is built in a temporary folder and renamed when complete: an interrupted build leaves no
half-made venv behind. Where pip cannot build it (no network), the baseline is skipped with
pip's message as the reason.

`OCHAT_PYTHON` / `OCX_LMEVAL_PYTHON` still point a baseline at a venv made by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# Each spec is a list of `pip install` argument lists, run in order. torch is pinned to the
# local CPU build: a bare `torch` requirement would pull a CUDA build of several GB.
SPECS: dict[str, list[list[str]]] = {
    # docs/data.md: ochat itself without its pins, plus what generate_dataset and the sampler
    # import.
    "ochat": [
        ["torch==2.13.0"],
        ["--no-deps", "ochat==3.6.1"],
        [
            "ray",
            "pyarrow",
            "orjson",
            "pydantic",
            "numba",
            "numpy",
            "transformers==4.44.2",
            "sentencepiece",
            "protobuf",
            "torch==2.13.0",
        ],
    ],
    "lmeval": [["torch==2.13.0", "lm-eval[api]==0.4.*"]],
    # lm-eval's `hf` model and its HF tokenizer for `local-completions`: the transformers of ocx's
    # own venv, so both sides run the same forward pass.
    # protobuf: transformers' slow (exact) sentencepiece tokenizer reads the model file with it.
    "lmeval_hf": [
        [
            "torch==2.13.0",
            "lm-eval[api,hf]==0.4.13",
            "transformers==5.24.0",
            "sentencepiece",
            "protobuf",
        ]
    ],
}
OVERRIDES = {
    "ochat": "OCHAT_PYTHON",
    "lmeval": "OCX_LMEVAL_PYTHON",
    "lmeval_hf": "OCX_LMEVAL_HF_PYTHON",
}
# What the JSON records of each venv, so a reader knows which peer version was measured.
RECORDED = {
    "ochat": ["ochat", "transformers", "ray", "numba"],
    "lmeval": ["lm_eval", "httpx", "aiohttp"],
    "lmeval_hf": ["lm_eval", "transformers", "torch", "accelerate"],
}


class PeerUnavailable(RuntimeError):
    """The peer's venv could not be found or built; the message says why."""


def cache_dir() -> Path:
    return Path(os.environ.get("OCX_BENCH_CACHE", Path.home() / ".cache" / "ocx" / "bench"))


def _spec_hash(name: str) -> str:
    blob = json.dumps([SPECS[name], sys.version_info[:2]]).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def peer_python(name: str, build: bool = True) -> Path:
    """The python of peer `name`'s venv, built on first use; PeerUnavailable if it cannot be had."""
    override = os.environ.get(OVERRIDES[name])
    if override:
        if not Path(override).exists():
            raise PeerUnavailable(f"{OVERRIDES[name]}={override} does not exist")
        return Path(override)
    venv = cache_dir() / "venvs" / f"{name}-{_spec_hash(name)}"
    if (venv / "bin" / "python").exists():
        return venv / "bin" / "python"
    if not build:
        raise PeerUnavailable(f"no {name} venv at {venv} (run without --no-build to make it)")
    _build(name, venv)
    return venv / "bin" / "python"


def _build(name: str, venv: Path) -> None:
    partial = venv.with_name(f"{venv.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(partial)], check=True, capture_output=True)
    pip = [
        str(partial / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    for args in SPECS[name]:
        done = subprocess.run([*pip, *args], capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise PeerUnavailable(
                f"pip install {' '.join(args)} failed for the {name} venv: {done.stderr[-600:]}"
            )
    # The rename leaves the venv's console scripts with the partial path in their shebang; the
    # baselines only ever run `bin/python -m ...`, which does not use them.
    partial.rename(venv)


def versions(name: str, python: Path) -> dict[str, str]:
    """Versions of the packages RECORDED for this peer, as its own venv reports them."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p.replace('_', '-'))\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run(
        [str(python), "-c", script, *RECORDED[name]], capture_output=True, text=True
    )
    return json.loads(done.stdout) if done.returncode == 0 else {}


if __name__ == "__main__":  # `python -m tests.perf.peers ochat lmeval`: build ahead of a run
    for peer in sys.argv[1:] or list(SPECS):
        print(peer, peer_python(peer), versions(peer, peer_python(peer)))
