"""The `ocx eval --scoring loglikelihood` parts of an eval session: what the options must satisfy
(checked with every other option, before any model loads) and the run itself."""

from __future__ import annotations

from ocx.harness.errors import InputProblem


def check_options(opts, suites: list) -> list[InputProblem]:
    """Every reason this log-likelihood run cannot go ahead: a suite without the multiple-choice
    surface, --num-fewshot above a suite's demonstrations, options that only generation uses."""
    from ocx.benchmarks.base import SuiteHooks

    problems: list[InputProblem] = []
    if opts.scoring != "loglikelihood":
        if opts.num_fewshot is not None:
            problems.append(
                InputProblem(
                    "command line", None, "--num-fewshot", "only with --scoring loglikelihood"
                )
            )
        if not opts.chat:
            problems.append(
                InputProblem("command line", None, "--no-chat", "only with --scoring loglikelihood")
            )
        if opts.tokenizer is not None:
            problems.append(
                InputProblem(
                    "command line", None, "--tokenizer", "only with --scoring loglikelihood"
                )
            )
        for suite in suites:  # refused before the output folder is locked or a model loads
            if SuiteHooks.of(suite).loglikelihood_only:
                problems.append(
                    InputProblem(
                        "--sets",
                        None,
                        suite.name,
                        f"{suite.name} is scored by log-likelihood only (as lm-eval): "
                        "add --scoring loglikelihood",
                    )
                )
        return problems
    k = opts.num_fewshot or 0
    for suite in suites:
        if not SuiteHooks.of(suite).supports_loglikelihood():
            problems.append(
                InputProblem(
                    "--sets",
                    None,
                    suite.name,
                    f"{suite.name} is not a multiple-choice suite: it cannot be scored with "
                    "--scoring loglikelihood (drop it, or use --scoring generate)",
                )
            )
        elif k > suite.max_fewshot:
            problems.append(
                InputProblem(
                    "--num-fewshot",
                    None,
                    suite.name,
                    f"{suite.name} has {suite.max_fewshot} demonstrations per sample, "
                    f"not {k}" + (" (it is zero-shot)" if suite.max_fewshot == 0 else ""),
                )
            )
    sampling = "--max-tokens/--temperature/--top-p/--seed"
    for flag, given in (("--samples", opts.samples != 1), (sampling, bool(opts.overrides))):
        if given:
            problems.append(
                InputProblem(
                    "command line",
                    None,
                    flag,
                    "sets how answers are generated; --scoring loglikelihood generates nothing",
                )
            )
    if opts.matcher != "ocx":
        problems.append(
            InputProblem(
                "command line",
                None,
                "--matcher",
                "matches generated answers; --scoring loglikelihood generates nothing",
            )
        )
    problems += _tokenizer_problems(opts)
    if not opts.chat and (opts.condition is not None or opts.system_prompt is not None):
        problems.append(
            InputProblem(
                "command line",
                None,
                "--no-chat",
                "plain prompts have no chat template: drop --condition/--system-prompt",
            )
        )
    return problems


def _tokenizer_problems(opts) -> list[InputProblem]:
    """A local engine brings the checkpoint's tokenizer; an endpoint needs --tokenizer (and, for
    chat prompts, --model-type: the template the IDs are built with)."""
    if _is_local(opts.engine):
        if opts.tokenizer is not None:
            return [
                InputProblem(
                    "command line",
                    None,
                    "--tokenizer",
                    "only with --endpoint: --model brings its own",
                )
            ]
        return []
    if opts.tokenizer is None:
        return [
            InputProblem(
                "command line",
                None,
                "--tokenizer",
                "--scoring loglikelihood on an --endpoint sends token IDs: pass the served model's "
                "tokenizer (its checkpoint folder or tokenizer.model)",
            )
        ]
    problems = []
    if not opts.tokenizer.exists():
        problems.append(
            InputProblem(str(opts.tokenizer), None, "--tokenizer", "no such file or folder")
        )
    if opts.chat and opts.model_type is None:
        problems.append(
            InputProblem(
                "command line",
                None,
                "--model-type",
                "chat prompts on an --endpoint are built with ocx's template: pass --model-type "
                "(or --no-chat)",
            )
        )
    return problems


def encoder_for(opts, backend):
    from ocx.harness.loglikelihood_encode import PairEncoder

    local = getattr(
        backend, "local", None
    )  # EngineBackend: the checkpoint's template and exact tokenizer
    if local is not None:
        tokenizer, template = local.tokenizer, local.template
    else:  # an endpoint: --tokenizer, and --model-type's template
        from ocx.harness.templates import get_template, resolve_model_type
        from ocx.harness.tokenizers import load_tokenizer

        template = get_template(resolve_model_type(opts.model_type)) if opts.model_type else None
        tokenizer = load_tokenizer(opts.tokenizer, template.added_tokens if template else None)
    return PairEncoder(
        tokenizer,
        chat=opts.chat,
        template=template,
        condition=opts.condition,
        system_prompt=opts.system_prompt,
    )


def run_loglikelihood(opts, backend, cache, progress, suites: list, data):
    from ocx.harness.loglikelihood_runner import LoglikelihoodRunner, check_backend

    check_backend(backend)
    runner = LoglikelihoodRunner(
        backend,
        cache,
        encoder_for(opts, backend),
        num_fewshot=opts.num_fewshot or 0,
        progress=progress,
    )
    return runner.run(suites, data, limit=opts.limit)


def _is_local(engine: str) -> bool:
    from ocx.harness.engines import get_engine

    try:
        return get_engine(engine).local
    except KeyError:
        return True  # an unknown engine is reported on its own
