"""Numbers written as text: each kind's documented forms, values left for validation, special codes, round trips."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from pipeline.data.sources.parsers import KINDS, apply_na_values, parse_numbers
from pipeline.errors import ConfigError


def parsed(values: list, kind: str, decimal: str = ".") -> list:
    return parse_numbers(pd.Series(values, dtype=object), kind, decimal).tolist()


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("number", " 12 ", 12.0),
        ("number", "-3.5", -3.5),
        ("number", "1e3", 1000.0),
        ("number", "\u22127", -7.0),  # a typographic minus
        ("thousands", "1,000", 1000.0),
        ("thousands", "1,234,567.5", 1234567.5),
        ("thousands", "1 000", 1000.0),
        ("thousands", "1'000", 1000.0),
        ("currency", "$1,200.50", 1200.5),
        ("currency", "-€5", -5.0),
        ("currency", "100 EUR", 100.0),
        ("currency", "(1,200)", -1200.0),  # accounting negative
        ("currency", "US$ 3", 3.0),
        ("percent", "13.5%", 0.135),
        ("percent", "13.5", 0.135),  # the column is declared percent: the sign is optional
        ("percent", " 7 % ", 0.07),
        ("months", " 36 months", 36.0),
        ("months", "1 month", 1.0),
        ("months", "2 years", 24.0),
        ("months", "60", 60.0),
        ("years", "10+ years", 10.0),
        ("years", "< 1 year", 0.0),
        ("years", "<= 2 yrs.", 0.0),
        ("years", "> 5 years", 5.0),
        ("years", "6 months", 0.5),
        ("years", "3", 3.0),
        ("auto", "13.5%", 0.135),
        ("auto", "$1,200.50", 1200.5),
        ("auto", " 36 months", 36.0),
        ("auto", "10+ years", 10.0),
        ("auto", "42", 42.0),
    ],
)
def test_each_kind_parses_its_documented_forms(kind, text, expected):
    assert parsed([text], kind) == [pytest.approx(expected, rel=1e-12)]


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("number", "1,000"),  # grouping needs `thousands` or wider
        ("number", "13.5%"),
        ("thousands", "$5"),
        ("thousands", "1,5"),  # not grouped by threes: ambiguous
        ("thousands", "12,34,567"),
        ("thousands", "1,000 000"),  # two different separators
        ("currency", "13%"),
        ("currency", "$ 5 months"),
        ("percent", "$5"),
        ("percent", "5 years"),
        ("months", "5%"),
        ("months", "1-3 years"),  # ranges are recoded, not guessed
        ("months", "-5+ years"),
        ("years", "> 10+ years"),
        ("auto", "10+"),  # a band needs its unit in auto
        ("auto", "(5"),
        ("auto", "five"),
        ("auto", ""),
        ("auto", "1.000,50"),  # needs decimal: ","
        ("auto", "$€5"),
        ("currency", "XYZ 5"),  # three letters that are not a known currency code
        ("currency", "5 abc"),
    ],
)
def test_forms_a_kind_does_not_accept_are_kept_as_written(kind, text):
    out = parse_numbers(pd.Series(["1", text], dtype=object), kind)
    assert out.dtype == object and out.tolist()[1] == text


def test_all_parsed_is_float64_and_missing_stays_missing():
    out = parse_numbers(pd.Series(["1,000", None, np.nan, "2"], dtype=object), "thousands")
    assert out.dtype == np.float64 and out.iloc[0] == 1000.0 and out.iloc[1:3].isna().all()


def test_unparsed_value_keeps_its_exact_text_and_row():
    out = parse_numbers(pd.Series(["1", " n/a ", "3"], index=[10, 11, 12], dtype=object), "number")
    assert out.tolist() == [1.0, " n/a ", 3.0] and list(out.index) == [10, 11, 12]


def test_decimal_comma_only_when_asked():
    assert parsed(["1.000,50", "2,75 %", "€ 1.234.567,8", "0,5"], "auto", decimal=",") == [
        1000.5,
        pytest.approx(0.0275),
        1234567.8,
        0.5,
    ]
    assert parsed(["1.5"], "thousands", decimal=",") == ["1.5"]  # ambiguous with comma decimals
    assert parsed(["1.000,50"], "thousands") == ["1.000,50"]


def test_auto_leaves_durations_unparsed_when_a_column_mixes_months_and_years():
    assert parsed([" 36 months", " 60 months"], "auto") == [36.0, 60.0]
    assert parsed(["10+ years", "< 1 year", "3 years", "n/a"], "auto") == [10.0, 0.0, 3.0, "n/a"]
    assert parsed(["2 years", "6 months", "7"], "auto") == ["2 years", "6 months", 7.0]
    assert parsed(["2 years", "6 months"], "months") == [24.0, 6.0]  # an explicit kind converts


def test_values_that_are_already_numbers():
    assert parsed([13.5, "20%", None], "percent")[:2] == [0.135, 0.2]
    numeric = parse_numbers(pd.Series([13.5, np.nan]), "percent")
    assert numeric.dtype == np.float64 and numeric.iloc[0] == 0.135 and np.isnan(numeric.iloc[1])
    assert parse_numbers(pd.Series([36, 60]), "months").tolist() == [36.0, 60.0]
    assert parsed([True, "1"], "number") == [True, 1.0]  # a boolean is not a number here


def test_string_dtype_column():
    out = parse_numbers(pd.Series(["$5", None, "x"], dtype="string"), "currency")
    assert out.tolist()[0] == 5.0 and pd.isna(out.iloc[1]) and out.tolist()[2] == "x"


def test_unknown_kind_or_decimal_is_a_config_error_naming_the_column():
    with pytest.raises(ConfigError, match=r"columns\.employment_years: parse 'yaers' is not one of number"):
        parse_numbers(pd.Series(["1"]), "yaers", column="employment_years")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"columns\.x: decimal ';' must be"):
        parse_numbers(pd.Series(["1"]), "number", decimal=";", column="x")


# ---- special codes


def test_na_values_match_as_text_and_as_numbers():
    s = pd.Series(["96", "96.0", " 96 ", "9.6e1", "N/A", "n/a", "95", None, "x"], dtype=object)
    out = apply_na_values(s, [96, "n/a"])
    assert out.isna().tolist() == [True] * 6 + [False, True, False]
    assert out.tolist()[6] == "95" and out.tolist()[8] == "x"


def test_na_values_written_as_text_match_numbers_and_numeric_columns():
    assert apply_na_values(pd.Series([96.0, 98, 1]), ["98"]).isna().tolist() == [False, True, False]
    assert apply_na_values(pd.Series([96, 7], dtype=object), ["96.0"]).isna().tolist() == [True, False]


def test_na_values_boolean_code_matches_text_only_and_blank_code_matches_whitespace():
    out = apply_na_values(pd.Series(["1", "true", "0"], dtype=object), [True])
    assert out.isna().tolist() == [False, True, False]
    assert apply_na_values(pd.Series(["  ", "1"], dtype=object), [""]).isna().tolist() == [True, False]


def test_no_na_values_returns_the_series_unchanged():
    s = pd.Series(["96"], dtype=object)
    assert apply_na_values(s, []) is s
    assert apply_na_values(s, [None, float("nan")]) is s


def test_na_values_then_parse_gives_missing_not_rejected():
    s = apply_na_values(pd.Series(["10+ years", "n/a", "98"], dtype=object), ["n/a", 98])
    out = parse_numbers(s, "years")
    assert out.dtype == np.float64 and out.iloc[0] == 10.0 and out.iloc[1:].isna().all()


# ---- round trips: what a number formats to, parses back to it

MONEY = st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-14, abs_tol=1e-12)


def all_close(got: list, expected: list[float]) -> bool:
    return len(got) == len(expected) and all(close(g, e) for g, e in zip(got, expected, strict=True))


# each round trip parses a whole column at once, so rows of different forms are checked side by side


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(MONEY, min_size=1, max_size=30))
def test_round_trip_grouped_and_currency(amounts):
    xs = [float(v) for v in amounts]
    grouped = [f"{v:,.2f}" for v in amounts]
    european = [g.replace(",", "_").replace(".", ",").replace("_", ".") for g in grouped]
    bodies = [f"{abs(v):,.2f}" for v in amounts]
    dollars = [("-$" if v < 0 else "$") + b for v, b in zip(amounts, bodies, strict=True)]
    accounting = [f"({b})" if v < 0 else f"{b} EUR" for v, b in zip(amounts, bodies, strict=True)]
    assert all_close(parsed(grouped, "thousands"), xs)
    assert all_close(parsed(european, "thousands", decimal=","), xs)
    assert all_close(parsed(dollars, "currency"), xs)
    assert all_close(parsed(accounting, "currency"), xs)
    assert all_close(parsed(dollars + grouped, "auto"), xs + xs)


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 4)), min_size=1, max_size=30))
def test_round_trip_percent_is_a_fraction(values):
    texts = [f"{v}%" for v in values]
    assert all_close(parsed(texts, "percent"), [v / 100 for v in values])
    assert all_close(parsed(texts, "auto"), [v / 100 for v in values])


MONTHS = st.tuples(
    st.integers(0, 600), st.sampled_from(["month", "months", "mo", "mos", "mths"]), st.sampled_from(["", " "])
)


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(MONTHS, min_size=1, max_size=30))
def test_round_trip_months(rows):
    texts = [f"{n}{space}{unit}" for n, unit, space in rows]
    ns = [float(n) for n, _, _ in rows]
    assert parsed(texts, "months") == ns
    assert all_close(parsed(texts, "years"), [n / 12 for n in ns])
    assert parsed([f"{int(n)} years" for n in ns], "months") == [12.0 * n for n in ns]


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=30), st.sampled_from(KINDS))
def test_round_trip_plain_integers_in_every_kind(ns, kind):
    expected = [n / 100 if kind == "percent" else float(n) for n in ns]
    assert all_close(parsed([str(n) for n in ns], kind), expected)


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=("Nd", "Cs")), max_size=12), max_size=20),
    st.sampled_from(KINDS),
)
def test_text_without_digits_is_never_turned_into_a_number_or_nan(texts, kind):
    assert parsed(["1", *texts], kind)[1:] == texts  # "1" keeps the column from being all text
