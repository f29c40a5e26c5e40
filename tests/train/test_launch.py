"""Launcher commands for several processes or nodes (`ocx train --print-launch-command`)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from ocx.adapters.train.launch import LaunchSpec, launch_command
from ocx.harness.errors import InputError
from tests.cli import ocx_process
from tests.train.conftest import clean_env

TRAIN = ["--data", "/d", "--model", "/m", "--out", "/o"]


def test_torchrun_on_two_nodes_names_node_rank_and_master_then_the_training_module():
    cmd = launch_command(
        LaunchSpec(
            nnodes=2, nproc_per_node=8, node_rank=1, master_addr="10.0.0.1", master_port=29600
        ),
        TRAIN,
    )
    assert Path(cmd[0]).name == "torchrun"
    assert cmd[1:] == [
        "--nnodes",
        "2",
        "--nproc_per_node",
        "8",
        "--node_rank",
        "1",
        "--master_addr",
        "10.0.0.1",
        "--master_port",
        "29600",
        "-m",
        "ocx.adapters.train",
        *TRAIN,
    ]


def test_deepspeed_with_a_hostfile_starts_every_node_from_one_command(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("node1 slots=8\nnode2 slots=8\n")
    cmd = launch_command(
        LaunchSpec(
            launcher="deepspeed", nnodes=2, nproc_per_node=8, hostfile=hostfile, master_addr="node1"
        ),
        TRAIN,
    )
    assert Path(cmd[0]).name == "deepspeed"
    assert cmd[1:] == [
        "--hostfile",
        str(hostfile),
        "--num_nodes",
        "2",
        "--num_gpus",
        "8",
        "--master_addr",
        "node1",
        "--master_port",
        "29500",
        "--module",
        "ocx.adapters.train",
        *TRAIN,
    ]


@pytest.mark.parametrize(
    "spec,flag",
    [
        (LaunchSpec(nnodes=2, nproc_per_node=8, node_rank=0), "--master-addr"),
        (LaunchSpec(nnodes=2, nproc_per_node=8, master_addr="h"), "--node-rank"),
        (LaunchSpec(launcher="deepspeed", nnodes=2), "--hostfile"),
        (LaunchSpec(nnodes=2, node_rank=2, master_addr="h"), "--node-rank"),
        (LaunchSpec(nproc_per_node=0), "--nproc-per-node"),
        (LaunchSpec(hostfile=Path("/no/such/hostfile")), "--hostfile"),
    ],
)
def test_incomplete_multi_node_settings_are_refused_naming_the_flag(spec, flag):
    with pytest.raises(InputError) as info:
        launch_command(spec, TRAIN)
    assert flag in {p.field for p in info.value.problems}


def test_the_printed_command_passes_the_training_options_through_without_launcher_options(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text("{}")
    proc = ocx_process(
        "train",
        *("--data", data, "--model", "org/name", "--out", "runs/a"),
        *("--epochs", 3, "--no-packing", "--lr", "0.001"),
        *("--nproc-per-node", 2, "--master-port", 29999, "--print-launch-command"),
        env=clean_env(),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    cmd = shlex.split(proc.stdout.strip().splitlines()[-1])
    train_args = cmd[cmd.index("ocx.adapters.train") + 1 :]
    assert train_args == [
        "--data",
        str(data.resolve()),
        "--model",
        "org/name",
        "--out",
        str((tmp_path / "runs/a").resolve()),
        "--epochs",
        "3",
        "--lr",
        "0.001",
        "--no-packing",
    ]
    assert cmd[1 : cmd.index("-m")] == [
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29999",
    ]
