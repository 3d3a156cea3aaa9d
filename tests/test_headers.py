"""Header normalisation: blank and duplicated names are named exactly as pandas' read_csv names them, and reported."""

from __future__ import annotations

import io
import json

import pandas as pd
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from helpers import examples
from pipeline.data.headers import dedupe, ignored_columns, normalise_header


def pandas_names(header: list[str]) -> list[str]:
    """What pd.read_csv calls the columns of a file with this header (names hold no comma or quote)."""
    text = ",".join(header) + "\n" + ",".join("1" for _ in header) + "\n"
    frame = pd.read_csv(io.StringIO(text), dtype=str)
    return [str(c) for c in frame.columns]


def test_blank_cell_is_named_by_its_zero_based_position():
    names, report = normalise_header(["", "age", "", "income"])
    assert names == ["Unnamed: 0", "age", "Unnamed: 2", "income"]
    assert report == {"renamed": {0: "Unnamed: 0", 2: "Unnamed: 2"}, "duplicates": {}}


def test_duplicates_are_numbered_and_reported_with_their_positions():
    names, report = normalise_header(["x", "y", "x", "x"])
    assert names == ["x", "y", "x.1", "x.2"]
    assert report["renamed"] == {2: "x.1", 3: "x.2"}
    assert report["duplicates"] == {"x": [0, 2, 3]}


def test_a_generated_name_never_takes_a_name_the_file_already_has():
    assert normalise_header(["x", "x", "x.1"])[0] == ["x", "x.2", "x.1"]
    # the written "Unnamed: 0" keeps its name; the blank cell is the one renumbered
    assert normalise_header(["", "Unnamed: 0"])[0] == ["Unnamed: 0.1", "Unnamed: 0"]


def test_whitespace_only_cell_counts_as_blank_unlike_pandas():
    names, report = normalise_header(["id", "  "])
    assert names == ["id", "Unnamed: 1"] and report["renamed"] == {1: "Unnamed: 1"}


def test_clean_header_is_unchanged_and_report_is_empty():
    assert normalise_header(["a", "b"]) == (["a", "b"], {"renamed": {}, "duplicates": {}})
    assert normalise_header([]) == ([], {"renamed": {}, "duplicates": {}})


def test_report_serialises_for_ingest_json():
    _, report = normalise_header(["a", "a", ""])
    assert json.loads(json.dumps(report)) == {"renamed": {"1": "a.1", "2": "Unnamed: 2"}, "duplicates": {"a": [0, 1]}}


def test_names_differing_only_in_case_are_not_duplicates():
    assert normalise_header(["a", "A"]) == (["a", "A"], {"renamed": {}, "duplicates": {}})


NAME_POOL = ["a", "b", "a.1", "a.2", "a.1.1", "b.1", "", "Unnamed: 0", "Unnamed: 1", "Unnamed: 1.1"]


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.sampled_from(NAME_POOL), min_size=1, max_size=8))
def test_names_equal_pandas_read_csv(header):
    assume(header != [""])  # a one-column file with a blank header line has no header line to pandas
    names, _ = normalise_header(header)
    assert names == pandas_names(header)
    assert len(set(names)) == len(names)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.sampled_from(NAME_POOL), min_size=1, max_size=8))
@example(["a", "", "a", "b", "a"])  # a duplicate and a blank
def test_report_lists_exactly_the_changed_positions(header):
    names, report = normalise_header(header)
    assert report["renamed"] == {i: n for i, (o, n) in enumerate(zip(header, names, strict=True)) if o != n}
    # every name written more than once (blank cells excluded), with all its positions: exact, so an empty
    # report cannot pass for a header with duplicates
    written = {n for n in header if n.strip() and header.count(n) > 1}
    assert report["duplicates"] == {n: [i for i, h in enumerate(header) if h == n] for n in written}


def test_dedupe_keeps_unique_names():
    assert dedupe(["p", "q", "r"]) == ["p", "q", "r"]


def test_ignored_columns_lists_unused_in_file_order():
    assert ignored_columns(["id", "x", "age", "Unnamed: 0"], {"age", "id"}) == ["x", "Unnamed: 0"]
    assert ignored_columns(["a"], ["a", "not_in_file"]) == []
