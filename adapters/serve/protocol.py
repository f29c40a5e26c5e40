"""The chat-completions and completions request schemas and OpenAI-shaped errors.

Validation is strict (a string where a number belongs is a 400, not a silent conversion) and
every failure becomes `{"error": {"message", "type", "param", "code"}}` with the field named in
`param`, the shape the `openai` SDK parses into its exception classes.

Every value the schema accepts must be servable: numbers are bounded where an engine has a
limit (seeds fit a signed 64-bit integer, what `torch.Generator` and vLLM accept), strings are
bounded where the text layer's work grows with their length (stop strings), and the sampler
is written so that any accepted temperature or top_p is numerically safe.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

MAX_N = 16
MAX_LOGPROBS = 20
"""Alternatives per token (vLLM's default `max_logprobs`, OpenAI's top_logprobs limit)."""
MAX_PROMPTS = 1024
"""Prompts in one /v1/completions request (each still counts against --max-pending)."""
MAX_STOPS = 4
MAX_COMPLETION_STOPS = 16
MAX_STOP_CHARS = 256
"""Per stop string: the streaming text layer re-checks held-back prefixes on every token."""
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1
"""OpenAI's and vLLM's seed range (int64); choice i uses `seed + i`, wrapped into the range."""

# Strict, yet accepts JSON integers (1 is a valid temperature); NaN and infinities are refused.
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]


class ApiError(Exception):
    """An error answered in OpenAI's shape with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type,
            param,
            code,
        )

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: StrictStr | list[TextPart]
    name: StrictStr | None = None

    def text(self) -> str:
        return (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class SamplingRequest(BaseModel):
    """The sampling and streaming fields chat completions and completions share."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr
    temperature: Annotated[Number, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[Number, Field(gt=0, le=1)] = 1.0
    n: Annotated[StrictInt, Field(ge=1, le=MAX_N)] = 1
    stop: StrictStr | Annotated[list[StrictStr], Field(max_length=MAX_STOPS)] | None = None
    seed: Annotated[StrictInt, Field(ge=SEED_MIN, le=SEED_MAX)] | None = None
    presence_penalty: Annotated[Number, Field(ge=-2, le=2)] = 0.0
    frequency_penalty: Annotated[Number, Field(ge=-2, le=2)] = 0.0
    # vLLM's extra sampling fields (not OpenAI's). Bounded so every accepted value is numerically
    # safe; an engine that cannot honour one refuses a non-default value with a 400 (chat.prepare).
    top_k: Annotated[StrictInt, Field(ge=-1, le=2**31 - 1)] = 0
    """-1 or 0: every token."""
    min_p: Annotated[Number, Field(ge=0, le=1)] = 0.0
    repetition_penalty: Annotated[Number, Field(ge=0.01, le=10)] = 1.0
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: StrictStr | None = None
    logit_bias: dict[str, Number] | None = None
    """Accepted so that clients sending the default work; anything else is refused."""

    @field_validator("stop")
    @classmethod
    def _non_empty_stops(cls, value):
        stops = [value] if isinstance(value, str) else (value or [])
        if any(s == "" for s in stops):
            raise ValueError("stop strings must not be empty")
        if any(len(s) > MAX_STOP_CHARS for s in stops):
            raise ValueError(f"stop strings must be at most {MAX_STOP_CHARS} characters")
        return value

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(SamplingRequest):
    """OpenAI's chat-completions body plus OpenChat's `condition`."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    condition: StrictStr | None = None
    """The role-header condition ("GPT4 Correct", "Math Correct", "Code"); None: the model
    type's inference condition; "": no condition."""
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=MAX_LOGPROBS)] | None = None
    """Alternatives per generated token (with `logprobs: true`)."""
    # Accepted so that clients sending the defaults work; anything else is refused below.
    tools: list | None = None
    response_format: dict | None = None

    def requested_max_tokens(self) -> int | None:
        return (
            self.max_completion_tokens
            if self.max_completion_tokens is not None
            else self.max_tokens
        )

    def logprob_alternatives(self) -> int | None:
        """`Sampling.logprobs`: None without `logprobs: true`, else `top_logprobs` (default 0)."""
        return (self.top_logprobs or 0) if self.logprobs else None

    def check_supported(self) -> None:
        """Refuse features this server does not implement instead of silently ignoring them."""
        if self.top_logprobs and not self.logprobs:
            raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
        if self.logit_bias:
            raise ApiError(400, "logit_bias is not supported by this server", param="logit_bias")
        if self.tools:
            raise ApiError(400, "tools are not supported by this server", param="tools")
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise ApiError(
                400, "only response_format {'type': 'text'} is supported", param="response_format"
            )


def _is_id(value) -> bool:
    return type(value) is int  # JSON true/false are not token IDs


