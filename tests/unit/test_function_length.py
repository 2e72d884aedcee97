"""Functions that fit on a screen (issue 29): none in ``services/``, ``shared/`` or
``aiguillage/`` longer than 80 lines unless its docstring says why (a line starting
``Long:``). Read from the source; migrations' generated revisions are not ours to cut.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 80


def long_functions(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            doc = ast.get_docstring(node) or ""
            if length > LIMIT and "Long:" not in doc:
                found.append(f"{node.lineno}: {node.name} ({length} lines)")
    return found


def test_the_check_sees_a_long_function() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(LIMIT))
    assert long_functions(f"def f():\n{body}")
    assert not long_functions(f'def f():\n    """Long: a table."""\n{body}')


def test_no_function_is_longer_than_a_screen() -> None:
    offending = {
        str(path.relative_to(ROOT)): found
        for folder in ("services", "shared", "aiguillage")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "versions" not in path.parts and (found := long_functions(path.read_text()))
    }
    assert not offending, f"functions over {LIMIT} lines: {offending}"
