"""`ocx` keeps third-party progress bars and deprecation notices off its console, and leaves a
user's explicit choice alone."""

from __future__ import annotations

import warnings

from ocx.harness.quiet import quiet_third_party

SWITCHES = (
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "HF_DATASETS_DISABLE_PROGRESS_BARS",
    "TRANSFORMERS_VERBOSITY",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS",
    "DATASETS_VERBOSITY",
)


def _raise(module: str) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party()
        warnings.warn_explicit(
            "`past_key_values` is deprecated", FutureWarning, "x.py", 1, module=module
        )
    return caught


def test_deprecation_warnings_from_inside_libraries_are_hidden_and_ocx_own_are_not(monkeypatch):
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    assert _raise("torch.nn.modules.module") == [] and _raise("transformers.modeling_utils") == []
    assert (
        len(_raise("ocx.harness.runner")) == 1
        and len(_raise("torchvision_like_but_not_torch")) == 1
    )


def test_hugging_face_bars_are_switched_off_unless_the_user_switched_them_on(monkeypatch):
    import os

    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    quiet_third_party()
    assert (
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
        and os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    )
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    quiet_third_party()
    assert (
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"
        and os.environ["TRANSFORMERS_VERBOSITY"] == "info"
    )
