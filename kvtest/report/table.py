"""Plain-text tables for terminals: left-aligned columns, two spaces apart, no trailing blanks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def render(head: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = [[str(c) for c in head], *([str(c) for c in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(len(head))]
    out = []
    for line in lines:
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)).rstrip())
    return "\n".join(out)
