"""CSV headers as files are published: blank and duplicated names made usable, and reported.

Real files come with an empty first header cell (a saved pandas index) or the same name twice.
Rather than refusing them, the header is normalised exactly as pandas' `read_csv` names such columns,
so a YAML mapping written against `pd.read_csv(path).columns` works unchanged:

- an empty cell at 0-based position N becomes `Unnamed: N`;
- a repeated name becomes `x.1`, `x.2`, ... skipping any name the header already holds (`x, x, x.1`
  gives `x, x.2, x.1`), and named columns are numbered before blank ones, so a written name is
  never the one that changes (pandas 2.2+/3 `mangle_dupe_names`).

One deliberate difference: a cell holding only whitespace counts as empty (pandas keeps `" "` as a
name, which no mapping could reasonably refer to). Every change is listed in the report written to
`ingest.json`, so nothing is renamed silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def is_blank(name: str) -> bool:
    return not name.strip()


def dedupe(names: Sequence[str], unnamed: Sequence[int] = ()) -> list[str]:
    """pandas' de-duplication: `x.1`, `x.2`, ..., skipping names present, blank-named columns last."""
    out = list(names)
    skip = set(unnamed)
    order = [i for i in range(len(out)) if i not in skip] + list(unnamed)
    counts: dict[str, int] = {}
    for i in order:
        col = old = out[i]
        count = counts.get(col, 0)
        while count > 0:
            counts[old] = count + 1
            col = f"{old}.{count}"
            count = count + 1 if col in out else counts.get(col, 0)
        out[i] = col
        counts[col] = count + 1
    return out


def normalise_header(names: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """New column names and the report of what changed.

    The report has `renamed` ({0-based position: new name}, for every column whose name changed)
    and `duplicates` ({name as written: [0-based positions]}, for every name written more than once,
    blank cells excluded). JSON turns the positions used as keys into strings.
    """
    unnamed = [i for i, name in enumerate(names) if is_blank(name)]
    filled = [f"Unnamed: {i}" if is_blank(name) else name for i, name in enumerate(names)]
    new = dedupe(filled, unnamed)
    renamed = {i: n for i, (old, n) in enumerate(zip(names, new, strict=True)) if old != n}
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if not is_blank(name):
            positions.setdefault(name, []).append(i)
    duplicates = {name: where for name, where in positions.items() if len(where) > 1}
    return new, {"renamed": renamed, "duplicates": duplicates}


def ignored_columns(header: Iterable[str], used: Iterable[str]) -> list[str]:
    """Columns of the file that the mapping does not read, in file order: listed in reports, never an error."""
    wanted = set(used)
    return [name for name in header if name not in wanted]
