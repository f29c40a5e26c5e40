"""Hugging Face (transformers) model folders: ocx metadata, tiny test models, loading."""
