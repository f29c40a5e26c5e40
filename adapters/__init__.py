"""ocx.adapters: heavy backends (transformers, DeepSpeed, vLLM, the server) behind narrow
interfaces. Each imports its GPU/ML library inside the functions that need it."""
