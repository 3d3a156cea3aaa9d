"""Numbers written as text, as published files write them, parsed per column.

A column declares how its numbers are written (`parse: <kind>`); each kind accepts a stated set of
forms, so a value outside it is never guessed at:

| kind | accepts | result |
|---|---|---|
| `number` | `12`, `-3.5`, `1e3`, ` 7 ` | the number |
| `thousands` | `number` plus grouped thousands: `1,000`, `1,234,567.5`, `1 000`, `1'000` | the number |
| `currency` | `thousands` plus a currency sign or code before or after, and accounting negatives: `$1,200.50`, `-€5`, `100 EUR`, `(1,200)` | the number (the currency is dropped, not converted) |
| `percent` | `thousands` with or without `%`: `13.5%`, `13.5` | a **fraction**: 0.135 (the contract stores ratios as fractions) |
| `months` | `thousands` with an optional unit `month(s)`, `mo`, `mos`, `mth(s)` or `year(s)`, `yr(s)`, `y`, and open bands: ` 36 months`, `2 years` | months (years x 12) |
| `years` | as `months`: `10+ years`, `< 1 year`, `6 months` | years (months / 12) |
| `auto` | every form above | `%` gives a fraction; a duration stays in the unit written (see below) |

Open-ended bands of durations become their lower bound, the time the applicant is known to have
reached: `10+ years` and `> 10 years` -> 10, `< 1 year` and `<= 1 year` -> 0. Ranges (`1-3 years`)
are not parsed: recode them. In `auto`, a band needs a unit word (`10+` alone is not a duration), and
a column mixing month and year units leaves all its durations unparsed, since no single unit fits;
use `months` or `years`, which convert.

The decimal mark is `.` unless a column sets `decimal: ","`; then `.` is the thousands separator
(`1.000,50` -> 1000.5). A grouped number must group by threes with one separator, so `1,5` with
decimal `.` and `1.5` with decimal `,` are ambiguous and left unparsed rather than read as 15.

A value no kind accepts is kept exactly as written (the series becomes object dtype), so validation
rejects that row showing the value; parsing never turns text silently into NaN. Numbers that are
already numbers (Parquet, or values recoded to numbers) are kept, and divided by 100 for `percent`.

`apply_na_values` turns a column's special codes (`96`, `98`, `n/a`) into missing before parsing.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError

Kind = Literal["number", "thousands", "currency", "percent", "months", "years", "auto"]
KINDS: tuple[str, ...] = ("number", "thousands", "currency", "percent", "months", "years", "auto")
DECIMALS: tuple[str, ...] = (".", ",")

CURRENCY_SIGNS = r"[$€£¥₹₩₽₺₪]|R\$|US\$"
CURRENCY_CODES = frozenset("USD EUR GBP JPY CHF CAD AUD INR CNY SEK NOK DKK PLN BRL ZAR".split())
MONTH_WORDS = r"(?i:months?|mos?|mths?)"
YEAR_WORDS = r"(?i:years?|yrs?|y)"
_SPACES = r"[ \u00a0\u202f]"  # space, no-break space, narrow no-break space: all used to group digits


def _number_pattern(decimal: str) -> str:
    """Plain or grouped digits; a grouped number repeats one separator between groups of three."""
    point = re.escape(decimal)
    group = "[,'\u00a0\u202f ]" if decimal == "." else "[.'\u00a0\u202f ]"
    plain = rf"(?:\d+(?:{point}\d*)?|{point}\d+)(?:[eE][-+]?\d+)?"
    grouped = rf"\d{{1,3}}(?P<sep>{group})\d{{3}}(?:(?P=sep)\d{{3}})*(?:{point}\d*)?"
    return rf"(?P<num>(?P<grouped>{grouped})|{plain})"


def _pattern(decimal: str) -> re.Pattern[str]:
    cur = rf"(?:{CURRENCY_SIGNS}|[A-Za-z]{{3}}\b)"  # a three-letter code is checked against CURRENCY_CODES after
    return re.compile(
        rf"""^\s*
        (?P<open>\()?\s*
        (?P<cur1>{cur})?{_SPACES}*
        (?P<band><=|>=|<|>|≤|≥)?\s*
        (?P<sign>[-+\u2212])?{_SPACES}*
        (?P<cur2>{cur})?{_SPACES}*
        {_number_pattern(decimal)}
        (?P<plus>\+)?{_SPACES}*
        (?P<pct>%)?{_SPACES}*
        (?:(?:(?P<month>{MONTH_WORDS})|(?P<year>{YEAR_WORDS}))\.?)?{_SPACES}*
        (?P<cur3>{cur})?\s*
        (?P<close>\))?\s*$""",
        re.VERBOSE,
    )


_PATTERNS = {decimal: _pattern(decimal) for decimal in DECIMALS}


def _check(kind: str, decimal: str, column: str | None) -> None:
    where = f"columns.{column}: " if column else ""
    if kind not in KINDS:
        raise ConfigError(f"{where}parse {kind!r} is not one of {', '.join(KINDS)}")
    if decimal not in DECIMALS:
        raise ConfigError(f"{where}decimal {decimal!r} must be '.' or ','")


def parse_numbers(series: pd.Series, kind: Kind = "auto", decimal: str = ".", column: str | None = None) -> pd.Series:
    """Parse a column of numbers written as `kind` (see the module table), vectorised.

    Returns float64 when every present value parsed; otherwise object dtype, with each value that
    did not parse kept as written so validation rejects its row showing it.
    """
    _check(kind, decimal, column)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.astype(float)
        return values / 100 if kind == "percent" else values
    if series.dtype == object:
        is_number = series.map(lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)).astype(bool)
        is_text = series.map(lambda v: isinstance(v, str)).astype(bool)
    else:  # a string dtype: every present value is text
        is_number, is_text = pd.Series(False, index=series.index), series.notna()
    parsed = pd.Series(np.nan, index=series.index, dtype=float)
    if is_number.any():
        given = series[is_number].astype(float)
        parsed[is_number] = given / 100 if kind == "percent" else given
    if is_text.any():
        parsed[is_text] = _parse_text(series[is_text], kind, decimal)
    failed = series.notna() & parsed.isna()
    if not failed.any():
        return parsed
    out = parsed.astype(object)
    out[failed] = series[failed]
    return out


def _parse_text(text: pd.Series, kind: str, decimal: str) -> pd.Series:
    """Numbers for text written in a form `kind` accepts, NaN for any other text.

    Each distinct text is parsed once: published columns repeat few spellings (" 36 months").
    """
    codes, uniques = pd.factorize(text)
    unique = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
    out = np.full(len(unique), np.nan)
    if decimal == ".":  # plain numbers, the common case, in C; everything else through the regex below
        with np.errstate(all="ignore"):
            quick = pd.to_numeric(unique, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        plain = np.isfinite(quick)
        out[plain] = quick[plain] * (0.01 if kind == "percent" else 1.0)
    else:
        plain = np.zeros(len(unique), dtype=bool)
    if not plain.all():
        out[~plain] = _parse_forms(unique[~plain].reset_index(drop=True), kind, decimal)
    return pd.Series(out[codes], index=text.index)


def _parse_forms(text: pd.Series, kind: str, decimal: str) -> np.ndarray:
    parts = text.str.extract(_PATTERNS[decimal])
    has = {name: parts[name].notna() for name in parts.columns}
    unknown_code = pd.Series(False, index=parts.index)
    for name in ("cur1", "cur2", "cur3"):  # three letters must be a known currency code, in any case
        code = parts[name].dropna().str.upper()
        bad = code.str.fullmatch("[A-Z]{3}").astype(bool) & ~code.isin(CURRENCY_CODES)
        unknown_code[bad.index[bad]] = True
    currency = has["cur1"] | has["cur2"] | has["cur3"]
    parens = has["open"] & has["close"]
    unit = has["month"] | has["year"]
    band = has["band"] | has["plus"]
    ok = parts["num"].notna() & (has["open"] == has["close"]) & ~(has["cur1"] & has["cur2"]) & ~unknown_code
    ok &= ~(parens & has["sign"]) & ~(has["band"] & has["plus"]) & ~(band & (has["sign"] | parens))
    ok &= ~(has["pct"] & (currency | unit)) & ~(currency & unit)  # one kind of quantity per value
    allow = _allowed(kind, has, unit)
    ok &= ~(currency | parens) | allow["currency"]
    ok &= ~has["grouped"] | allow["grouped"]
    ok &= ~has["pct"] | allow["pct"]
    ok &= ~unit | allow["unit"]
    ok &= ~band | allow["band"]
    value = _to_value(parts["num"], decimal)
    negative = parens | parts["sign"].isin(["-", "\u2212"])
    value = np.where(negative, -value, value)
    value = np.where(parts["band"].isin(["<", "<=", "≤"]), 0.0, value)  # an open band's lower bound
    return np.where(ok, value * _unit_scale(kind, has), np.nan)


def _allowed(kind: str, has: dict[str, pd.Series], unit: pd.Series) -> dict[str, pd.Series | bool]:
    """Which written forms `kind` accepts; a form not allowed leaves the value unparsed."""
    if kind == "auto":
        mixed = bool(has["month"].any() and has["year"].any())
        return {"currency": True, "grouped": True, "pct": True, "unit": not mixed, "band": unit & (not mixed)}
    durations = kind in ("months", "years")
    return {
        "currency": kind == "currency",
        "grouped": kind != "number",
        "pct": kind == "percent",
        "unit": durations,
        "band": durations,
    }


def _to_value(num: pd.Series, decimal: str) -> np.ndarray:
    """Digits as written -> float: drop grouping characters, then make the decimal mark a point."""
    grouping = "[,'\u00a0\u202f ]" if decimal == "." else "[.'\u00a0\u202f ]"
    digits = num.fillna("").str.replace(grouping, "", regex=True).str.replace(decimal, ".", regex=False)
    return pd.to_numeric(digits, errors="coerce").to_numpy(dtype=float)


def _unit_scale(kind: str, has: dict[str, pd.Series]) -> np.ndarray | float:
    if kind == "percent":
        return 0.01
    if kind == "months":
        return np.where(has["year"], 12.0, 1.0)
    if kind == "years":
        return np.where(has["month"], 1 / 12, 1.0)
    if kind == "auto":
        return np.where(has["pct"], 0.01, 1.0)
    return 1.0


def _text_key(value: Any) -> str:
    return str(value).strip().casefold()


def apply_na_values(series: pd.Series, na_values: Iterable[Any]) -> pd.Series:
    """Make a column's special codes missing before parsing, e.g. 96/98 'refused'/'unknown' or 'n/a'.

    A value matches a code as text (trimmed, ignoring case: 'N/A' matches 'n/a') or as a number
    (96 matches '96', ' 96 ', '96.0' and 96.0), so codes written in YAML as numbers or text both work.
    A boolean code (YAML's unquoted yes/no) matches as text only, never as the number 1 or 0.
    """
    codes = [c for c in na_values if c is not None and not (isinstance(c, float) and np.isnan(c))]
    if not codes or series.empty:
        return series
    present = series.notna()
    hit = present & series.map(_text_key).isin({_text_key(c) for c in codes})
    plain = pd.Series([c for c in codes if not isinstance(c, bool)], dtype=object)
    numeric_codes = pd.to_numeric(plain, errors="coerce").dropna().astype(float).tolist()
    if numeric_codes:
        as_number = series.astype(float) if pd.api.types.is_numeric_dtype(series) else _as_number(series)
        hit |= present & as_number.isin(numeric_codes)
    return series.mask(hit)


def _as_number(series: pd.Series) -> pd.Series:
    values = series.where(series.map(lambda v: isinstance(v, str | numbers.Real) and not isinstance(v, bool)))
    return pd.to_numeric(values, errors="coerce")
