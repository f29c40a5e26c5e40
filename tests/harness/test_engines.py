"""One inference layer: the engine registry, the checkpoint spec and the sampling type that
`ocx eval`, `ocx serve` and recipes share."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ocx.harness.engines import EngineOptions, check_engine, get_engine
from ocx.harness.sampling import Sampling
from tests.cli import invoke_ocx

PLUGINS = Path(__file__).parent / "engine_plugins"


@pytest.fixture
def mistral_folder(tmp_path, mistral_tokenizer_file) -> Path:
    """A Mistral-7B-style checkpoint folder without weights: 32,768 positions in its config,
    OpenChat 3.5's template (trained on 8,192) in its ocx.json."""
    folder = tmp_path / "mistral-style"
    folder.mkdir()
    shutil.copy(mistral_tokenizer_file, folder / "tokenizer.model")
    (folder / "config.json").write_text(
        json.dumps({"model_type": "mistral", "max_position_embeddings": 32768})
    )
    (folder / "ocx.json").write_text(json.dumps({"model_type": "openchat_3.5"}))
    return folder


def test_importing_the_registry_and_naming_engines_loads_no_gpu_library():
    code = (
        "import sys; from ocx.harness.engines import engines, get_engine, check_engine, "
        "EngineOptions; names = sorted(engines()); [get_engine(n) for n in names]; "
        "check_engine('vllm', EngineOptions()); "
        "print(names, [m for m in ('torch', 'vllm', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['openai', 'transformers', 'vllm'] []"


def test_an_unknown_engine_is_refused_with_did_you_mean():
    problems = check_engine("vlm", EngineOptions())
    assert len(problems) == 1 and "did you mean 'vllm'" in problems[0].message
    with pytest.raises(KeyError, match="known: openai, transformers, vllm"):
        get_engine("tensorrt")


@pytest.mark.parametrize("flag", ["tensor_parallel_size", "data_parallel_size"])
def test_parallel_sizes_above_one_are_refused_for_the_transformers_engine(flag):
    problems = check_engine("transformers", EngineOptions(**{flag: 2}))
    assert [p.field for p in problems] == [f"--{flag.replace('_', '-')}"]
    assert "--engine vllm" in problems[0].message
    assert check_engine("transformers", EngineOptions()) == []


def test_ocx_eval_with_tensor_parallelism_on_transformers_exits_2_naming_the_flag(
    monkeypatch, capsys, mistral_folder
):
    code, _, err = invoke_ocx(
        monkeypatch,
        capsys,
        "eval",
        "--model",
        mistral_folder,
        "--sets",
        "arithmetic",
        "--tensor-parallel-size",
        "2",
        "--engine",
        "transformers",
        "--no-cache",
    )
    assert code == 2, err
    assert "--tensor-parallel-size" in err and "Traceback" not in err


def test_eval_and_serve_agree_on_the_context_length_of_a_mistral_style_checkpoint(mistral_folder):
    from ocx.adapters.serve.model import load_served_model
    from ocx.harness.backends import Request
    from ocx.harness.backends.local import LocalModel

    served = load_served_model(str(mistral_folder))
    local = LocalModel(mistral_folder)
    assert (
        local.max_positions() == served.context_length == 8192
    )  # the template's, not the config's 32,768
    long_prompt = Request(0, ({"role": "user", "content": "x" + " the" * 20000},), None, Sampling())
    ids = local.prompt_ids(long_prompt)
    assert len(ids) == 8191  # the end is kept, with room for one new token
    assert local.tokenizer.decode(ids).endswith("GPT4 Correct Assistant:")


def test_the_vllm_engine_gets_the_parallel_sizes_ocx_eval_was_given(mistral_folder):
    from ocx.cli.eval import _validate, eval_command
    from ocx.harness.eval_session import build_backend

    ctx = eval_command.make_context(
        "eval",
        [
            "--model",
            str(mistral_folder),
            "--engine",
            "vllm",
            "--tensor-parallel-size",
            "4",
            "--data-parallel-size",
            "2",
            "--engine-arg",
            "gpu_memory_utilization=0.5",
        ],
    )
    backend = build_backend(_validate(ctx.params), "openchat_3.5")
    args = backend.engine.engine_arguments()  # built without importing vllm
    assert (args["tensor_parallel_size"], args["data_parallel_size"]) == (4, 2)
    assert args["gpu_memory_utilization"] == 0.5 and args["max_model_len"] == 8192
    assert args["skip_tokenizer_init"] is True and args["model"] == str(mistral_folder.resolve())


def test_the_vllm_engine_gets_the_parallel_sizes_ocx_serve_was_given(
    monkeypatch, capsys, mistral_folder
):
    import ocx.cli.serve as serve_cli
    import ocx.harness.engines as engines

    built = {}
    monkeypatch.setattr(engines, "vllm_installed", lambda: True)
    monkeypatch.setattr(
        serve_cli, "_run", lambda backend, *a, **k: built.setdefault("engine", backend)
    )
    sizes = ["--tensor-parallel-size", "2", "--data-parallel-size", "3"]
    code, _, err = invoke_ocx(
        monkeypatch, capsys, "serve", "--model", mistral_folder, "--engine", "vllm", *sizes
    )
    assert code == 0, err
    args = built["engine"].engine_arguments()
    assert (args["tensor_parallel_size"], args["data_parallel_size"], args["max_model_len"]) == (
        2,
        3,
        8192,
    )


@pytest.mark.parametrize(
    "config, words",
    [
        ('{"max_position_embeddings": ', "not a JSON config"),
        (b"\xff\xfe{}", "not a JSON config"),
        ("[1, 2]", "not a JSON object"),
        ('{"max_position_embeddings": "lots"}', "must be a positive integer, got 'lots'"),
        ('{"max_position_embeddings": -5}', "must be a positive integer, got -5"),
    ],
)
@pytest.mark.parametrize("command", ["eval", "serve"])
def test_a_corrupt_config_json_is_named_with_exit_2_before_any_output(
    monkeypatch, capsys, mistral_folder, tmp_path, config, words, command
):
    config_file = mistral_folder / "config.json"
    config_file.write_bytes(config if isinstance(config, bytes) else config.encode())
    args = (
        ["--sets", "arithmetic", "--output", tmp_path / "out"]
        if command == "eval"
        else ["--port", "0"]
    )
    code, _, err = invoke_ocx(monkeypatch, capsys, command, "--model", mistral_folder, *args)
    assert code == 2, err
    assert f"{config_file}: " in err and words in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_ocx_serve_refuses_data_parallelism_on_transformers_before_loading(
    monkeypatch, capsys, mistral_folder
):
    engine = ["--engine", "transformers", "--data-parallel-size", "2"]
    code, _, err = invoke_ocx(monkeypatch, capsys, "serve", "--model", mistral_folder, *engine)
    assert code == 2 and "--data-parallel-size" in err and "Traceback" not in err


@pytest.fixture
def echo_engine(monkeypatch):
    """docs/extending.md's engine (engine_plugins/echo_engine.py), registered as "echo"."""
    from ocx.harness.engines import register_engine, unregister_engine

    monkeypatch.syspath_prepend(str(PLUGINS))
    register_engine("echo", "echo_engine:build", summary="fixed answers, for tests")
    yield "echo"
    unregister_engine("echo")


def _eval_echo(monkeypatch, capsys, model, output: Path, limit: int) -> tuple[int, str, str]:
    args = ["--model", model, "--sets", "arithmetic", "--limit", limit, "--output", output]
    return invoke_ocx(monkeypatch, capsys, "eval", "--engine", "echo", *args, "--quiet")


def test_a_registered_engine_runs_ocx_eval_end_to_end(
    monkeypatch, capsys, mistral_folder, tmp_path, echo_engine
):
    """What docs/extending.md describes: one module (echo_engine.py) plus one registry entry."""
    code, _, err = _eval_echo(monkeypatch, capsys, mistral_folder, tmp_path / "out", 4)
    assert code == 0, err
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert document["model"]["kind"] == "echo" and document["engine"] == "echo"
    records = [
        json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()
    ]
    assert [r["response"] for r in records] == ["The answer is 4."] * 4


def test_a_registered_engine_is_what_ocx_serve_runs_with_its_engine_args(
    monkeypatch, capsys, mistral_folder, echo_engine
):
    """The other half of docs/extending.md: the same entry serves `ocx serve --engine echo`."""
    import ocx.cli.serve as serve_cli

    built = {}
    monkeypatch.setattr(serve_cli, "_run", lambda backend, served, *a: built.update(e=backend))
    monkeypatch.setattr("ocx.harness.engines.EngineOptions", _recording(EngineOptions, built))
    args = ["--engine-arg", "max-model-len=4096", "--engine-arg", "enforce_eager=true"]
    code, _, err = invoke_ocx(
        monkeypatch, capsys, "serve", "--model", mistral_folder, "--engine", "echo", *args
    )
    assert code == 0, err
    assert built["e"].name == "echo" and built["e"].tokens[-1] == 32000  # <|end_of_turn|>
    assert built["options"].engine_args == {"max_model_len": 4096, "enforce_eager": True}


def _recording(cls, into: dict):
    def build(**kwargs):
        into["options"] = cls(**kwargs)
        return into["options"]

    return build


def test_the_deprecated_backend_flag_still_works_and_says_it_is_deprecated(
    monkeypatch, capsys, mistral_folder
):
    from ocx.cli.eval import _validate, eval_command

    ctx = eval_command.make_context("eval", ["--model", str(mistral_folder), "--backend", "vllm"])
    assert _validate(ctx.params).engine == "vllm"
    assert "--backend is deprecated" in capsys.readouterr().err


def test_endpoint_implies_the_openai_engine_and_refuses_a_local_one(mistral_folder):
    from ocx.cli.eval import _validate, eval_command
    from ocx.harness.errors import InputError

    ctx = eval_command.make_context(
        "eval", ["--endpoint", "http://a/v1,http://b/v1", "--model-name", "m"]
    )
    opts = _validate(ctx.params)
    assert opts.engine == "openai" and opts.all_endpoints() == ("http://a/v1", "http://b/v1")
    ctx = eval_command.make_context(
        "eval", ["--endpoint", "http://a/v1", "--model-name", "m", "--engine", "vllm"]
    )
    with pytest.raises(InputError, match="--engine"):
        _validate(ctx.params)


def test_sampling_records_keep_their_old_cache_keys_and_name_new_fields_only_when_set():
    assert Sampling().as_dict() == {
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": 2048,
        "seed": None,
        "stop": (),
    }
    assert Sampling(top_k=-1) == Sampling()  # vLLM's "off" is the same setting
    assert Sampling(min_p=0.1).as_dict()["min_p"] == 0.1
    assert Sampling(top_k=5, min_p=0.1).unsupported(frozenset()) == ["top_k", "min_p"]


def test_an_engine_that_cannot_honour_top_k_fails_those_eval_requests_not_others(
    mistral_folder, echo_engine
):
    from ocx.harness.backends import Request
    from ocx.harness.checkpoint import resolve_checkpoint_spec
    from ocx.harness.engines import build_backend

    backend = build_backend("echo", resolve_checkpoint_spec(mistral_folder))
    messages = ({"role": "user", "content": "2+2?"},)
    answers, errors = {}, {}
    backend.generate(
        [Request(0, messages, None, Sampling(top_k=5)), Request(1, messages, None, Sampling())],
        answers.__setitem__,
        errors.__setitem__,
    )
    backend.close()
    assert answers == {1: "The answer is 4."}
    assert "does not support top_k" in str(errors[0])


def test_a_hub_id_resolves_to_the_same_checkpoint_for_eval_and_serve(
    monkeypatch, capsys, mistral_folder, tmp_path, echo_engine
):
    """`--model org/name` from the offline Hugging Face cache: one resolution for both commands."""
    import huggingface_hub.constants

    from ocx.adapters.serve.model import load_served_model

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--ocx-test--mistral-style"
    shutil.copytree(mistral_folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    served = load_served_model("ocx-test/mistral-style")
    assert served.path == (repo / "snapshots" / commit).resolve() and served.context_length == 8192
    code, _, err = _eval_echo(monkeypatch, capsys, "ocx-test/mistral-style", tmp_path / "out", 2)
    assert code == 0, err
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (
        document["model"]["path"] == str(served.path)
        and document["model_path"] == "ocx-test/mistral-style"
    )
