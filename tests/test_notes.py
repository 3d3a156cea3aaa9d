"""Reason notes (pipeline/decision/notes.py) against str.format row by row: pieces, joins, bytes and types."""

from __future__ import annotations

import string
from types import SimpleNamespace

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpers import examples
from pipeline.decision.notes import Choice, Notes
from pipeline.decision.textcols import TEXT_TYPE


class MoneyFormatter(string.Formatter):
    """str.format with the spec "money": whole amounts without decimals, others to the cent."""

    def format_field(self, value: object, format_spec: str) -> str:
        if format_spec == "money":
            return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"  # type: ignore[arg-type]
        return super().format_field(value, format_spec)


class ReferenceNotes:
    """One str.format per row, codes and texts joined in the order the notes were added."""

    def __init__(self, n: int) -> None:
        self.codes: list[list[str]] = [[] for _ in range(n)]
        self.texts: list[list[str]] = [[] for _ in range(n)]

    def add(self, mask: np.ndarray, code: str, template: str, **values: object) -> None:
        for k in np.flatnonzero(mask):
            row = {name: per_row(value, k) for name, value in values.items()}
            self.codes[k].append(code)
            self.texts[k].append(MoneyFormatter().format(template, **row))

    def joined(self) -> tuple[list[str], list[str]]:
        return [";".join(c) for c in self.codes], ["; ".join(t) for t in self.texts]


def per_row(value: object, k: int) -> object:
    if isinstance(value, Choice):
        return value.labels[value.index[k]]
    if isinstance(value, np.ndarray):
        return value[k] if value.dtype == object else value[k].item()  # numbers as Python's, as `tolist` gives them
    return value


def both(n: int, notes: list[tuple[np.ndarray, str, str, dict]]) -> tuple[tuple, tuple]:
    fast, ref = Notes(n), ReferenceNotes(n)
    for mask, code, template, values in notes:
        fast.add(mask, code, template, **values)
        ref.add(mask, code, template, **values)
    codes, texts = fast.joined()
    assert codes.type == TEXT_TYPE and texts.type == TEXT_TYPE
    assert len(codes) == len(texts) == n and codes.null_count == texts.null_count == 0
    return (codes.to_pylist(), texts.to_pylist()), ref.joined()


def test_notes_equal_str_format_row_by_row() -> None:
    rng = np.random.default_rng(5)
    n = 300
    amount = np.round(rng.uniform(0, 40_000, n) * 100) / 100
    amount[::3] = np.round(amount[::3])
    pd_ = rng.uniform(0, 1, n)
    pd_[:4] = [np.nan, np.inf, -0.0, 0.0625]
    term = rng.choice([6.0, 12.0, 60.0], n)
    because = Choice(rng.integers(0, 3, n), ("la limite du grade", np.nan, "日本の上限 – 40 %"))
    names = np.array(rng.choice(["Zoë", "Ŝtefan", "O'Brien", "李"], n), dtype=object)
    grade = rng.integers(-2, 12, n)
    s = SimpleNamespace(cap=0.4, floor=1234.5)
    values = {"amount": amount, "pd": pd_, "term": term, "because": because, "name": names, "grade": grade,
              "s": s, "min": 1000.0, "cut": ""}  # fmt: skip
    masks = [rng.random(n) < p for p in (0.3, 0.5, 0.2, 0.1, 0.4, 0.3)]
    masks[-1][:] = False
    masks[-1][7] = True  # a note on one row
    notes = [
        (masks[0], "PD", "probability {pd:.3f} above the cutoff{cut} ({pd:.1%}, {pd!r})", values),
        (masks[1], "CUT", "amount {amount:money} cut to {min:money} over {term:.0f} months, {because}", values),
        (masks[2], "NAME", "für {name} – {name!r:>12} grade {grade:+d} {{literal}} cap {s.cap:.0%} ≥ {s.floor:,.2f}",
         values),
        (np.zeros(n, dtype=bool), "NEVER", "{amount:money}", values),  # empty mask: no note
        (masks[3], "FIXED", "approved as requested ✓", values),
        (masks[4], "EMPTY", "", values),  # an empty text is still joined with "; "
        (masks[5], "ONE", "{amount:money} and {term:.0f} — {because}", values),
    ]  # fmt: skip
    got, want = both(n, notes)
    assert got == want
    codes, texts = got
    assert "" in codes and any(c.count(";") >= 2 for c in codes)  # rows without notes and with several
    assert any("日本" in t for t in texts) and any("nan" in t for t in texts) and any(t.endswith("; ") for t in texts)


def test_no_notes_give_empty_texts() -> None:
    assert both(4, []) == (([""] * 4, [""] * 4), ([""] * 4, [""] * 4))
    assert both(0, [])[0] == ([], [])
    got, want = both(3, [(np.zeros(3, dtype=bool), "A", "{x:.2f}", {"x": np.ones(3)})])
    assert got == want == ([""] * 3, [""] * 3)


def test_notes_keep_their_order_per_row_and_noted_marks_the_rows() -> None:
    notes = Notes(4)
    notes.add(np.array([True, False, True, False]), "B", "second {x:.0f}", x=np.arange(4.0))
    notes.add(np.array([True, True, False, False]), "A", "first é")
    notes.add(~notes.noted, "NONE", "nothing")
    codes, texts = notes.joined()
    assert codes.to_pylist() == ["B;A", "A", "B", "NONE"]
    assert texts.to_pylist() == ["second 0; first é", "first é", "second 2", "nothing"]


finite = st.floats(-1e9, 1e9, allow_nan=False)
figures = st.one_of(finite, st.sampled_from([0.0, -0.0, 0.5, 2.675, 1.005, 1e15, np.nan, np.inf, -np.inf]))
templates = st.sampled_from([
    "{x:.3f}", "amount {x:money} and {y:money}", "{x:,.2f} €{y:.0f}", "left {x:.2%} ({label})", "plain text",
    "{label}{label} ü {y:.1f}", "", "{x}",
])  # fmt: skip


@settings(max_examples=examples(60), deadline=None)
@given(
    x=st.lists(figures, min_size=1, max_size=12),
    rules=st.lists(st.tuples(templates, st.integers(0, 2**12 - 1)), max_size=5),
)
@example(x=[1234.5], rules=[("{x:money}", 1), ("", 1)])  # a one-row note with a field, then an empty text
def test_property_notes_equal_the_per_row_reference(x: list[float], rules: list[tuple[str, int]]) -> None:
    n = len(x)
    values = {
        "x": np.array(x),
        "y": np.round(np.array(x[::-1]) * 4) / 4,
        "label": Choice(np.arange(n) % 3, ("", "naïve", np.nan)),
    }
    notes = [(np.array([bool(bits >> k & 1) for k in range(n)]), f"R{i}", template, values)
             for i, (template, bits) in enumerate(rules)]  # fmt: skip
    got, want = both(n, notes)
    assert got == want
