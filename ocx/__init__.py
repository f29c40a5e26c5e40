"""ocx: evaluation-and-harness-centric toolkit for OpenChat-style chat models.

Importing ocx is cheap: no torch, vllm or deepspeed is imported here or by the CLI
until a command that needs them runs.
"""

__version__ = "0.1.0"
