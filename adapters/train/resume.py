"""Safe resume: a run continues only with the world size, data and settings it was started with.

Resuming with another world size changes every step's batches (the multipack schedule is per
rank count), another dataset changes what the saved position means, and another setting (LR,
budget, epochs, ...) changes the schedule the saved optimizer state belongs to. Any of them
would silently train something other than the run being continued, so `--resume` refuses
(exit 2, naming every difference) unless `--force-resume` is given.

The fingerprint is saved in out/train.json when a run starts and checked, before the model
loads, against the one the resumed run would have.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ocx.adapters.train.config import TrainConfig
from ocx.harness.errors import InputError, InputProblem
from ocx.harness.settings import flags, specs

RUN_INFO = "train.json"
# Settings that do not change what is trained (where things are, how they are shown, when
# saved): their fields say so (`resume_check=False` in adapters/train/config.py).
NOT_COMPARED = tuple(s.name for s in specs(TrainConfig) if not s.meta.resume_check)


def dataset_sha256(manifest: dict) -> str:
    """The dataset's identity: its manifest (input file hashes, template, tokenizer, counts)."""
    content = {k: v for k, v in manifest.items() if k != "ocx_version"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def fingerprint(settings: dict, world_size: int, manifest: dict, ds_config: dict) -> dict:
    """What must be equal for a resumed run to continue the saved one."""
    return {
        "world_size": world_size,
        "dataset_sha256": dataset_sha256(manifest),
        "settings": {k: v for k, v in sorted(settings.items()) if k not in NOT_COMPARED},
        "deepspeed": ds_config,
    }


def differences(saved: dict, current: dict) -> list[str]:
    """One line per difference, saved value first."""
    lines = []
    if saved.get("world_size") != current["world_size"]:
        lines.append(
            f"world size: the run has {saved.get('world_size')} process(es), "
            f"now {current['world_size']}"
        )
    if saved.get("dataset_sha256") != current["dataset_sha256"]:
        lines.append(
            "dataset: its manifest (content hashes and counts) differs from the run's data"
        )
    old, new = saved.get("settings", {}), current["settings"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            flag = flags(TrainConfig).get(key, key)
            lines.append(f"{flag}: the run has {old.get(key)!r}, now {new.get(key)!r}")
    if saved.get("deepspeed") != current["deepspeed"]:
        lines.append("DeepSpeed config: the merged config differs from the run's")
    return lines


def check_resume(out: Path, current: dict, *, force: bool) -> list[str]:
    """Raise InputError listing what differs from the saved run, unless `force` (then return it).

    A folder without a saved fingerprint (nothing resumable yet) passes.
    """
    path = Path(out) / RUN_INFO
    if not path.is_file():
        return []
    saved = json.loads(path.read_text()).get("fingerprint")
    if saved is None:
        return []
    found = differences(saved, current)
    if found and not force:
        raise InputError(
            [InputProblem(str(path), None, None, f"cannot resume: {line}") for line in found]
            + [
                InputProblem(
                    "ocx train",
                    None,
                    "--resume",
                    "start a new --out, restore the original settings, or pass --force-resume",
                )
            ]
        )
    return found
