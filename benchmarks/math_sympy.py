"""Symbolic equality of two normalised math answers. Runs inside the sympy worker process only.

A small LaTeX-to-sympy translation covers what MATH answers use (fractions, roots, powers, pi,
infinity, trig and log names, implicit multiplication); anything it cannot parse is "not equal".
"""

from __future__ import annotations

import re


def _replace_braced(s: str, command: str, arity: int, build) -> str:
    """Rewrite ``\\command{a}{b}`` (nested braces allowed) with ``build(a, b)``, innermost last."""
    while True:
        start = s.find(command + "{")
        if start < 0:
            return s
        args, i = [], start + len(command)
        for _ in range(arity):
            if i >= len(s) or s[i] != "{":
                return s
            depth, j = 1, i + 1
            while j < len(s) and depth:
                depth += {"{": 1, "}": -1}.get(s[j], 0)
                j += 1
            if depth:
                return s
            args.append(s[i + 1 : j - 1])
            i = j
        s = s[:start] + build(*args) + s[i:]


def latex_to_sympy_text(s: str) -> str:
    s = re.sub(r"\\sqrt\[([^\]]+)\]\{", r"\\root{\1}{", s)
    s = _replace_braced(s, r"\frac", 2, lambda a, b: f"(({a})/({b}))")
    s = _replace_braced(s, r"\root", 2, lambda n, a: f"(({a})**(1/({n})))")
    s = _replace_braced(s, r"\sqrt", 1, lambda a: f"sqrt({a})")
    for latex, text in [
        (r"\cdot", "*"),
        (r"\times", "*"),
        (r"\div", "/"),
        (r"\pi", "pi"),
        (r"\infty", "oo"),
        (r"\ln", "log"),
        (r"\log", "log"),
        (r"\exp", "exp"),
        (r"\sin", "sin"),
        (r"\cos", "cos"),
        (r"\tan", "tan"),
        (r"\cot", "cot"),
        (r"\sec", "sec"),
        (r"\csc", "csc"),
    ]:
        s = s.replace(latex, text)
    s = s.replace("{", "(").replace("}", ")").replace("^", "**")
    return s


# parse_expr evaluates Python: only arithmetic over names and numbers may reach it (no quotes,
# attribute access, dunders, keywords or subscripts from model output).
_SAFE = re.compile(r"[\w\s+\-*/().,]*")
_UNSAFE = re.compile(r"__|\.\s*[A-Za-z_]|\b(?:lambda|import|exec|eval|open)\b")


def _parse(s: str):
    from sympy.parsing import sympy_parser as sp

    text = latex_to_sympy_text(s)
    if not _SAFE.fullmatch(text) or _UNSAFE.search(text):
        raise ValueError(f"refusing to evaluate {text!r}")
    transformations = sp.standard_transformations + (
        sp.implicit_multiplication_application,
        sp.convert_xor,
    )
    return sp.parse_expr(text, transformations=transformations)


def sympy_equal(a: str, b: str) -> bool:
    """True when the two answers are symbolically or numerically (1e-9 relative) equal."""
    import sympy

    if "\\" in latex_to_sympy_text(a) or "\\" in latex_to_sympy_text(b):
        return False  # an unsupported LaTeX command: do not guess at its meaning
    x, y = _parse(a), _parse(b)
    if isinstance(x, sympy.Basic) is False or isinstance(y, sympy.Basic) is False:
        return False
    difference = sympy.simplify(x - y)
    if difference == 0:
        return True
    if not difference.free_symbols:
        value = complex(sympy.N(difference, 30))
        scale = max(1.0, abs(complex(sympy.N(y, 30))))
        return abs(value) <= 1e-9 * scale
    return False
