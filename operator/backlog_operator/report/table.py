"""Tables for the terminal: rich when it is installed and stdout is a terminal, plain otherwise.

`Table` is a frozen value (title, column names, rows of strings); `render_plain`
lays it out with aligned columns, `to_rich` builds a rich.table.Table (rich is
imported lazily: it comes with the optional `report` extra). Used by `stats`,
`doctor`, `report` and the demo's results table.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    # Columns aligned right (numbers); the others align left.
    numeric: frozenset[int] = frozenset()

    def column(self, name: str) -> tuple[str, ...]:
        index = self.columns.index(name)
        return tuple(row[index] for row in self.rows)


def fmt(value: float | int | None, digits: int = 2, unit: str = "") -> str:
    """A number for a table cell: `-` when absent, integers without decimals."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value}{unit}"
    return f"{value:.{digits}f}{unit}"


def render_plain(table: Table) -> str:
    widths = [len(c) for c in table.columns]
    for row in table.rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if i in table.numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out = [table.title, line(table.columns), line(["-" * w for w in widths])]
    out.extend(line(row) for row in table.rows)
    return "\n".join(out)


def rich_available() -> bool:
    return importlib.util.find_spec("rich") is not None


def use_rich(stream: TextIO | None = None, force_plain: bool = False) -> bool:
    """rich only on a terminal: piped output stays plain text that scripts can read."""
    stream = stream or sys.stdout
    return not force_plain and rich_available() and stream.isatty()


def to_rich(table: Table) -> Any:
    from rich.table import Table as RichTable

    out = RichTable(title=table.title, title_justify="left")
    for i, name in enumerate(table.columns):
        out.add_column(name, justify="right" if i in table.numeric else "left")
    for row in table.rows:
        out.add_row(*row)
    return out


def show(table: Table, force_plain: bool = False, stream: TextIO | None = None) -> None:
    """Print `table` to `stream` (stdout), with rich when `use_rich` says so."""
    stream = stream or sys.stdout
    if use_rich(stream, force_plain):
        from rich.console import Console

        Console(file=stream).print(to_rich(table))
    else:
        print(render_plain(table), file=stream, flush=True)
