"""Recipe YAML is plain data: tags refused, alias expansion bounded, keys written once."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from ocx.harness.errors import InputError
from ocx.recipes.yaml_lines import MAX_RECIPE_BYTES, MAX_VALUES, load_with_lines, read_recipe_text


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def refused(text: str) -> str:
    with pytest.raises(InputError) as err:
        load_with_lines(text, "r.yaml")
    assert len(err.value.problems) == 1
    return str(err.value.problems[0])


def test_a_billion_laughs_file_is_refused_quickly_and_in_little_memory():
    flat = (
        "values: [" + ", ".join(["lol"] * (MAX_VALUES - 10)) + "]\n"
    )  # as many values, no aliases
    start = time.perf_counter()
    load_with_lines(flat, "flat.yaml")
    flat_seconds = time.perf_counter() - start
    tracemalloc.start()
    start = time.perf_counter()
    message = refused(billion_laughs())
    laughs_seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert message.startswith("r.yaml:") and f"more than {MAX_VALUES:,} values" in message
    # 9^10 values if expanded; refused after the same work as a flat file of MAX_VALUES values.
    assert laughs_seconds < 5 * flat_seconds + 0.05, (laughs_seconds, flat_seconds)
    assert peak < 30 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize(
    "text, line",
    [
        ("name: !!python/object/apply:os.system ['echo pwned']\n", 1),
        ("name: x\nmodel: !!python/name:os.system\n", 2),
        ("name: !!str 5\n", 1),  # even the harmless standard tags: recipes never need one
        ("output: !include other.yaml\n", 1),
        ("data:\n  - !!map {path: a}\n", 2),
    ],
)
def test_every_explicit_tag_is_refused_with_its_line(text, line):
    message = refused(text)
    assert message.startswith(f"r.yaml:{line}: YAML tag ") and "refused" in message


def test_a_recursive_alias_is_refused_not_a_recursion_error():
    assert "nested deeper than" in refused("a: &x [*x]\n")


def test_anchors_aliases_and_merge_keys_within_bounds_work_and_keep_lines():
    text = "defaults: &d {epochs: 2, lr: 0.001}\ntrain:\n  <<: *d\n  lr: 0.002\n"
    data, lines = load_with_lines(text, "r.yaml")
    assert data["train"] == {"epochs": 2, "lr": 0.002}
    assert lines[("train", "lr")] == 4 and lines[("train", "epochs")] == 1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a: 1\na: 2\n", "r.yaml:2: a: duplicate key 'a' (first on line 1)"),
        ("t:\n  x: 1\n  y: 2\n  x: 3\n", "r.yaml:4: t.x: duplicate key 'x' (first on line 2)"),
        ("? [a, b]\n: 1\n", "r.yaml:1: a key must be a plain name"),
        ("a: [1, 2\n", "r.yaml:2: invalid YAML"),
        ("---\na: 1\n---\nb: 2\n", "r.yaml:3: invalid YAML"),
    ],
)
def test_duplicate_or_complex_keys_and_broken_yaml_name_their_line(text, expected):
    message = refused(text)
    assert message.startswith(expected) and "\n" not in message, message


def test_an_oversized_or_non_utf8_recipe_file_is_refused_without_reading_it_all(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (MAX_RECIPE_BYTES + 10) + b"\n")
    with pytest.raises(InputError, match="limit for a recipe"):
        read_recipe_text(big)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"name: ok\ndescription: caf\xe9\n")
    with pytest.raises(InputError, match=r"latin1.yaml:2: not valid UTF-8"):
        read_recipe_text(latin1)
