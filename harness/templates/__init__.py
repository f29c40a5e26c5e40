"""Chat templates: one Jinja2 file per model type, the single source of truth.

Each file in `jinja/` is a plain Hugging Face `chat_template` (it renders the prompt text from
`messages`, `add_generation_prompt`, `bos_token` and an optional `condition`) that also
declares its metadata as top-level ``{% set %}`` statements: `aliases`, `eot_token`,
`default_condition`, `context_length`, `base_vocabulary`, `added_tokens`. ocx reads those
through Jinja's module interface, so nothing about a template is written twice.

The same file serves training (token IDs and per-token weights, see `encode`), inference
(prompt ending in the assistant header of a condition) and export (`export.py`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ocx.harness.errors import InputError, InputProblem
from ocx.harness.suggest import unknown_name


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    # The same settings transformers uses for chat templates, so both render identically.
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = _raise_exception
    return env


class UnknownTemplateError(KeyError):
    def __init__(self, name: str, known: list[str]):
        super().__init__(unknown_name("model type", name, sorted(known)))

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return self.args[0]


@cache
def _compiled(source: str) -> jinja2.Template:
    return _environment().from_string(source)


@dataclass(frozen=True)
class ChatTemplate:
    """A model type's chat template and the metadata its Jinja file declares."""

    name: str
    source: str
    aliases: tuple[str, ...]
    eot_token: str
    default_condition: str
    context_length: int
    base_vocabulary: str
    added_tokens: dict[str, int]

    @classmethod
    def from_source(cls, name: str, source: str) -> ChatTemplate:
        module = _compiled(source).make_module({"messages": []})
        return cls(
            name=name,
            source=source,
            aliases=tuple(module.aliases),
            eot_token=module.eot_token,
            default_condition=module.default_condition,
            context_length=int(module.context_length),
            base_vocabulary=module.base_vocabulary,
            added_tokens=dict(module.added_tokens),
        )

    @property
    def sha256(self) -> str:
        """Hash of the template file; recorded with every checkpoint and result."""
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def render(
        self,
        messages: list[dict],
        *,
        add_generation_prompt: bool = False,
        condition: str | None = None,
        bos_token: str | None = None,
        **variables,
    ) -> str:
        """The prompt text, exactly as `tokenizer.apply_chat_template(..., tokenize=False)`."""
        context = dict(
            variables,
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
        )
        if condition is not None:
            context["condition"] = condition
        return _compiled(self.source).render(context)


@cache
def _load_all() -> dict[str, ChatTemplate]:
    folder = resources.files("ocx.harness.templates") / "jinja"
    templates = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".jinja"):
            name = entry.name.removesuffix(".jinja")
            templates[name] = ChatTemplate.from_source(name, entry.read_text(encoding="utf-8"))
    return templates


def template_names() -> list[str]:
    return list(_load_all())


def _aliases() -> dict[str, str]:
    return {alias: t.name for t in _load_all().values() for alias in t.aliases}


def resolve_model_type(name: str) -> str:
    """Canonical model type for a name or alias (e.g. openchat_v3.2_mistral -> openchat_3.5)."""
    if name in _load_all():
        return name
    aliases = _aliases()
    if name in aliases:
        return aliases[name]
    raise UnknownTemplateError(name, template_names() + list(aliases))


def resolve_model_type_option(
    name: str, *, file: str = "command line", field: str = "--model-type"
) -> str:
    """`resolve_model_type` for a name the user typed: an unknown one is an InputError naming
    where it came from (`--model-type` on the command line by default), with "did you mean".

    Every command resolves `--model-type` here, so each says the same thing about a typo.
    """
    try:
        return resolve_model_type(name)
    except UnknownTemplateError as exc:
        raise InputError(InputProblem(file, None, field, str(exc))) from None


def get_template(name: str) -> ChatTemplate:
    """The template of a model type or one of its aliases."""
    return _load_all()[resolve_model_type(name)]
