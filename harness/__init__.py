"""ocx.harness: chat templates, conversation schema, tokenizers, runner, clients, cache, reports."""
