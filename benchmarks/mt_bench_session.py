"""What `ocx eval` needs to run MT-Bench beside the single-prompt suites.

The suite's :class:`~ocx.benchmarks.judged.JudgedSuite` methods call these: `ocx eval`
validates the judge options with :func:`check_options` (before any model work) and then runs
:func:`run_for_eval` with the backend, cache and progress it already has; the summary and
records it returns go into the same results.json and samples.jsonl as every other suite.
"""

from __future__ import annotations

from ocx.harness.errors import InputError, InputProblem


def check_options(
    judge_endpoint: str | None, judge_model: str | None, mt_bench_data: str | None
) -> list[InputProblem]:
    """Problems with the MT-Bench options (all at once), for a run that includes mt_bench."""
    from ocx.benchmarks.mt_bench_data import load_mt_bench

    problems = []
    if not judge_endpoint:
        problems.append(
            InputProblem("command line", None, "--judge-endpoint", "required for mt_bench")
        )
    if not judge_model:
        problems.append(
            InputProblem("command line", None, "--judge-model", "required for mt_bench")
        )
    if not mt_bench_data:
        problems.append(
            InputProblem(
                "command line",
                None,
                "--mt-bench-data",
                "required for mt_bench: a folder in FastChat's llm_judge/data layout "
                "or hf:owner/name",
            )
        )
    else:
        try:
            load_mt_bench(mt_bench_data)
        except InputError as exc:
            problems += exc.problems
    return problems


def run_for_eval(
    backend,
    cache,
    *,
    judge_endpoint: str,
    judge_model: str,
    mt_bench_data: str,
    judge_api_key: str | None = None,
    condition: str | None = None,
    overrides: dict | None = None,
    limit: int | None = None,
    progress=None,
    concurrency: int = 16,
):
    """Run MT-Bench for `ocx eval`; returns (summary, records) to merge into the EvalRun."""
    from ocx.benchmarks.mt_bench import SUITE
    from ocx.benchmarks.mt_bench_data import load_mt_bench
    from ocx.harness.judge import make_judge_backend

    data = load_mt_bench(mt_bench_data)
    judge = make_judge_backend(
        judge_endpoint, judge_model, api_key=judge_api_key, concurrency=concurrency
    )
    try:
        return SUITE.run(
            data,
            backend,
            judge,
            cache,
            condition=condition,
            overrides=overrides,
            limit=limit,
            progress=progress,
        )
    finally:
        judge.close()
