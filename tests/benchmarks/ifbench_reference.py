"""Run by test_ifbench_parity.py in a separate process: IFBench's own, unmodified evaluation code
(``ifbench.evaluation_lib``, as ``ifbench.run_eval`` drives it) on a responses file.

argv: IFBench_test.jsonl, responses JSONL ({"prompt", "response"}), output JSON. The output holds,
per prompt, the strict and loose ``follow_instruction_list`` (or the error the package raised)
and ``generate_report``'s main metrics over the prompts it could score.
"""

import contextlib
import io
import json
import sys

import ifbench.evaluation_lib as evaluation_lib


def main(inputs_path: str, responses_path: str, out_path: str) -> None:
    inputs = evaluation_lib.read_prompt_list(inputs_path)
    prompt_to_response = evaluation_lib.read_prompt_to_response_dict(responses_path)
    result = {"per_prompt": {}, "metrics": {}}
    scored = {}
    # Strict first, then loose, as run_eval.py does (strict drops None kwargs in place; loose
    # relies on it).
    for func, mode in [
        (evaluation_lib.test_instruction_following_strict, "strict"),
        (evaluation_lib.test_instruction_following_loose, "loose"),
    ]:
        outputs = []
        for inp in inputs:
            entry = result["per_prompt"].setdefault(inp.key, {})
            try:
                output = func(inp, prompt_to_response)
            except LookupError as exc:  # NLTK data missing on this machine
                entry[mode] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[1:2]}"}
                continue
            entry[mode] = output.follow_instruction_list
            outputs.append(output)
        scored[mode] = outputs
    complete = [
        k
        for k, v in result["per_prompt"].items()
        if all(isinstance(v[m], list) for m in ("strict", "loose"))
    ]
    for mode in ("strict", "loose"):
        kept = [
            o
            for inp, o in zip(
                [i for i in inputs if isinstance(result["per_prompt"][i.key][mode], list)],
                scored[mode],
            )
            if inp.key in complete
        ]
        with contextlib.redirect_stdout(io.StringIO()):
            report = evaluation_lib.generate_report(kept, mode)
        result["metrics"][f"{mode}:prompt-level"] = report[f"{mode}:prompt-level"]
        result["metrics"][f"{mode}:instruction-level"] = report[f"{mode}:instruction-level"]
    result["complete"] = complete
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
