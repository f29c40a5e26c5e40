"""Local lm-evaluation-harness tasks (JSON data files, no hub) and a runner for its venv.

Shared by the log-likelihood benchmark (bench_loglikelihood.py) and the lm-eval parity test
(tests/harness/test_lmeval_loglikelihood_parity.py): both give lm-eval exactly the items ocx
scores, as a task folder for `TaskManager(include_path=...)`, and read back its per-option
log-likelihoods (`--log_samples`' `filtered_resps`) with acc and acc_norm.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

METRICS = """metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def exact_hf_tokenizer(checkpoint: Path, folder: Path) -> Path:
    """The checkpoint's sentencepiece tokenizer as a folder lm-eval's `AutoTokenizer` loads exactly.

    transformers 5 turns a `LlamaTokenizer` folder into a fast tokenizer that differs from
    sentencepiece on runs of spaces (shared/README.md), and its `use_fast=False` no longer
    helps; `SentencePieceBackend` is sentencepiece itself, and `special_tokens_pattern: bos`
    makes it prepend BOS as a Llama tokenizer does. Needs `sentencepiece` and `protobuf`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.model", "special_tokens_map.json"):
        if (checkpoint / name).is_file():
            (folder / name).write_bytes((checkpoint / name).read_bytes())
    config = json.loads((checkpoint / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.update(tokenizer_class="SentencePieceBackend", special_tokens_pattern="bos")
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return folder


def write_items_task(folder: Path, task: str, items: list[dict]) -> Path:
    """A task whose rows are already posed: `{"context", "choices", "gold"}` per item (fields,
    not templates, so lm-eval uses the text verbatim; its default target delimiter " ")."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{task}.jsonl"
    data.write_text(
        "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8"
    )
    (folder / f"{task}.yaml").write_text(
        f"task: {task}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {json.dumps(str(data))}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        "doc_to_text: context\ndoc_to_choice: choices\ndoc_to_target: gold\n" + METRICS,
        encoding="utf-8",
    )
    return folder


def write_arc_task(folder: Path, task: str, rows: Path) -> Path:
    """lm-eval 0.4.13's own `arc_easy.yaml` templates over local rows in allenai/ai2_arc's form."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{task}.yaml").write_text(
        f"task: {task}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {json.dumps(str(rows))}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\n'
        'doc_to_target: "{{choices.label.index(answerKey)}}"\n'
        'doc_to_choice: "{{choices.text}}"\n' + METRICS,
        encoding="utf-8",
    )
    return folder


def write_hellaswag_task(folder: Path, task: str, rows: Path) -> Path:
    """lm-eval 0.4.13's own `hellaswag.yaml`, its `process_docs` imported from lm-eval itself,
    over local rows in Rowan/hellaswag's schema (scored as lm-eval does: the validation split)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "utils.py").write_text(
        "from lm_eval.tasks.hellaswag.utils import process_docs  # noqa: F401\n", encoding="utf-8"
    )
    (folder / f"{task}.yaml").write_text(
        f"task: {task}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    validation: {json.dumps(str(rows))}\n"
        "validation_split: validation\noutput_type: multiple_choice\n"
        "process_docs: !function utils.process_docs\n"
        'doc_to_text: "{{query}}"\ndoc_to_target: "{{label}}"\ndoc_to_choice: "choices"\n'
        + METRICS,
        encoding="utf-8",
    )
    return folder


# Runs in lm-eval's venv: simple_evaluate on local tasks; prints one JSON line.
RUN_SCRIPT = r"""
import json, logging, sys, time
logging.disable(logging.WARNING)
start = time.perf_counter()
import lm_eval
from lm_eval.tasks import TaskManager
include, tasks, model, model_args, batch_size, defaults = sys.argv[1:7]
tasks = tasks.split(",")
evaluated = time.perf_counter()
manager = TaskManager(include_path=include, include_defaults=defaults == "1")
out = lm_eval.simple_evaluate(model=model, model_args=model_args, tasks=tasks,
                              task_manager=manager, batch_size=batch_size,
                              log_samples=True, num_fewshot=0, bootstrap_iters=0)
done = time.perf_counter()
report = {"import_s": evaluated - start, "evaluate_s": done - evaluated, "tasks": {}}
for task in tasks:
    metrics = out["results"][task]
    samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    report["tasks"][task] = {
        "acc": metrics["acc,none"], "acc_norm": metrics["acc_norm,none"],
        "samples": [{"doc_id": s["doc_id"], "logprobs": [float(r[0]) for r in s["filtered_resps"]],
                     "greedy": [bool(r[1]) for r in s["filtered_resps"]],
                     "arguments": [list(a[:2]) for a in s["arguments"]],
                     "acc": s["acc"], "acc_norm": s["acc_norm"]}
                    for s in samples]}
print(json.dumps(report))
"""


def run_lmeval(
    python: Path,
    include: Path,
    tasks: list[str],
    model: str,
    model_args: str,
    batch_size: str | int,
    work: Path,
    timeout: float = 3600,
    env: dict | None = None,
    builtin_tasks: bool = True,
) -> dict:
    """Run lm-eval on `tasks` in its venv: {"import_s", "evaluate_s", "tasks": {task: {"acc",
    "acc_norm", "samples"}}}, or RuntimeError with the tail of its output.

    `builtin_tasks=False` skips indexing lm-eval's own ~14,000 task YAMLs (`include_defaults`),
    which the local tasks do not need (a user's `--include_path` run indexes them: the benchmark
    keeps that cost)."""
    log = work / "lmeval.log"
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(work / "hf_datasets"),
        "TOKENIZERS_PARALLELISM": "false",
        **(env or {}),
    }
    with open(log, "w+") as output:
        cmd = [
            str(python),
            "-c",
            RUN_SCRIPT,
            str(include),
            ",".join(tasks),
            model,
            model_args,
            str(batch_size),
            "1" if builtin_tasks else "0",
        ]
        done = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=output, text=True, timeout=timeout, env=environment
        )
        if done.returncode != 0:
            output.seek(0)
            raise RuntimeError(f"lm-eval exited {done.returncode}:\n{output.read()[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
