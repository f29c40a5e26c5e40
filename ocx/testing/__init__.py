"""Test support for ocx and for plugins: a mock OpenAI server and scripted model answers.

Not used at run time by any ocx command; it ships so that a plugin's own tests (a new suite, a
new engine) can use the same tools as ocx's tests:

- `ocx.testing.mock_server`: `MockOpenAIServer(responder, latency=..., fail_first=...)`, an
  OpenAI-compatible chat completions server on 127.0.0.1 (`python -m ocx.testing.mock_server`
  runs one from the shell).
- `ocx.testing.responses`: `realistic_gold_responses(suite, sample)` and
  `wrong_response(suite, sample)`, answers as chat models write them that must score 100% and 0%.
- `ocx.testing.conversations`: deterministic ShareGPT-like C-RLFT conversations
  (`sharegpt_like`, `write_jsonl`) and lengths (`sharegpt_like_lengths`) for data and training
  tests and benchmarks, with no download.
"""