def _check_prompt(value):
    """`prompt`'s four shapes; anything else (mixed lists, negative IDs) is named precisely."""
    shapes = "a string, a list of token IDs, a list of strings or a list of token-ID lists"
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ValueError(f"prompt must be {shapes}")
    if not value:
        raise ValueError("prompt must not be empty")
    if len(value) > MAX_PROMPTS and not all(_is_id(v) for v in value):
        raise ValueError(f"at most {MAX_PROMPTS} prompts per request")
    kinds = {
        "id"
        if _is_id(v)
        else "str"
        if isinstance(v, str)
        else "ids"
        if isinstance(v, list)
        else "?"
        for v in value
    }
    if len(kinds) != 1 or "?" in kinds:
        raise ValueError(f"prompt must be {shapes}, not a mixed list")
    if "ids" in kinds:
        for i, ids in enumerate(value):
            if not all(_is_id(t) for t in ids):
                raise ValueError(f"prompt {i} must hold token IDs (integers) only")
    return value


class CompletionRequest(SamplingRequest):
    """The legacy `/v1/completions` body, as OpenAI defines it and vLLM serves it."""

    prompt: StrictStr | list[StrictInt] | list[StrictStr] | list[list[StrictInt]]
    stop: StrictStr | Annotated[list[StrictStr], Field(max_length=MAX_COMPLETION_STOPS)] | None = (
        None
    )
    """More than chat's 4: lm-eval's `until` lists plus the end of text often exceed it (vLLM has
    no cap)."""
    echo: StrictBool = False
    """Return the prompt (and with `logprobs` its tokens' log-probabilities) before the answer."""
    logprobs: Annotated[StrictInt, Field(ge=0, le=MAX_LOGPROBS)] | None = None
    """Alternatives per token; 0 still reports each token's own log-probability."""
    max_tokens: Annotated[StrictInt, Field(ge=0)] | None = 16
    """OpenAI's default is 16; 0 only with `echo` (score the prompt, generate nothing)."""
    best_of: Annotated[StrictInt, Field(ge=1, le=MAX_N)] | None = None
    suffix: StrictStr | None = None
    add_special_tokens: StrictBool = True
    """vLLM's: a text prompt starts with the tokenizer's BOS token."""

    _prompt_shape = field_validator("prompt", mode="before")(
        classmethod(lambda cls, v: _check_prompt(v))
    )

    def prompt_list(self) -> list:
        """The prompts as a list: strings or token-ID lists."""
        if isinstance(self.prompt, str) or (self.prompt and _is_id(self.prompt[0])):
            return [self.prompt]
        return list(self.prompt)

    def check_supported(self) -> None:
        if self.max_tokens == 0 and not self.echo:
            raise ApiError(
                400,
                "max_tokens 0 generates nothing: it needs echo: true (to score the prompt)",
                param="max_tokens",
            )
        if self.suffix:
            raise ApiError(400, "suffix is not supported by this server", param="suffix")
        if self.best_of is not None and self.best_of != self.n:
            raise ApiError(
                400, "best_of other than n is not supported by this server", param="best_of"
            )
        if self.logit_bias:
            raise ApiError(400, "logit_bias is not supported by this server", param="logit_bias")


class TokenizeRequest(BaseModel):
    """vLLM's `POST /tokenize` body (the text form)."""

    model_config = ConfigDict(extra="ignore")
    model: StrictStr | None = None
    prompt: StrictStr
    add_special_tokens: StrictBool = True


class DetokenizeRequest(BaseModel):
    """vLLM's `POST /detokenize` body."""

    model_config = ConfigDict(extra="ignore")
    model: StrictStr | None = None
    tokens: list[StrictInt]


def validation_error(errors: list[dict]) -> ApiError:
    """A 400 naming the first invalid field, from pydantic's/FastAPI's error list."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        return _invalid_json(str(first.get("msg", "")))
    # Union members add their type name to the location (e.g. messages.0.content.str); drop them.
    loc = [part for part in loc if part in _FIELDS or part.isdigit()]
    param = ".".join(loc) or None
    message = (
        f"{param}: {first.get('msg', 'invalid value')}"
        if param
        else str(first.get("msg", "invalid request"))
    )
    return ApiError(400, message, param=param, code="invalid_value" if param else "invalid_request")


def _invalid_json(detail: str) -> ApiError:
    if any(sign in detail for sign in ("surrogate", "hex escape", "unicode code point")):
        # JSON's grammar allows "\\ud800", but a lone surrogate is not a character: no tokenizer
        # can encode it, so it is refused here rather than failing later.
        return ApiError(
            400,
            "the request body holds a lone UTF-16 surrogate or a malformed \\u escape, "
            f"which is not valid Unicode ({detail})",
            code="invalid_unicode",
        )
    return ApiError(400, f"the request body is not valid JSON ({detail})", code="invalid_json")


def parse_request(body: bytes, schema: type[BaseModel] = ChatCompletionRequest):
    """Validate a raw JSON body (bytes, so invalid UTF-8 and lone surrogates are caught) against
    `schema`; raises ApiError."""
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(list(exc.errors(include_url=False))) from None


_FIELDS = {
    *ChatCompletionRequest.model_fields,
    *CompletionRequest.model_fields,
    *ChatMessage.model_fields,
    *TokenizeRequest.model_fields,
    *DetokenizeRequest.model_fields,
    *TextPart.model_fields,
    *StreamOptions.model_fields,
}
