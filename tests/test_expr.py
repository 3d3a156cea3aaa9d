"""Derived-column expressions: semantics on text frames, whitelist errors that point at the token, and safety."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpers import examples
from pipeline.data.sources import expr as expr_module
from pipeline.data.sources.expr import FUNCTIONS, Expression, parse
from pipeline.errors import ConfigError, DataContractError

NAN = float("nan")


def values(text: str, **columns) -> list[float]:
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})
    return parse(text).evaluate(frame).tolist()


def same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


# ---- semantics


def test_product_of_text_columns_and_the_columns_it_reads():
    e = parse("DebtRatio * MonthlyIncome", "monthly_debt_payments")
    assert e.columns == ("DebtRatio", "MonthlyIncome")
    frame = pd.DataFrame({"DebtRatio": ["0.5", "0.25"], "MonthlyIncome": ["4000", " 1000 "], "other": ["x", "y"]})
    out = e.evaluate(frame)
    assert out.tolist() == [2000.0, 250.0] and out.dtype == float and out.name == "monthly_debt_payments"
    assert list(out.index) == list(frame.index)


def test_columns_are_listed_once_in_order_of_first_use():
    assert parse("b + a * b - `c d` / a").columns == ("b", "a", "c d")


def test_backquoted_names_with_spaces_odd_characters_keywords_and_backquotes():
    frame = pd.DataFrame(
        {"Monthly Income": ["100"], "2nd-loan (EUR)": ["5"], "class": ["2"], "a`b": ["3"], "min": ["7"]}
    )
    e = parse("`Monthly Income` + `2nd-loan (EUR)` * `class` - `a``b` + min")
    assert e.columns == ("Monthly Income", "2nd-loan (EUR)", "class", "a`b", "min")
    assert e.evaluate(frame).tolist() == [100 + 5 * 2 - 3 + 7]


def test_a_placeholder_never_clashes_with_a_name_the_user_wrote():
    frame = pd.DataFrame({"_bq0_": ["1"], "x y": ["10"]})
    assert parse("_bq0_ + `x y`").evaluate(frame).tolist() == [11.0]


def test_text_that_is_not_a_number_becomes_nan_or_is_kept_for_validation():
    frame = pd.DataFrame({"a": ["1", "n/a", None, "4"], "b": ["2", "2", "2", "x"]})
    e = parse("a * b")
    assert same(e.evaluate(frame).tolist(), [2.0, NAN, NAN, NAN])
    kept = e.evaluate(frame, unparsed="keep").tolist()
    assert kept[0] == 2.0 and kept[1] == "n/a" and math.isnan(kept[2]) and kept[3] == "x"


def test_numeric_and_boolean_columns_are_used_as_they_are():
    frame = pd.DataFrame({"a": [1.5, np.nan], "flag": [True, False]})
    assert same(parse("a + flag").evaluate(frame).tolist(), [2.5, NAN])


def test_division_by_zero_is_nan_not_inf_but_overflow_stays_inf():
    assert same(values("a / b", a=["1", "0", "-1", "4"], b=["0", "0", "0", "2"]), [NAN, NAN, NAN, 2.0])
    assert same(values("a // b", a=["7", "7"], b=["0", "2"]), [NAN, 3.0])
    assert same(values("a % b", a=["7", "-7"], b=["0", "3"]), [NAN, 2.0])  # Python's sign convention
    assert values("exp(a)", a=["1000"]) == [math.inf]  # validation's `finite` rule rejects it


def test_precedence_is_pythons():
    assert values("-a ** 2 + 2 * 3", a=["3"]) == [-9 + 6]
    assert values("a - b - c", a=["10"], b=["3"], c=["2"]) == [5.0]


def test_comparisons_and_logic_are_three_valued():
    a = ["1", "5", None]
    assert same(values("a > 2", a=a), [0.0, 1.0, NAN])
    assert same(values("0 < a <= 1", a=a), [1.0, 0.0, NAN])
    assert same(values("not a > 2", a=a), [1.0, 0.0, NAN])
    # false and unknown is false; true or unknown is true
    assert same(values("a > 2 and b > 0", a=a, b=["1", "1", "1"]), [0.0, 1.0, NAN])
    assert same(values("a > 2 and b > 0", a=a, b=["-1", "-1", "-1"]), [0.0, 0.0, 0.0])
    assert same(values("a > 2 or b > 0", a=a, b=["1", "1", "1"]), [1.0, 1.0, 1.0])
    assert same(values("a == 5 or a != 5", a=a), [1.0, 1.0, NAN])


def test_conditional_with_unknown_condition_is_missing_not_the_else_branch():
    a = ["10", "-3", None]
    assert same(values("a if a > 0 else 0", a=a), [10.0, 0.0, NAN])
    assert same(values("where(a > 0, a, 0)", a=a), [10.0, 0.0, NAN])
    assert same(values("where(a, 1, 2)", a=["0", "7", None]), [2.0, 1.0, NAN])  # any non-zero is true


def test_min_max_skip_missing_arguments():
    a, b = ["1", None, None, "9"], ["3", "4", None, "2"]
    assert same(values("min(a, b)", a=a, b=b), [1.0, 4.0, NAN, 2.0])
    assert same(values("max(a, b, 5)", a=a, b=b), [5.0, 5.0, 5.0, 9.0])


def test_functions_on_missing_and_out_of_domain_values():
    x = ["-4", "0", "2.5", None]
    assert same(values("abs(x)", x=x), [4.0, 0.0, 2.5, NAN])
    assert same(values("clip(x, 0, 2)", x=x), [0.0, 0.0, 2.0, NAN])
    assert same(values("clip(x, lo, 1)", x=x, lo=[None, None, None, "0"]), [-4.0, 0.0, 1.0, NAN])  # missing bound
    assert same(values("isnull(x)", x=x), [0.0, 0.0, 0.0, 1.0])
    assert same(values("notnull(x)", x=x), [1.0, 1.0, 1.0, 0.0])
    assert same(values("fillna(x, 7)", x=x), [-4.0, 0.0, 2.5, 7.0])
    assert same(values("log(x)", x=x), [NAN, NAN, math.log(2.5), NAN])
    assert same(values("sqrt(x)", x=x), [NAN, 0.0, math.sqrt(2.5), NAN])
    assert same(values("floor(x) + ceil(x)", x=x), [-8.0, 0.0, 5.0, NAN])
    assert values("round(x, 1)", x=["1.26"]) == [1.3]
    assert values("round(x)", x=["2.5"]) == [2.0]  # half to even, as Python and numpy


def test_constant_expression_fills_every_row():
    assert parse("12 * 2").evaluate(pd.DataFrame({"a": ["1", "2"]})).tolist() == [24.0, 24.0]
    assert parse("True + 1").evaluate(pd.DataFrame(index=range(1))).tolist() == [2.0]


def test_empty_frame_gives_empty_series():
    assert parse("a + 1").evaluate(pd.DataFrame({"a": pd.Series([], dtype=object)})).tolist() == []


def test_multi_line_yaml_block_and_leading_spaces():
    assert values("  (a +\n   b)\n", a=["1"], b=["2"]) == [3.0]


# ---- errors name the column, the token and its position


@pytest.mark.parametrize(
    ("text", "token", "position"),
    [
        ("DebtRatio * __import__(1)", "'__import__'", 13),
        ("x.__class__", "'x.__class__'", 1),
        ("a + b.real", "'b.real'", 5),
        ("a + x[0]", "'x[0]'", 5),
        ("(lambda: 1)()", "lambda", 2),
        ("a + [v for v in b]", "comprehension", 5),
        ("a + sum(b)", "'sum'", 5),
        ("eval(a)", "'eval'", 1),
        ("a & b", "'&'", 3),
        ("a | b", "'|'", 3),
        ("~a", "'~'", 1),
        ("a in b", "'in'", 3),
        ("a is None", "'is'", 3),
        ('a == "own"', "'\"own\"'", 6),
        ("`Monthly Income` + x.y", "'x.y'", 20),
        ("é + __x", "'__x'", 5),
        ("a +* b", "syntax error", 4),
        ("a + `b", "unclosed backquote", 5),
        ("a + ``", "empty column name", 5),
        ("a # note", "comment", 3),
        ("(x := 1)", "':='", 2),
        ("a + {1: 2}", "dict", 5),
        ("f'{a}'", "f-string", 1),
        ("a + 1j", "'1j'", 5),
        ("a + None", "'None'", 5),
        ("a + 1e999", "out of range", 5),
        ("clip(a, 1)", "clip(x, lo, hi) takes 3", 1),
        ("min(a)", "at least 2", 1),
        ("round(a, b)", "whole number", 10),
        ("round(a, n=2)", "'n=2'", 10),
        ("clip(a, 5, 1)", "lo 5 is above hi 1", 9),
        ("maximum(a, b)", "did you mean 'max'", 1),
        ("`min`(a, b)", "'`min`'", 1),
        ("min(*a)", "unpacking", 5),
    ],
)
def test_error_names_column_token_and_position(text, token, position):
    with pytest.raises(ConfigError) as err:
        parse(text, "monthly_debt_payments")
    message = str(err.value)
    assert message.startswith(f"columns.monthly_debt_payments: expr {text!r}: ")
    assert token in message
    assert f"(position {position})" in message


def test_error_lists_what_is_allowed():
    with pytest.raises(ConfigError) as err:
        parse("DebtRatio * __import__(1)", "monthly_debt_payments")
    assert str(err.value).startswith(
        "columns.monthly_debt_payments: expr 'DebtRatio * __import__(1)': function '__import__' is not allowed "
        "(position 13); allowed: abs(x), "
    )
    for name in FUNCTIONS:
        assert name in str(err.value)


def test_empty_and_overlong_text_are_config_errors():
    for bad in ["", "   ", None]:
        with pytest.raises(ConfigError, match="columns.x: expr must be a non-empty text"):
            parse(bad, "x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="longer than"):
        parse("+".join(["a"] * 3000), "x")
    with pytest.raises(ConfigError, match="nested too deeply|syntax error"):
        parse("(" * 900 + "a" + ")" * 900, "x")


def test_missing_source_column_names_it_and_close_matches():
    e = parse("DebtRatio * MonthlyIncome + `Num Loans`", "monthly_debt_payments")
    with pytest.raises(DataContractError) as err:
        e.check_columns(["debtratio", "Monthly_Income", "Num Loans", "age"], origin="data/x.csv")
    message = str(err.value)
    assert message.startswith("data/x.csv: columns.monthly_debt_payments: expr ")
    assert "source column 'DebtRatio' is not in the file (close matches: 'debtratio')" in message
    assert "source column 'MonthlyIncome' is not in the file (close matches: 'Monthly_Income')" in message
    assert "Num Loans" not in message.split("expr ")[1].split(": ", 1)[1]


def test_missing_column_without_close_match_and_evaluate_checks_first():
    e = parse("zzz + 1", "age")
    with pytest.raises(DataContractError, match=r"source column 'zzz' is not in the file \(no close match\)"):
        e.evaluate(pd.DataFrame({"income": ["1"]}))


# ---- property: the evaluator equals the equivalent numpy expression

COLUMNS = ["a", "b", "c"]


def _ref_div(x, y, op=np.true_divide):
    with np.errstate(all="ignore"):
        return np.where(y == 0, np.nan, op(x, np.where(y == 0, 1.0, y)))


def _ref_cmp(op):
    def compare(x, y):
        with np.errstate(all="ignore"):
            return np.where(np.isnan(x) | np.isnan(y), np.nan, op(x, y).astype(float))

    return compare


BINARY_REF = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": _ref_div,
    "//": lambda x, y: _ref_div(x, y, np.floor_divide),
    "%": lambda x, y: _ref_div(x, y, np.mod),
    "<": _ref_cmp(np.less),
    ">=": _ref_cmp(np.greater_equal),
    "==": _ref_cmp(np.equal),
}
UNARY_REF = {
    "abs": np.abs,
    "isnull": lambda x: np.isnan(x).astype(float),
    "sqrt": lambda x: np.sqrt(np.where(x >= 0, x, np.nan)),
    "floor": np.floor,
    "-": np.negative,
}


def _leaf():
    column = st.sampled_from(COLUMNS).map(lambda c: (c, lambda cols, c=c: cols[c]))
    number = st.sampled_from([0, 1, 2, 0.5, 3.25, 10]).map(lambda v: (repr(v), lambda cols, v=v: np.float64(v)))
    return column | number


def _extend(children):
    def binary(op, left, right):
        return (f"({left[0]} {op} {right[0]})", lambda cols: BINARY_REF[op](left[1](cols), right[1](cols)))

    def unary(name, inner):
        text = f"(-{inner[0]})" if name == "-" else f"{name}({inner[0]})"
        return (text, lambda cols: UNARY_REF[name](inner[1](cols)))

    def fn2(name, x, y):
        ref = {"min": np.fmin, "max": np.fmax, "fillna": lambda p, q: np.where(np.isnan(p), q, p)}[name]
        return (f"{name}({x[0]}, {y[0]})", lambda cols: ref(x[1](cols), y[1](cols)))

    return (
        st.builds(binary, st.sampled_from(sorted(BINARY_REF)), children, children)
        | st.builds(unary, st.sampled_from(sorted(UNARY_REF)), children)
        | st.builds(fn2, st.sampled_from(["min", "max", "fillna"]), children, children)
    )


EXPRESSIONS = st.recursive(_leaf(), _extend, max_leaves=8)
CELL = st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.sampled_from([0.0, -1.0, 2.0, np.nan]))


@settings(max_examples=examples(300), deadline=None)
@given(EXPRESSIONS, st.integers(1, 6).flatmap(lambda n: st.lists(st.tuples(CELL, CELL, CELL), min_size=n, max_size=n)))
def test_evaluator_equals_numpy(expression, rows):
    text, reference = expression
    frame = pd.DataFrame(rows, columns=COLUMNS).astype(str)  # as read from CSV: text (NaN becomes "nan")
    cols = {c: pd.to_numeric(frame[c]).to_numpy(dtype=float) for c in COLUMNS}
    with np.errstate(all="ignore"):
        expected = np.broadcast_to(np.asarray(reference(cols), dtype=float), (len(frame),))
    got = parse(text).evaluate(frame).to_numpy()
    np.testing.assert_array_equal(got, expected)


# ---- property: nothing outside the whitelist passes

IDENT = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
DUNDER = st.sampled_from(["__import__", "__class__", "__builtins__", "__globals__", "__subclasses__", "__dict__"])
FORBIDDEN = [
    "{d}",
    "{d}()",
    "{x}.{d}",
    "{x}.{y}",
    "{x}.{y}()",
    "{x}[{y}]",
    "{x}[0]",
    "{x}[1:2]",
    "(lambda {x}: {x})({y})",
    "lambda: {x}",
    "[{x} for {x} in {y}]",
    "{{{x} for {x} in {y}}}",
    "({x} for {x} in {y})",
    "{{{x}: 1 for {x} in {y}}}",
    "{y}({x})",
    "{y}()",
    "min({x}, {y}).{d}",
    "abs({x}).real",
    "min({x}, {y}({x}))",
    "({x} := {y})",
    "{x} + open({y})",
    "getattr({x}, '{d}')",
]


@settings(max_examples=examples(400), deadline=None)
@given(st.sampled_from(FORBIDDEN), IDENT, IDENT, DUNDER)
def test_forbidden_constructs_never_parse(template, x, y, d):
    if y in FUNCTIONS and template in ("{y}({x})", "{y}()", "min({x}, {y}({x}))"):
        y = y + "_"  # a whitelisted function of the right arity is allowed by design
    with pytest.raises(ConfigError):
        parse(template.format(x=x, y=y, d=d), "t")


ALLOWED_NODES = (
    ast.Expression,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)
FUZZ_ALPHABET = st.sampled_from(
    list("ab_x01.+-*/%<>=!&|~^@()[]{}:,'\"`# \n") + ["if ", " else ", "lambda", "__", "min", "not "]
)


@settings(max_examples=examples(1500), deadline=None)
@given(st.lists(FUZZ_ALPHABET, max_size=25).map("".join))
@example("min(a, 1) + x")  # accepted: a call, a constant and names always reach the checks below
@example("__import__('a')")  # rejected
def test_any_text_is_rejected_or_only_whitelisted(text):
    try:
        e = parse(text, "t")
    except ConfigError as err:
        assert repr(text) in str(err)  # a rejection names the expression it refuses
        return
    for node in ast.walk(e.tree):
        assert isinstance(node, ALLOWED_NODES), ast.dump(node)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, int | float)
        if isinstance(node, ast.Name) and node.id not in e.names:
            assert not node.id.startswith("__")
    frame = pd.DataFrame({c: ["1", "0", None] for c in e.columns}, index=range(3))
    assert len(e.evaluate(frame)) == 3  # whatever passes, evaluates without error


def test_module_never_evaluates_or_compiles_text():
    modules = sorted(Path(expr_module.__file__).parent.glob("expr*.py"))  # expr, expr_check, expr_eval
    assert [m.name for m in modules] == ["expr.py", "expr_check.py", "expr_eval.py"]
    for module in modules:
        tree = ast.parse(module.read_text(encoding="utf-8"))
        called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert not called & {"eval", "exec", "compile", "__import__"}, module  # getattr dispatches on node types
    assert isinstance(parse("a"), Expression)
