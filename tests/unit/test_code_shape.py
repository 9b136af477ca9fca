"""Shapes the core keeps so each piece stays readable: short parameter lists (pass a context
object instead)."""

import ast
from pathlib import Path

import sprout

CORE = Path(sprout.__file__).resolve().parent / "core"
MAX_PARAMETERS = 6  # `self` and `cls` included, and so are *args and **kwargs


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    named = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    return len(named) + (args.vararg is not None) + (args.kwarg is not None)


def test_no_function_in_the_core_takes_more_than_six_parameters() -> None:
    crowded = [
        f"{path.name}:{node.lineno} {node.name} ({parameters(node)})"
        for path in sorted(CORE.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and parameters(node) > MAX_PARAMETERS
    ]
    assert crowded == []
