"""The launcher command for a multi-process or multi-node run of `ocx train`.

ocx does not start remote processes itself: it writes the command of DeepSpeed's launcher
(`deepspeed --hostfile`, which starts every node over ssh/pdsh) or of torchrun (run the same
command on every node with its own --node_rank), with the training options passed through
unchanged to `python -m ocx.adapters.train`.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ocx.harness.errors import InputError, InputProblem

LAUNCHERS = ("torchrun", "deepspeed")


@dataclass
class LaunchSpec:
    """Where the processes run; mirrors the launcher flags of `ocx train`."""

    launcher: str = "torchrun"
    nnodes: int = 1
    nproc_per_node: int = 1
    node_rank: int | None = None
    """torchrun: this node's index (0..nnodes-1); deepspeed reads the hostfile instead."""
    hostfile: Path | None = None
    """deepspeed: one `host slots=N` line per node."""
    master_addr: str | None = None
    master_port: int = 29500

    def problems(self) -> list[InputProblem]:
        out = []

        def bad(flag: str, message: str) -> None:
            out.append(InputProblem("ocx train", None, flag, message))

        if self.launcher not in LAUNCHERS:
            bad("--launcher", f"must be one of {', '.join(LAUNCHERS)}, got {self.launcher!r}")
        if self.nnodes < 1:
            bad("--nnodes", f"must be at least 1, got {self.nnodes}")
        if self.nproc_per_node < 1:
            bad("--nproc-per-node", f"must be at least 1, got {self.nproc_per_node}")
        if self.hostfile is not None and not Path(self.hostfile).is_file():
            bad("--hostfile", f"{self.hostfile} does not exist")
        if self.launcher == "torchrun" and self.nnodes > 1:
            if not self.master_addr:
                bad("--master-addr", "torchrun on several nodes needs the address of node 0")
            if self.node_rank is None:
                bad(
                    "--node-rank",
                    "torchrun on several nodes: run the command on every node with its index",
                )
        if self.launcher == "deepspeed" and self.nnodes > 1 and self.hostfile is None:
            bad("--hostfile", "deepspeed on several nodes reads the nodes from a hostfile")
        if self.node_rank is not None and not 0 <= self.node_rank < self.nnodes:
            bad("--node-rank", f"must be in 0..{self.nnodes - 1}, got {self.node_rank}")
        return out

    @property
    def distributed(self) -> bool:
        return self.nnodes > 1 or self.nproc_per_node > 1 or self.hostfile is not None


def _script(name: str) -> str:
    """The launcher script beside this Python (same virtualenv), else the bare name."""
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    return found or name


def launch_command(spec: LaunchSpec, train_args: list[str]) -> list[str]:
    """The argv that starts `python -m ocx.adapters.train TRAIN_ARGS` under the launcher."""
    problems = spec.problems()
    if problems:
        raise InputError(problems)
    if spec.launcher == "deepspeed":
        cmd = [_script("deepspeed")]
        if spec.hostfile is not None:
            cmd += ["--hostfile", str(spec.hostfile)]
        cmd += ["--num_nodes", str(spec.nnodes), "--num_gpus", str(spec.nproc_per_node)]
        if spec.master_addr:
            cmd += ["--master_addr", spec.master_addr]
        return [
            *cmd,
            "--master_port",
            str(spec.master_port),
            "--module",
            "ocx.adapters.train",
            *train_args,
        ]
    cmd = [
        _script("torchrun"),
        "--nnodes",
        str(spec.nnodes),
        "--nproc_per_node",
        str(spec.nproc_per_node),
    ]
    if spec.nnodes > 1:
        cmd += ["--node_rank", str(spec.node_rank), "--master_addr", str(spec.master_addr)]
    elif spec.master_addr:
        cmd += ["--master_addr", spec.master_addr]
    return [*cmd, "--master_port", str(spec.master_port), "-m", "ocx.adapters.train", *train_args]


def passthrough_args(command, params: dict, skip: set[str]) -> list[str]:
    """The `ocx train` options of `params` that differ from their defaults, as argv.

    Paths are made absolute, since the launched processes may start elsewhere (other nodes
    need the same paths, e.g. a shared filesystem).
    """
    args: list[str] = []
    for param in command.params:
        if param.name in skip or not param.opts:
            continue
        value = params.get(param.name)
        if (
            value is None
            or str(value) == str(param.default)
            or (param.is_flag and not param.secondary_opts and not value)
        ):
            continue
        if param.is_flag:
            args.append(param.opts[0] if value else param.secondary_opts[0])
            continue
        if isinstance(value, Path) or (param.name == "model" and Path(value).exists()):
            value = Path(value).resolve()
        args += [param.opts[0], str(value)]
    return args
