"""Keep third-party progress bars and advisory warnings off ocx's console.

Hugging Face libraries draw their own tqdm bars ("Loading weights", "Writing model shards",
dataset downloads) and log advisory warnings; between ocx's rich live display and tables they
break lines and repeat on every checkpoint. ocx shows its own progress, so theirs are switched
off. Each library reads its switch when it is imported, so the environment variables are set
first (`setdefault`: a user's own choice, such as HF_HUB_DISABLE_PROGRESS_BARS=0, wins), and the
libraries already imported are told directly. Nothing is imported here that was not already.
"""

from __future__ import annotations

import os
import sys
import warnings

_SWITCHES = (
    (
        "HF_HUB_DISABLE_PROGRESS_BARS",
        "1",
    ),  # huggingface_hub, and transformers, which follows it at import
    ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"),
    ("TRANSFORMERS_VERBOSITY", "error"),
    ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
    ("DATASETS_VERBOSITY", "error"),
)

_LIBRARIES = r"(torch|transformers|deepspeed|datasets|huggingface_hub|accelerate|peft)(\.|$)"
"""Whose deprecation notices are hidden: they address the library's callers, not ocx's users."""


def quiet_third_party() -> None:
    """Switch off Hugging Face progress bars and advisory logging, now and for later imports, and
    hide the deprecation warnings third-party libraries raise (ocx's own warnings still show)."""
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=_LIBRARIES)
    for name, value in _SWITCHES:
        os.environ.setdefault(name, value)
    bars_off = os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"  # else the user asked for the bars
    if "huggingface_hub" in sys.modules and bars_off:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        if bars_off:
            transformers_logging.disable_progress_bar()
        if os.environ["TRANSFORMERS_VERBOSITY"] == "error":
            transformers_logging.set_verbosity_error()
    if "datasets" in sys.modules:
        import datasets

        if os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1":
            datasets.disable_progress_bars()
        if os.environ["DATASETS_VERBOSITY"] == "error":
            datasets.logging.set_verbosity_error()
