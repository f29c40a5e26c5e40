"""`ocx serve`: an OpenAI-compatible chat server with OpenChat conditions.

Layers, each small and replaceable:

- `protocol`: the request schema and OpenAI-shaped errors.
- `engine`: the `Engine` Protocol every backend implements (prompt token IDs in, token IDs out).
- `hf_engine` / `batching`: transformers on CPU with dynamic batching in a worker thread.
- `vllm_engine`: vLLM's async engine (imported only when chosen).
- `generation`: incremental detokenization, stop strings and EOT handling, shared by all engines.
- `app`: `create_app(engine, settings)`, the FastAPI application (no module-level state).
- `guard`: ASGI middleware checking the key, body size and body read time before the app.
- `server`: the uvicorn config, with a deadline on request headers (slow clients).
- `model`: resolves `--model` to a checkpoint folder, its model type, template and tokenizer.

Nothing here is imported by `ocx --help`; `ocx.cli.serve` imports it when the command runs.
"""
