"""The chat-completions request schema and OpenAI-shaped errors.

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

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError,
                      field_validator)

MAX_N = 16
MAX_STOPS = 4
MAX_STOP_CHARS = 256
"""Per stop string: the streaming text layer re-checks held-back prefixes on every token."""
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1
"""OpenAI's and vLLM's seed range (int64); choice i uses `seed + i`, wrapped into the range."""

# Strict, yet accepts JSON integers (1 is a valid temperature); NaN and infinities are refused.
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]


class ApiError(Exception):
    """An error answered in OpenAI's shape with an HTTP status."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


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
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions body plus OpenChat's `condition`."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    condition: StrictStr | None = None
    """The role-header condition ("GPT4 Correct", "Math Correct", "Code"); None: the model
    type's inference condition; "": no condition."""
    temperature: Annotated[Number, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[Number, Field(gt=0, le=1)] = 1.0
    n: Annotated[StrictInt, Field(ge=1, le=MAX_N)] = 1
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
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
    # Accepted so that clients sending the defaults work; anything else is refused below.
    logprobs: StrictBool | None = None
    logit_bias: dict[str, Number] | None = None
    tools: list | None = None
    response_format: dict | None = None

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

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def check_supported(self) -> None:
        """Refuse features this server does not implement instead of silently ignoring them."""
        if self.logprobs:
            raise ApiError(400, "logprobs are not supported by this server", param="logprobs")
        if self.logit_bias:
            raise ApiError(400, "logit_bias is not supported by this server", param="logit_bias")
        if self.tools:
            raise ApiError(400, "tools are not supported by this server", param="tools")
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise ApiError(400, "only response_format {'type': 'text'} is supported", param="response_format")


def validation_error(errors: list[dict]) -> ApiError:
    """A 400 naming the first invalid field, from pydantic's/FastAPI's error list."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        return _invalid_json(str(first.get("msg", "")))
    # Union members add their type name to the location (e.g. messages.0.content.str); drop them.
    loc = [part for part in loc if part in _FIELDS or part.isdigit()]
    param = ".".join(loc) or None
    message = f"{param}: {first.get('msg', 'invalid value')}" if param else str(first.get("msg", "invalid request"))
    return ApiError(400, message, param=param, code="invalid_value" if param else "invalid_request")


def _invalid_json(detail: str) -> ApiError:
    if any(sign in detail for sign in ("surrogate", "hex escape", "unicode code point")):
        # JSON's grammar allows "\\ud800", but a lone surrogate is not a character: no tokenizer
        # can encode it, so it is refused here rather than failing later.
        return ApiError(400, "the request body holds a lone UTF-16 surrogate or a malformed \\u escape, "
                             f"which is not valid Unicode ({detail})", code="invalid_unicode")
    return ApiError(400, f"the request body is not valid JSON ({detail})", code="invalid_json")


def parse_request(body: bytes) -> ChatCompletionRequest:
    """Validate a raw JSON body (bytes, so invalid UTF-8 and lone surrogates are caught); raises ApiError."""
    try:
        return ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(list(exc.errors(include_url=False))) from None


_FIELDS = {
    *ChatCompletionRequest.model_fields, *ChatMessage.model_fields, *TextPart.model_fields,
    *StreamOptions.model_fields,
}
