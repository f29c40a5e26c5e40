"""What a benchmark module declares, and the statistics the runner computes from its rounds.

A benchmark module (`tests/perf/bench_<name>.py`, see tests/perf/README.md) declares:

* `NAME`: the CLI name and the docs marker (`<!-- bench:NAME:begin -->`);
* `TITLE`: one line for the docs table's heading;
* `RATIOS`: a list of `Ratio` (target, direction, physical limit);
* `variants(ctx)`: a generator that prepares once, yields `{variant: fn}` where each `fn()`
  runs one measurement and returns its figures (`{"wall_s": 1.2, ...}`), then cleans up;
* optionally `GPU = True` (run only with `--gpu`), `LABELS` (figure -> table label) and
  `check(figures, quick)` (invariants of one round: raise AssertionError naming what broke).

The runner calls every fn once per round, in an order that alternates between rounds, so a
busy moment on a shared machine hits the baseline and ocx alike.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path


class Skip(Exception):
    """Raised by `variants()` when the benchmark cannot run here; the message is the reason."""


@dataclass(frozen=True)
class Ratio:
    """A ratio of two figures of the same round: the benchmark's stated target and its limit.

    `num` and `den` name figures as "variant.figure" (or are numbers, e.g. an ideal time).
    The target is met when the median ratio is >= target (better="higher") or <= target
    (better="lower"). `limit` is the physical bound of the ratio (a figure, a number, or a
    (num, den) pair of figures whose ratio it is): what
    a perfect implementation would reach; the runner reports median / limit (or limit /
    median for "lower"), i.e. the fraction of the possible that was reached.
    """

    name: str
    num: str | float
    den: str | float
    target: float | None = None
    better: str = "higher"
    limit: str | float | tuple[str, str] | None = None
    limit_note: str = ""

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower"):
            raise ValueError(
                f"Ratio {self.name!r}: better must be 'higher' or 'lower', got {self.better!r}"
            )


@dataclass
class Context:
    """What a benchmark's `variants()` gets: the mode, a scratch folder, and where to record."""

    quick: bool
    work: Path
    settings: dict = field(default_factory=dict)
    """Sizes and options of this run (the docs print them above the table)."""
    skipped: dict = field(default_factory=dict)
    """variant -> why it was left out (a baseline whose peer venv could not be built)."""
    peers: dict = field(default_factory=dict)
    """peer -> {package: version} of the venvs used."""
    build_peers: bool = True

    def peer_python(self, peer: str, variant: str) -> Path | None:
        """The peer venv's python, or None after recording why `variant` is skipped."""
        from tests.perf.peers import PeerUnavailable, peer_python, versions

        try:
            python = peer_python(peer, build=self.build_peers)
        except PeerUnavailable as exc:
            self.skipped[variant] = str(exc)
            return None
        self.peers[peer] = versions(peer, python)
        return python


def shared_file(relative: str) -> Path:
    """A file of the shared/ data folder (OCX_SHARED_DIR, default ../shared); Skip when absent."""
    import os

    shared = Path(os.environ.get("OCX_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
    path = shared / relative
    if not path.is_file():
        raise Skip(f"no {relative} under {shared} (set OCX_SHARED_DIR to the shared/ data folder)")
    return path


def cuda_device_name() -> str:
    """The first CUDA device's name, for a GPU benchmark's settings; Skip when torch sees none."""
    import torch

    if not torch.cuda.is_available():
        raise Skip("no CUDA device (torch.cuda.is_available() is False)")
    return torch.cuda.get_device_name(0)


def spread(values: list[float]) -> dict:
    """min / median / max (and n) of one figure over the rounds."""
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "n": len(values),
    }


def _value(operand, figures: dict) -> float | None:
    if isinstance(operand, (int, float)):
        return float(operand)
    if isinstance(operand, tuple):
        num, den = (_value(x, figures) for x in operand)
        return num / den if num is not None and den else None
    return figures.get(operand)


def ratio_per_round(ratio: Ratio, rounds: list[dict]) -> list[float]:
    """The ratio inside each round (paired: both figures from the same round)."""
    out = []
    for figures in rounds:
        num, den = _value(ratio.num, figures), _value(ratio.den, figures)
        if num is not None and den:
            out.append(num / den)
    return out


def summarize_ratio(ratio: Ratio, rounds: list[dict]) -> dict:
    """Spread of a ratio over rounds, whether its target is met, how close it is to its limit."""
    values = ratio_per_round(ratio, rounds)
    out = {k: v for k, v in asdict(ratio).items() if k not in ("num", "den", "limit")}
    out.update(num=str(ratio.num), den=str(ratio.den))
    if ratio.limit is not None:
        out["limit"] = " / ".join(ratio.limit) if isinstance(ratio.limit, tuple) else ratio.limit
    if not values:
        return {**out, "missing": "not measured in this run"}
    out.update(spread(values))
    median = out["median"]
    if ratio.target is not None:
        out["met"] = median >= ratio.target if ratio.better == "higher" else median <= ratio.target
    limits = [_value(ratio.limit, r) for r in rounds] if ratio.limit is not None else []
    limits = [x for x in limits if x is not None]
    if limits:
        limit = statistics.median(limits)
        out["limit_value"] = limit
        out["of_limit"] = median / limit if ratio.better == "higher" else limit / median
    return out


def sane(figures: dict) -> list[str]:
    """Figures that no working benchmark produces: NaN, infinite or negative."""
    return [
        f"{k}={v}"
        for k, v in figures.items()
        if not isinstance(v, (int, float)) or math.isnan(v) or math.isinf(v) or v < 0
    ]
