"""Printing API answers: pretty JSON, or a table chosen with --output cols=... rows=..."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table


def parse_output_spec(spec: str) -> tuple[list[str], str | None]:
    """'cols=A,B rows=X.Y[]' -> (['A', 'B'], 'X.Y')."""
    cols: list[str] = []
    rows: str | None = None
    for part in spec.split():
        name, _, value = part.partition("=")
        if name == "cols":
            cols = [c for c in value.split(",") if c]
        elif name == "rows":
            rows = value.removesuffix("[]")
    if not cols:
        raise ValueError("--output needs cols=Name1,Name2 (and optionally rows=Path.To.List[])")
    return cols, rows


def find_rows(body: Any, path: str | None) -> list[Any]:
    if path:
        node = body
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return node if isinstance(node, list) else []
    return _first_list(body) or []


def _first_list(node: Any) -> list[Any] | None:
    if isinstance(node, list):
        return node
    if isinstance(node, dict):
        for value in node.values():
            found = _first_list(value)
            if found is not None:
                return found
    return None


def print_result(body: dict[str, Any], output: str | None, console: Console) -> None:
    if not output:
        console.print_json(json.dumps(body, ensure_ascii=False))
        return
    cols, rows_path = parse_output_spec(output)
    table = Table(*cols)
    for row in find_rows(body, rows_path):
        table.add_row(*[_cell(row.get(c) if isinstance(row, dict) else None) for c in cols])
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
