"""The fast validation engine (pipeline.data.fastcheck) against the pandera schema, its oracle.

The property test generates frames from the contract (core columns, history, extras of every
dtype, a protected attribute and a range override), as CSV text or as typed (Parquet-like)
columns, clean or with injected faults of every rule, and checks three things: both engines
give the same rejects and the same valid frame; every injected fault is reported under its
rule; and no row without a fault is rejected.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import examples
from pipeline.config import ContractConfig
from pipeline.data import fastcheck
from pipeline.data import validate as validate_module
from pipeline.data.contract import (
    RULE_MAX_LENGTH,
    ContractColumn,
    build_schema,
    contract_columns,
    range_rule,
)
from pipeline.data.csv_records import LINE_COLUMN, MALFORMED_RULE, MALFORMED_TEXT
from pipeline.data.io import read_csv_text, read_parquet
from pipeline.data.validate import ValidationResult, validate_frame
from pipeline.errors import DataContractError

CONTRACT = ContractConfig(
    history_months=1,
    extras=[
        {"name": "channel", "dtype": "category", "allowed": ["Web", "branch"]},
        {"name": "score_band", "dtype": "int", "min": 1, "max": 5, "nullable": False},
        {"name": "ratio", "dtype": "float", "max": 1},
        {"name": "region", "dtype": "str", "allowed": ["north", "south"], "nullable": False},
        {"name": "note", "dtype": "str"},
    ],
    protected=["gender"],
    ranges={"age": {"max": 110}},
)
COLUMNS = contract_columns(CONTRACT)
BY_NAME = {c.name: c for c in COLUMNS}
ID = BY_NAME["applicant_id"]
OPTIONAL = [c for c in COLUMNS if c.name != "applicant_id"]
NUMERIC_BOUND = 1e6  # clean numbers without a bound stay within +-this


def run(df: pd.DataFrame, engine: str) -> ValidationResult | DataContractError:
    try:
        return validate_frame(df.copy(), CONTRACT, "prop", allow_all_rejected=True, engine=engine)
    except DataContractError as err:
        return err


def assert_same(df: pd.DataFrame) -> ValidationResult:
    """Both engines: the same rejects, the same valid frame, the same summary (or the same table-level error)."""
    fast, oracle = run(df, "fast"), run(df, "pandera")
    if isinstance(oracle, DataContractError):
        assert isinstance(fast, DataContractError) and str(fast) == str(oracle)
        pytest.skip("table-level error in both engines")  # pragma: no cover - the generator avoids them
    assert isinstance(fast, ValidationResult), fast
    pd.testing.assert_frame_equal(fast.rejects, oracle.rejects)
    pd.testing.assert_frame_equal(fast.valid, oracle.valid)
    assert fast.summary() == oracle.summary()
    return fast


# ------------------------------------------------------------------ the generator


def _int_bounds(col: ContractColumn) -> tuple[int, int]:
    lo = -NUMERIC_BOUND if col.min is None else col.min
    hi = NUMERIC_BOUND if col.max is None else col.max
    lo_i = math.ceil(lo) + (1 if col.min_exclusive and float(lo).is_integer() else 0)
    return lo_i, math.floor(hi)


@dataclass
class Frame:
    """A generated input: the frame, the expected (0-based row, column, rule) and the rows with a fault."""

    df: pd.DataFrame
    kind: str
    expected: set[tuple[int, str, str]] = field(default_factory=set)
    faulty: set[int] = field(default_factory=set)


def _kind(col: ContractColumn) -> str:
    if col.dtype in ("float", "int"):
        return "number"
    return col.dtype if col.dtype == "date" else "text"


@st.composite
def clean_number(draw, col: ContractColumn, typed: bool):
    if col.dtype == "int":
        lo, hi = _int_bounds(col)
        value: float = draw(st.integers(lo, hi))
    else:
        lo_f = -NUMERIC_BOUND if col.min is None else col.min
        hi_f = NUMERIC_BOUND if col.max is None else col.max
        value = draw(st.floats(lo_f, hi_f, exclude_min=col.min_exclusive, allow_nan=False, allow_infinity=False))
    if typed:
        return float(value)
    if col.dtype == "int":
        return draw(
            st.sampled_from([str(value), f"{value}.0", f" {value} ", f"+{value}" if value >= 0 else str(value)])
        )
    return draw(st.sampled_from([repr(value), f" {value!r}", f"{value:.17g}"]))


DATES = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2035, 12, 31))


@st.composite
def clean_date_text(draw, style: str):
    when = draw(DATES)
    if style == "date":
        return when.strftime("%Y-%m-%d")
    formats = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H", "%Y-%m-%dT%H:%M:%S.%f"]
    text = when.strftime(draw(st.sampled_from(formats if style != "naive" else [*formats, "%Y%m%d"])))
    if style == "naive":
        return text
    offset = draw(st.sampled_from(["Z", "+02:00", "-05:00", "+00:00"]))
    if style == "mixed" and draw(st.booleans()):
        return text  # offsets and naive values in one column: parsed with utc=True
    return text + offset


SAFE_TEXT = st.text(max_size=8).filter(lambda s: "\ufffd" not in s)


@st.composite
def clean_text(draw, col: ContractColumn, row: int, id_style: str):
    if col.role == "id":
        if id_style == "float":
            return float(row + 1)
        return draw(st.sampled_from([f"ID{row:04d}", f" ID{row:04d} ", f"id-{row}"]))
    if col.allowed is not None:
        value = draw(st.sampled_from(col.allowed))
        return draw(st.sampled_from([value, value.upper(), f"  {value} ", value.title()]))
    return draw(SAFE_TEXT)


MISSING_TEXT = st.sampled_from([None, "", "   ", np.nan])


def _missing_typed(kind: str):
    return {"number": np.nan, "date": pd.NaT}.get(kind)


def applies(rule: str, col: ContractColumn) -> bool:
    """Whether a fault of this rule can be injected into this column."""
    kind = _kind(col)
    return {
        "type": kind in ("number", "date"),
        "finite": kind == "number",
        "range": kind == "number" and range_rule(col) is not None,
        "integer": col.dtype == "int",
        "encoding": kind == "text",
        "allowed": col.allowed is not None,
        "not_null": not col.nullable,
        "max_length": col.role == "id",
    }[rule]


@st.composite
def fault(draw, rule: str, col: ContractColumn, typed: bool):
    """(value, expected rule name) of a fault of `rule` in this column."""
    kind = _kind(col)
    if rule == "type":
        if kind == "date":
            return draw(st.sampled_from(["2024-02-30", "yesterday", "2024-13-01", "9999-12-31", "12/31/2024"])), (
                "type:date"
            )
        return draw(st.sampled_from(["abc", "12k", "1,000", "--1", "1.2.3", "\ufffd"])), f"type:{col.dtype}"
    if rule == "finite":
        if typed:
            return draw(st.sampled_from([np.inf, -np.inf])), "finite"
        return draw(st.sampled_from(["inf", "-inf", "1e400", "Infinity", "-INF"])), "finite"
    if rule == "range":
        lo, hi = _int_bounds(col)
        candidates = []
        if col.min is not None:
            candidates.append(col.min if col.min_exclusive else lo - draw(st.integers(1, 1000)))
        if col.max is not None:
            candidates.append(hi + draw(st.integers(1, 1000)))
        value = float(draw(st.sampled_from(candidates)))
        return (value if typed else repr(value)), range_rule(col)
    if rule == "integer":
        lo, hi = _int_bounds(col)
        value = draw(st.integers(lo, max(lo, hi - 1))) + 0.5
        return (value if typed else str(value)), "integer"
    if rule == "encoding":
        return draw(st.sampled_from(["caf\ufffd", "\ufffd", " x\ufffdy "])), "encoding"
    if rule == "allowed":
        return draw(st.sampled_from(["castle", "Webb", "n o r t h", "0"])), "allowed_values"
    if rule == "not_null":
        return (_missing_typed(kind) if typed and kind != "text" else draw(MISSING_TEXT)), "not_null"
    return "Z" * draw(st.integers(65, 90)), RULE_MAX_LENGTH


CELL_RULES = ("type", "finite", "range", "integer", "encoding", "allowed", "not_null", "max_length")
FAULTS = (*CELL_RULES, "unique", "malformed")


@st.composite
def frames(draw, clean: bool = False, kind: str | None = None, must: str | None = None) -> Frame:
    """A frame of 2..20 rows over the id and 3..16 other contract columns; `must` is a fault it surely has."""
    kind = kind or draw(st.sampled_from(["text", "typed"]))
    typed = kind == "typed"
    n = draw(st.integers(2, 20))
    chosen = draw(st.permutations(OPTIONAL))[: draw(st.integers(3, 16))]
    if must in CELL_RULES and not any(applies(must, c) for c in [ID, *chosen]):
        chosen.append(draw(st.sampled_from([c for c in OPTIONAL if applies(must, c)])))
    columns = [ID, *sorted(chosen, key=COLUMNS.index)]
    id_style = draw(st.sampled_from(["text", "float"])) if typed else "text"
    date_style = draw(st.sampled_from(["date", "naive", "offset", "mixed"]))
    cells: dict[str, list] = {}
    for col in columns:
        k = _kind(col)
        values = []
        for row in range(n):
            if col.nullable and draw(st.integers(0, 9)) == 0:
                values.append(_missing_typed(k) if typed and k != "text" else draw(MISSING_TEXT))
            elif k == "number":
                values.append(draw(clean_number(col, typed)))
            elif k == "date":
                values.append(draw(clean_date_text(date_style)))
            else:
                values.append(draw(clean_text(col, row, id_style)))
        cells[col.name] = values
    frame = Frame(pd.DataFrame(), kind)
    malformed: dict[int, str] = {}
    as_written: set[tuple[str, int]] = set()  # fault cells a typed frame keeps as they are
    if not clean:
        plan = draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(FAULTS)), min_size=1, max_size=6))
        if must is not None:
            plan.insert(0, (draw(st.integers(0, n - 1)), must))
        for row, what in plan:
            if row in frame.faulty:
                continue
            if what == "malformed":
                if typed:
                    continue  # a typed (Parquet) file has no lines
                rule = draw(
                    st.sampled_from(["malformed_line: expected 3 fields, got 4", "malformed_line: unclosed quote"])
                )
                malformed[row] = rule
                frame.faulty.add(row)
                frame.expected.add((row, LINE_COLUMN, rule))
            elif what == "unique":
                sources = [r for r in range(n) if r != row and r not in frame.faulty]
                if not sources:
                    continue
                source = draw(st.sampled_from(sources))
                cells["applicant_id"][row] = cells["applicant_id"][source]
                frame.faulty |= {row, source}
                frame.expected |= {(row, "applicant_id", "unique"), (source, "applicant_id", "unique")}
            else:
                targets = [c for c in columns if applies(what, c)]
                if not targets:
                    continue
                col = draw(st.sampled_from(targets))
                value, rule = draw(fault(what, col, typed))
                cells[col.name][row] = value
                as_written.add((col.name, row))
                frame.faulty.add(row)
                frame.expected.add((row, col.name, rule))
    df = pd.DataFrame(
        {
            name: _column(values, BY_NAME[name], typed, {r for c, r in as_written if c == name}, draw)
            for name, values in cells.items()
        }
    )
    if malformed:
        for name in df.columns:  # a malformed line's cells are all null, as the CSV reader leaves them
            df[name] = df[name].astype(object)
            df.loc[list(malformed), name] = None
        df[MALFORMED_RULE] = pd.Series([malformed.get(r) for r in range(n)], dtype=object)
        df[MALFORMED_TEXT] = pd.Series([f"raw line {r}" if r in malformed else None for r in range(n)], dtype=object)
    if not typed and draw(st.booleans()):
        df = df.astype({c: "str" for c in df.columns if c not in (MALFORMED_RULE, MALFORMED_TEXT)})
    frame.df = df
    return frame


def _column(values: list, col: ContractColumn, typed: bool, faults: set[int], draw) -> pd.Series:
    """Text input: object cells as the CSV reader gives them. Typed input: Parquet-like dtypes where they fit."""
    if not typed:
        return pd.Series(values, dtype=object)
    kind = _kind(col)
    if kind == "number":
        if all(isinstance(v, float) for v in values):
            series = pd.Series(values, dtype="float64")
            whole = series.notna().all() and (series == np.floor(series)).all() and np.isfinite(series).all()
            return series.astype("int64") if whole and draw(st.booleans()) else series
        return pd.Series(values, dtype=object)  # a text fault in a typed frame: mixed objects
    if kind == "date":
        parsed = [v if not isinstance(v, str) or r in faults else pd.Timestamp(v) for r, v in enumerate(values)]
        if any(isinstance(v, str) for v in parsed):
            return pd.Series(parsed, dtype=object)
        dates = pd.Series(pd.to_datetime(parsed, utc=True), dtype="datetime64[ns, UTC]")
        return dates.dt.tz_convert(draw(st.sampled_from(["UTC", "Europe/Paris"]))) if draw(st.booleans()) else dates
    if col.allowed is not None and all(isinstance(v, str) for v in values) and draw(st.booleans()):
        return pd.Series(values, dtype="category")  # a Parquet dictionary column read as pandas categorical
    if all(isinstance(v, str) or v is None for v in values) and draw(st.booleans()):
        return pd.Series(values, dtype="str")
    return pd.Series(values, dtype=object)


# ------------------------------------------------------------------ the property


def assert_faults_found(frame: Frame) -> ValidationResult:
    """The engines agree, every injected fault is reported under its rule, and only faulty rows are rejected."""
    result = assert_same(frame.df)
    found = result.rejects[["row_number", "column", "rule"]].itertuples(index=False)
    got = {(row - 1, column, rule) for row, column, rule in found}
    assert frame.expected <= got, f"not reported: {frame.expected - got}"
    assert set(result.rejects["row_number"] - 1) == frame.faulty
    assert result.rows_in == len(frame.df) == result.rows_valid + result.rows_rejected
    return result


RULE_KINDS = [(rule, kind) for rule in FAULTS for kind in ("text", "typed") if (rule, kind) != ("malformed", "typed")]


@pytest.mark.parametrize(("rule", "kind"), RULE_KINDS, ids=[f"{r}-{k}" for r, k in RULE_KINDS])
@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_each_rule_is_rejected_alike_by_both_engines(rule, kind, data):
    frame = data.draw(frames(kind=kind, must=rule))
    assert frame.expected, "the forced fault was injected"
    assert_faults_found(frame)


@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_property_both_engines_reject_the_same_rows_for_the_same_reasons(frame):
    assert_faults_found(frame)


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(clean=True))
def test_property_clean_frames_pass_whole_in_both_engines(frame):
    result = assert_same(frame.df)
    assert result.rejects.empty, result.rejects
    assert result.rows_valid == len(frame.df)


# ------------------------------------------------------------------ plain cases


def frame_of(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


def rejects_of(result: ValidationResult) -> set[tuple[int, str, str]]:
    return {(r, c, rule) for r, c, rule in result.rejects[["row_number", "column", "rule"]].itertuples(index=False)}


def test_engine_must_be_known():
    with pytest.raises(ValueError, match="engine must be one of fast, pandera, not 'numba'"):
        validate_frame(frame_of(applicant_id=["a"]), CONTRACT, "x", engine="numba")  # type: ignore[arg-type]


@pytest.mark.parametrize("contract", [ContractConfig(), CONTRACT], ids=["default", "extras"])
def test_plan_enforces_every_rule_of_the_schema(contract):
    """A rule added to the pandera schema without a fast counterpart fails here, column by column."""
    columns = contract_columns(contract)
    names = [c.name for c in columns]
    schema = build_schema(columns, names)
    plans = {p.column: p for p in fastcheck.compile_plan(columns, names)}
    assert list(plans) == list(schema.columns)
    for name, column in schema.columns.items():
        pandera_rules = {check.name for check in column.checks}
        pandera_rules |= {"not_null"} if not column.nullable else set()
        pandera_rules |= {"unique"} if column.unique else set()
        assert set(plans[name].rules) == pandera_rules, name


def test_default_engine_does_not_run_pandera(monkeypatch):
    def no_schema(*args, **kwargs):
        raise AssertionError("the pandera schema was built")

    monkeypatch.setattr(validate_module, "build_schema", no_schema)
    df = frame_of(applicant_id=["a", "a", "b"], age=["30", "17", "x"])
    result = validate_frame(df, CONTRACT, "x", allow_all_rejected=True)
    assert rejects_of(result) == {
        (1, "applicant_id", "unique"),
        (2, "applicant_id", "unique"),
        (2, "age", "range(18..110)"),
        (3, "age", "type:int"),
    }
    with pytest.raises(AssertionError, match="the pandera schema was built"):
        validate_frame(df, CONTRACT, "x", allow_all_rejected=True, engine="pandera")


def test_fast_engine_leaves_unexpected_dtypes_to_pandera(monkeypatch):
    typed = pd.DataFrame({"applicant_id": ["a"], "age": np.array([30], dtype="int64")})
    plans = fastcheck.compile_plan(COLUMNS, list(typed.columns))
    assert not fastcheck.supports(typed, plans)
    assert fastcheck.supports(typed.astype({"age": "float64"}).astype({"applicant_id": object}), plans)
    built = []
    monkeypatch.setattr(fastcheck, "supports", lambda typed, plans: False)
    monkeypatch.setattr(validate_module, "build_schema", lambda *a: built.append(a) or build_schema(*a))
    df = frame_of(applicant_id=["a", "b"], age=["30", "170"])
    result = validate_frame(df, CONTRACT, "x")
    assert built and rejects_of(result) == {(2, "age", "range(18..110)")}


def test_duplicated_ids_reject_every_row_and_missing_ids_are_not_duplicates():
    ids = ["a", "b", "a", None, np.nan, " a ", "", "B"]
    result = assert_same(frame_of(applicant_id=pd.Series(ids, dtype=object), age=["30"] * 8))
    assert rejects_of(result) == {
        (1, "applicant_id", "unique"),
        (3, "applicant_id", "unique"),
        (6, "applicant_id", "unique"),  # stripped before the check
        (4, "applicant_id", "not_null"),
        (5, "applicant_id", "not_null"),
        (7, "applicant_id", "not_null"),  # blank is missing
    }
    assert result.valid["applicant_id"].tolist() == ["b", "B"]


@pytest.mark.parametrize("dtype", [object, "str"])
def test_nan_and_none_are_missing_alike(dtype):
    df = frame_of(
        applicant_id=pd.Series(["a", "b", "c", "d"], dtype=dtype),
        score_band=pd.Series([None, np.nan, "3", " "], dtype=dtype),
        gender=pd.Series([np.nan, None, "f", "m"], dtype=dtype),
    )
    result = assert_same(df)
    assert rejects_of(result) == {
        (1, "score_band", "not_null"),
        (2, "score_band", "not_null"),
        (4, "score_band", "not_null"),
    }
    assert result.valid["gender"].tolist() == ["f"] and result.valid["score_band"].tolist() == [3.0]


def test_id_length_boundary_and_typed_numeric_ids():
    result = assert_same(frame_of(applicant_id=["x" * 64, "y" * 65, "é" * 64], age=[30.0, 30.0, 30.0]))
    assert rejects_of(result) == {(2, "applicant_id", RULE_MAX_LENGTH)}  # characters, not bytes
    typed = assert_same(frame_of(applicant_id=[7.0, 8.0, 7.0], age=[30.0, 40.0, 50.0]))
    assert rejects_of(typed) == {(1, "applicant_id", "unique"), (3, "applicant_id", "unique")}
    assert typed.valid["applicant_id"].tolist() == ["8"]


def test_invalid_utf8_in_text_and_in_numbers():
    df = frame_of(
        applicant_id=["a\ufffd", "b", "c"], age=["30", "3\ufffd", "40"], housing=["own", "caf\ufffd", "\ufffd"]
    )
    result = assert_same(df)
    assert rejects_of(result) == {
        (1, "applicant_id", "encoding"),
        (2, "age", "type:int"),
        (2, "housing", "encoding"),
        (2, "housing", "allowed_values"),
        (3, "housing", "encoding"),
        (3, "housing", "allowed_values"),
    }


def test_int_float_and_inf():
    df = frame_of(
        applicant_id=["a", "b", "c", "d", "e"],
        dependents=["1.5", "inf", "2", "-1", "2.0"],
        monthly_income=["1.5", "-inf", "1e400", " 7 ", "-0.0"],
        requested_amount=["0", "0.01", "1", "-1", " "],
    )
    result = assert_same(df)
    assert rejects_of(result) == {
        (1, "dependents", "integer"),
        (2, "dependents", "finite"),  # inf is reported once, as finite: not also integer or range
        (2, "monthly_income", "finite"),
        (3, "monthly_income", "finite"),
        (1, "requested_amount", "greater_than(0)"),
        (4, "dependents", "range(0..20)"),
        (4, "requested_amount", "greater_than(0)"),
    }
    assert result.valid["monthly_income"].tolist() == [-0.0] and result.valid["requested_amount"].isna().all()


def test_typed_numbers_dates_and_categories():
    df = frame_of(
        applicant_id=pd.Series(["a", "b", "c", "d"], dtype="str"),
        age=np.array([30, 17, 40, 50], dtype="int64"),
        monthly_income=[np.inf, 1.0, np.nan, -2.0],
        application_date=pd.to_datetime(["2024-01-01T23:30:00+02:00", None, "2024-03-01T00:00:00Z", None], utc=True),
        housing=pd.Series(["Own", "rent", "castle", None], dtype="category"),
    )
    result = assert_same(df)
    assert rejects_of(result) == {
        (1, "monthly_income", "finite"),
        (2, "age", "range(18..110)"),
        (3, "housing", "allowed_values"),
        (4, "monthly_income", "min(0)"),
    }
    assert str(result.valid["application_date"].dtype) == "datetime64[ns]"
    assert result.valid["housing"].tolist() == []  # every row had a fault


def test_dates_with_utc_offsets_are_utc_in_both_engines():
    dates = ["2024-01-01T23:30:00+02:00", "2024-01-02T01:00:00-05:00", "2024-01-03", "2024-02-30", None]
    result = assert_same(frame_of(applicant_id=list("abcde"), application_date=dates))
    assert rejects_of(result) == {(4, "application_date", "type:date")}
    assert result.valid["application_date"].tolist()[:3] == [
        pd.Timestamp("2024-01-01 21:30:00"),
        pd.Timestamp("2024-01-02 06:00:00"),
        pd.Timestamp("2024-01-03 00:00:00"),
    ]
    assert result.valid["application_date"].isna().tolist() == [False, False, False, True]


def test_categories_take_the_canonical_spelling_and_rejects_keep_the_raw_value():
    df = frame_of(
        applicant_id=list("abcd"), housing=[" OWN ", "Rent", " castle ", None], channel=["web", "WEB", "Web", "fax"]
    )
    result = assert_same(df)
    assert result.valid["housing"].tolist() == ["own", "rent"]
    assert result.valid["channel"].tolist() == ["Web", "Web"]
    assert result.rejects[["row_number", "column", "value"]].values.tolist() == [
        [3, "housing", " castle "],
        [4, "channel", "fax"],
    ]


CSV = (
    b"applicant_id,age,housing,application_date,gender\n"
    b"A1,30,own,2024-01-01,f\n"
    b"A2,30,OWN,2024-01-01T10:00:00+02:00,caf\xe9\n"
    b"A1,17,castle,2024-02-30,m\n"
    b'A4,"30,own,2024-01-01,f\n'
    b"A5,30,own,2024-01-01,f,extra\n"
    b"" + b"Z" * 65 + b",1.5,rent,2024-01-01,\n"
    b"A7, 44 , Rent ,2024-01-01T23:00:00Z,m\n"
)


def test_csv_file_as_the_reader_gives_it(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(CSV)
    result = assert_same(read_csv_text(path))
    assert rejects_of(result) == {
        (1, "applicant_id", "unique"),
        (3, "applicant_id", "unique"),
        (2, "gender", "encoding"),
        (3, "age", "range(18..110)"),
        (3, "housing", "allowed_values"),
        (3, "application_date", "type:date"),
        (4, LINE_COLUMN, "malformed_line: unclosed quote"),
        (5, LINE_COLUMN, "malformed_line: expected 5 fields, got 6"),
        (6, "applicant_id", RULE_MAX_LENGTH),
        (6, "age", "integer"),
        (6, "age", "range(18..110)"),
    }
    assert result.valid[["row_number", "age", "housing"]].values.tolist() == [[7, 44.0, "rent"]]
    assert str(result.valid["application_date"].iloc[0]) == "2024-01-01 23:00:00"


def test_parquet_file_with_typed_columns(tmp_path):
    df = frame_of(
        applicant_id=["a", "b", "a", None, "e"],
        age=[30.0, np.nan, np.inf, 17.0, 40.5],
        dependents=np.array([0, 1, 2, 3, 40], dtype="int64"),
        application_date=pd.to_datetime(["2024-01-01T10:00:00+02:00", None, None, None, None], utc=True),
        housing=pd.Series(["own", "Rent", "own", "castle", None], dtype="category"),
    )
    path = tmp_path / "a.parquet"
    df.to_parquet(path)
    result = assert_same(read_parquet(path))
    assert rejects_of(result) == {
        (1, "applicant_id", "unique"),
        (3, "applicant_id", "unique"),
        (3, "age", "finite"),
        (4, "applicant_id", "not_null"),
        (4, "age", "range(18..110)"),
        (4, "housing", "allowed_values"),
        (5, "age", "integer"),
        (5, "dependents", "range(0..20)"),
    }
    assert result.valid["housing"].tolist() == ["rent"] and result.valid["age"].isna().all()


@pytest.mark.parametrize("engine", ["fast", "pandera"])
def test_wide_valid_frame_is_not_fragmented(engine):
    """Over 100 contract columns: the valid frame is one block per dtype, so adding a column does not warn."""
    contract = ContractConfig(history_months=24, extras=[{"name": f"x{i}"} for i in range(30)])
    names = [c.name for c in contract_columns(contract)]
    df = pd.DataFrame({name: ["1"] * 3 for name in names if name != "application_date"})
    df = df.assign(applicant_id=["a", "b", "c"], age=["30", "5", "40"], housing="own")
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        result = validate_frame(df, contract, "wide", engine=engine)
        result.valid["extra"] = 1.0
    assert len(names) > 100 and result.rows_valid == 2 and result.valid._mgr.nblocks <= 5


@pytest.mark.parametrize("dtype", [object, "str"])
def test_byte_shortcuts_give_the_kernels_results(dtype):
    """The whole-column byte checks (nothing to strip, no replacement character, no cell over the limit) only ever
    skip a kernel that would have changed nothing: edge whitespace of any kind, blanks, long and multi-byte cells
    come out as the reference text coercion gives them, also for a slice of a larger array."""
    cells = ["a", " b", "c ", "\u00a0d", "e\u3000", "\x1cf", "", "  ", None, "caf\ufffd", "é" * 64, "é" * 65, "x y"]
    for subset in (cells, cells[:3], ["plain", "text", None], ["é" * 40, "ok"], []):
        raw = pd.Series(subset, dtype=dtype)
        text = fastcheck._stripped(raw)
        reference = validate_module._as_text(raw)
        assert text is not None
        got = text.to_pylist()
        assert got == reference.astype(object).where(reference.notna(), None).tolist()
        assert fastcheck._contains(text, "\ufffd").tolist() == [v is not None and "\ufffd" in v for v in got]
        assert fastcheck._longer(text, 64).tolist() == [v is not None and len(v) > 64 for v in got]
    sliced = pa.array(["  x  ", "\ufffd", "y", "é" * 70])[2:3]
    assert fastcheck._contains(sliced, "\ufffd").tolist() == [False]
    assert fastcheck._longer(sliced, 64).tolist() == [False]


def test_number_checks_at_the_bounds_and_with_inf_and_nan():
    """The reductions that settle a clean column agree with the cell-by-cell checks at the edges."""
    df = frame_of(
        applicant_id=list("abcdefg"),
        age=[18.0, 110.0, np.nan, 17.999999, 110.5, np.inf, -0.0],
        requested_amount=[np.nan, 5e-324, 1.0, np.nan, np.nan, 2.0**53, 1e308],
        dependents=[0.0, 20.0, np.nan, 2.5, -np.inf, 2.0**53 + 2, -0.0],
    )
    result = assert_same(df)
    assert rejects_of(result) == {
        (4, "age", "range(18..110)"),
        (4, "age", "integer"),
        (4, "dependents", "integer"),
        (5, "age", "range(18..110)"),
        (5, "age", "integer"),
        (5, "dependents", "finite"),  # -inf: finite only, not also range or integer
        (6, "age", "finite"),
        (6, "dependents", "range(0..20)"),  # 2**53 + 2: whole, out of range
        (7, "age", "range(18..110)"),  # -0.0
    }
