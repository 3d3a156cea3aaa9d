"""Offer search: invariants as hypothesis properties, plus worked cases of the search order and decline reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpers import examples
from pipeline.decision import pricing
from pipeline.decision.offers import OFFER_COLUMNS, OfferInputs, offer_inputs_from_frame, search_offers
from pipeline.decision.products import Product, ProductsConfig

CFG = ProductsConfig()
LOAN = CFG.products["instalment_loan"]
LINE = CFG.products["revolving_line"]
CUTOFF = 0.25
ROUNDING_APR = 0.0005  # 0.05 pp: what rounding payments to the cent can move an APR on loans of 1,000 or more


def applicant(**kw: object) -> dict:
    base = {
        "pd": 0.05, "grade_index": 1, "monthly_income": 4000.0, "monthly_debt_payments": 200.0, "living_cost": 850.0,
        "requested_amount": 10_000.0, "requested_term_months": 24.0, "product": "instalment_loan",
        "limit_cap": np.nan,
    }  # fmt: skip
    return {**base, **kw}


def run(rows: list[dict], cfg: ProductsConfig = CFG, cutoff: float | None = CUTOFF) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    arrays = {c: frame[c].to_numpy() for c in frame.columns}
    arrays["product"] = arrays["product"].astype(object)
    arrays["grade_index"] = arrays["grade_index"].astype(int)
    for c in ("pd", "monthly_income", "monthly_debt_payments", "living_cost", "requested_amount",
              "requested_term_months", "limit_cap"):  # fmt: skip
        arrays[c] = arrays[c].astype(float)
    return search_offers(OfferInputs(**arrays), cfg, pd_cutoff=cutoff)


def one(cfg: ProductsConfig = CFG, **kw: object) -> dict:
    return run([applicant(**kw)], cfg).iloc[0].to_dict()


def instalment_payment(amount: float, grade: int, term: int, product: Product = LOAN) -> float:
    fee = pricing.arrangement_fee(amount, product.arrangement_fee, product.arrangement_fee_rate)
    return float(pricing.payment_cents(amount + fee, product.apr_by_grade[grade], term)[()]) / 100


def affordable(row: dict, payment: float, cfg: ProductsConfig = CFG) -> bool:
    s = cfg.search
    income, debt = row["monthly_income"], row["monthly_debt_payments"]
    return (debt + payment) / income <= s.max_payment_to_income and (
        income - row["living_cost"] - debt - payment >= s.min_residual_income
    )


# ---------------------------------------------------------------- worked cases: the search order


def test_a_request_that_fits_is_approved_as_asked() -> None:
    out = one()
    assert (out["offer_type"], out["offer_amount"], out["offer_term_months"]) == ("approve", 10_000, 24)
    assert out["offer_reasons"] == "approved as requested"
    assert out["interest_rate"] == LOAN.apr_by_grade[1]
    assert out["fees"] == 100.0  # 1% arrangement fee, added to the balance
    sched = pricing.schedule(10_100.0, LOAN.apr_by_grade[1], 24)
    assert out["monthly_payment"] == sched["payment"].iloc[0]
    assert out["total_to_repay"] == pytest.approx(sched["payment"].sum())


def test_b_longer_term_at_the_same_amount_shortest_first() -> None:
    """20,000 over 12 months costs ~1,770 a month, above the 1,400 room: 24 months (931) is the first that fits."""
    out = one(requested_amount=20_000.0, requested_term_months=12.0)
    assert (out["offer_type"], out["offer_amount"], out["offer_term_months"]) == ("counter_offer", 20_000, 24)
    assert out["offer_reasons"] == "term extended from 12 to 24 months to keep the payment affordable"


def test_c_largest_affordable_amount_prefers_the_larger_amount() -> None:
    """Room of 300 a month: 25,000 fits no term, so the largest amount wins, which is at the longest term."""
    row = applicant(monthly_income=2000.0, monthly_debt_payments=500.0, requested_amount=25_000.0)
    out = run([row]).iloc[0]
    assert out["offer_type"] == "counter_offer" and out["offer_term_months"] == 60
    assert out["offer_amount"] % LOAN.amount_step == 0
    assert affordable(row, out["monthly_payment"])
    assert not affordable(row, instalment_payment(out["offer_amount"] + LOAN.amount_step, 1, 60))
    assert out["offer_codes"] == "TERM_EXTENDED;AMOUNT_REDUCED"
    assert "keeps debt payments within 40% of income" in out["offer_reasons"]


def test_c_a_tie_goes_to_the_shorter_term() -> None:
    """30,000 is above the 25,000 maximum; 25,000 is affordable at 12 months and longer: 12 months wins."""
    out = one(monthly_income=20_000.0, requested_amount=30_000.0, requested_term_months=12.0)
    assert (out["offer_amount"], out["offer_term_months"]) == (25_000, 12)
    assert out["offer_reasons"] == "amount reduced from 30,000 to 25,000, the product maximum"


def test_a_payment_that_rounds_up_past_the_room_is_not_approved() -> None:
    """10,100 over 24 months at 9.9% is 465.5977 exactly, 465.60 once rounded up to the cent. With a room of
    465.599 the exact payment fits but the real one does not: the request moves to 36 months, not approved."""
    room = 465.599
    out = one(monthly_income=10_000.0, monthly_debt_payments=4000.0 - room)
    assert (out["offer_type"], out["offer_amount"], out["offer_term_months"]) == ("counter_offer", 10_000, 36)
    assert out["monthly_payment"] <= room


def test_a_term_the_product_does_not_offer_becomes_the_nearest_longer_one() -> None:
    out = one(requested_term_months=18.0)
    assert (out["offer_type"], out["offer_term_months"]) == ("counter_offer", 24)
    assert out["offer_reasons"] == "a term of 18 months is not offered; the nearest is 24 months"


def test_the_risk_limit_caps_the_offer() -> None:
    out = one(limit_cap=6_123.0)
    assert out["offer_amount"] == 6_000
    assert out["offer_reasons"] == "amount reduced from 10,000 to 6,000, the credit limit for the risk grade"


def test_missing_amount_falls_back_to_the_largest_amount_at_the_default_term() -> None:
    out = one(requested_amount=np.nan, requested_term_months=np.nan, monthly_income=2000.0)
    assert out["offer_type"] == "approve" and out["offer_term_months"] == LOAN.default_term_months
    assert out["offer_codes"] == "NO_AMOUNT_REQUESTED"
    row = applicant(monthly_income=2000.0)
    assert affordable(row, out["monthly_payment"])
    assert not affordable(row, instalment_payment(out["offer_amount"] + LOAN.amount_step, 1, 36))


# ---------------------------------------------------------------- worked cases: declines name the rule and the figures


def test_decline_names_payment_to_income_and_by_how_much() -> None:
    out = one(monthly_income=3000.0, monthly_debt_payments=1250.0, living_cost=600.0)
    assert out["offer_type"] == "decline" and np.isnan(out["offer_amount"])
    assert out["offer_codes"] == "PTI_CAP"
    expected = "payment-to-income 0.424 above the cap 0.400 at the smallest amount 1,000 over 60 months"
    assert out["offer_reasons"] == expected


def test_decline_names_residual_income() -> None:
    out = one(monthly_income=1500.0, monthly_debt_payments=400.0, living_cost=1100.0)
    assert out["offer_codes"] == "RESIDUAL_INCOME"
    assert out["offer_reasons"] == (
        "income left after living costs and debts -21.41 below the minimum 100.00 at the smallest amount 1,000 "
        "over 60 months"
    )


def test_decline_on_pd_and_on_small_requests() -> None:
    out = one(pd=0.4)
    assert out["offer_reasons"] == "estimated probability of default 0.400 is above the cutoff 0.250"
    out = one(requested_amount=300.0)
    assert out["offer_reasons"] == "requested amount 300 is below the product minimum 1,000"
    out = one(limit_cap=400.0)
    assert out["offer_codes"] == "LIMIT_BELOW_MIN"
    out = one(product="payday_loan")
    assert (out["offer_type"], out["offer_reasons"]) == ("decline", "product 'payday_loan' is not offered")


def _unknown_income(mode: str) -> ProductsConfig:
    return CFG.model_copy(update={"search": CFG.search.model_copy(update={"unknown_income": mode})})


def test_unknown_income_declines_caps_at_the_minimum_or_at_the_risk_limit_as_configured() -> None:
    out = one(_unknown_income("decline"), monthly_income=np.nan)
    assert (out["offer_type"], out["offer_reasons"]) == ("decline", "income unknown: affordability cannot be checked")
    lenient = _unknown_income("product_minimum")
    out = one(lenient, monthly_income=np.nan)
    assert (out["offer_type"], out["offer_amount"], out["offer_term_months"]) == ("counter_offer", 1000, 24)
    assert out["offer_reasons"] == "amount reduced from 10,000 to 1,000, the product minimum, as income is unknown"
    assert one(lenient, monthly_income=np.nan, requested_amount=1000.0)["offer_type"] == "approve"
    # The default follows the policy's unknown_income: table_limit: the grade's risk limit bounds the offer.
    assert CFG.search.unknown_income == "risk_limit"
    out = one(monthly_income=np.nan, limit_cap=4000.0)
    assert (out["offer_type"], out["offer_amount"]) == ("counter_offer", 4000)
    assert "the credit limit for the risk grade" in out["offer_reasons"]
    assert one(monthly_income=np.nan, limit_cap=np.nan)["offer_type"] == "approve"  # within the product maximum


# ---------------------------------------------------------------- revolving


def test_revolving_limit_and_minimum_payment_disclosure() -> None:
    out = one(product="revolving_line", requested_amount=5_000.0, requested_term_months=np.nan, grade_index=0)
    assert (out["offer_type"], out["offer_amount"]) == ("approve", 5_000)
    assert np.isnan(out["offer_term_months"])
    assert out["apr"] == LINE.apr_by_grade[0]  # Reg Z open-end: periodic rate x 12
    months, total = pricing.repay_at_minimum(5_000.0, LINE.apr_by_grade[0], 0.05, 25.0, 1200)
    assert (out["months_to_repay"], out["total_to_repay"]) == (months[0], total[0])
    assert out["monthly_payment"] == pytest.approx(0.05 * (5000 + np.floor(5000 * 100 * 0.199 / 12) / 100), abs=0.01)


def test_revolving_above_the_request_only_when_allowed() -> None:
    row = {"product": "revolving_line", "requested_amount": 2_000.0, "requested_term_months": np.nan}
    assert one(**row)["offer_amount"] == 2_000
    generous = CFG.model_copy(
        update={"products": {**CFG.products, "revolving_line": LINE.model_copy(update={"allow_above_request": True})}}
    )
    out = one(generous, **row)
    assert out["offer_type"] == "approve" and out["offer_amount"] > 2_000
    assert out["offer_codes"] == "AMOUNT_RAISED"


def test_eu_method_discloses_the_annual_effective_rate() -> None:
    eu = CFG.model_copy(update={"apr_method": "eu_aprc"})
    reg_z, aprc = one()["apr"], one(eu)["apr"]
    assert aprc == pytest.approx((1 + reg_z / 12) ** 12 - 1, abs=1e-9)
    line = one(eu, product="revolving_line", requested_amount=5_000.0, requested_term_months=np.nan, grade_index=0)
    assert line["apr"] == pytest.approx((1 + 0.199 / 12) ** 12 - 1, abs=1e-4)  # 12 equal instalments, no fee


def test_inputs_from_a_contract_frame_and_the_output_contract() -> None:
    df = pd.DataFrame({"monthly_income": [4000.0], "monthly_debt_payments": [200.0], "requested_amount": [10_000.0],
                       "requested_term_months": [24]})  # fmt: skip
    inp = offer_inputs_from_frame(df, np.array([0.05]), np.array([1]), np.array([850.0]), np.array([np.nan]), CFG)
    out = search_offers(inp, CFG, pd_cutoff=CUTOFF)
    assert list(out.columns) == OFFER_COLUMNS
    assert out.loc[0, "product"] == CFG.default_product and out.loc[0, "offer_type"] == "approve"
    with pytest.raises(ValueError, match="exactly one"):
        search_offers(inp, CFG)


# ---------------------------------------------------------------- properties

applicants = st.fixed_dictionaries(
    {
        "pd": st.floats(0.0, 0.4),
        "grade_index": st.integers(0, 4),
        "monthly_income": st.floats(300.0, 15_000.0),
        "monthly_debt_payments": st.floats(0.0, 3_000.0),
        "living_cost": st.floats(600.0, 2_000.0),
        "requested_amount": st.integers(1, 800).map(lambda k: k * 50.0),
        "requested_term_months": st.sampled_from([6.0, 12.0, 18.0, 24.0, 36.0, 48.0, 60.0, 72.0]),
        "product": st.sampled_from(["instalment_loan", "revolving_line"]),
        "limit_cap": st.one_of(st.just(np.nan), st.floats(0.0, 30_000.0)),
    }
)


@settings(max_examples=examples(120), deadline=None)
@given(rows=st.lists(applicants, min_size=1, max_size=12))
# approved instalment, decline, approved revolving line: every branch below runs
@example(rows=[applicant(), applicant(pd=0.3), applicant(product="revolving_line", requested_amount=3_000.0)])
def test_property_offers_obey_every_rule(rows: list[dict]) -> None:
    out = run(rows)
    for row, (_, o) in zip(rows, out.iterrows(), strict=True):
        product = CFG.products[row["product"]]
        if o["offer_type"] == "decline":
            assert np.isnan(o["offer_amount"]) and o["offer_reasons"]
            continue
        assert row["pd"] <= CUTOFF
        assert product.min_amount <= o["offer_amount"] <= product.max_amount
        assert np.isnan(row["limit_cap"]) or o["offer_amount"] <= row["limit_cap"] + 1e-6  # float dust on the cap
        assert o["offer_amount"] <= row["requested_amount"]  # never more than asked (no product allows it here)
        assert affordable(row, o["monthly_payment"])
        assert o["interest_rate"] == product.apr_by_grade[row["grade_index"]]  # the grade's rate within the band
        assert min(product.apr_by_grade) - 1e-4 <= o["apr"]
        assert o["apr"] >= o["interest_rate"] - 1e-4  # fees only raise the APR
        if product.kind == "instalment":
            assert o["offer_term_months"] in product.terms_months
            assert o["offer_term_months"] >= row["requested_term_months"] or row["requested_term_months"] > 60
            principal = o["offer_amount"] + o["fees"]
            sched = pricing.schedule(principal, o["interest_rate"], int(o["offer_term_months"]))
            assert round(sched["principal"].sum() * 100) == round(principal * 100)  # repaid to the cent
            assert round(sched["payment"].sum() * 100) == round(o["total_to_repay"] * 100)
            assert sched["payment"].max() == o["monthly_payment"]


@settings(max_examples=examples(120), deadline=None)
@given(row=applicants)
@example(row=applicant())  # approvable as asked: the amount and payment checks always run
def test_property_approvable_as_asked_is_approved(row: dict) -> None:
    """Checked independently of the search: a request passing every rule as asked is never countered or declined."""
    product = CFG.products[row["product"]]
    term = row["requested_term_months"]
    amount = row["requested_amount"]
    fits_product = product.min_amount <= amount <= product.max_amount
    fits_limit = np.isnan(row["limit_cap"]) or amount <= row["limit_cap"]
    if product.kind == "instalment":
        term_ok = term in product.terms_months
        payment = instalment_payment(amount, row["grade_index"], int(term)) if term_ok else np.inf
    else:
        term_ok, row = True, {**row, "requested_term_months": np.nan}
        rate = product.apr_by_grade[row["grade_index"]]
        statement = amount + np.floor(amount * 100 * rate / 12 + 1e-7) / 100  # first statement at full use
        payment = float(pricing.min_payment(statement, product.min_payment_rate, product.min_payment_floor))
    approvable = row["pd"] <= CUTOFF and fits_product and fits_limit and term_ok and affordable(row, payment)
    out = one(**row)
    assert (out["offer_type"] == "approve") == approvable
    if approvable:
        assert out["offer_amount"] == amount and out["monthly_payment"] == pytest.approx(payment)


@settings(max_examples=examples(150), deadline=None)
@given(
    row=applicants,
    pds=st.tuples(st.floats(0.0, 0.4), st.floats(0.0, 0.4)).map(sorted),
    grades=st.tuples(st.integers(0, 4), st.integers(0, 4)).map(sorted),
    cut=st.floats(0.0, 1.0),
)
@example(row=applicant(), pds=[0.02, 0.05], grades=[0, 1], cut=0.0)  # both approved: the rate checks always run
def test_property_higher_pd_never_gets_more_or_cheaper(row: dict, pds: list, grades: list, cut: float) -> None:
    """All else equal, a higher PD (and so a grade no better, a risk limit no larger) gets no larger offer and no
    lower rate or APR. Holds for the default products because each grade step (>= 3 pp) exceeds how much the 1%
    fee's APR uplift can fall by lengthening the term (about 1.4 pp from 12 to 60 months). Within one grade the
    APR may differ by cent rounding of the payment (a 1,000 loan vs 1,050: 0.006 pp, found by hypothesis), so the
    APR is compared to ROUNDING_APR, half the 0.1 pp a statement shows."""
    cap_hi = row["limit_cap"] * (1 - cut) if not np.isnan(row["limit_cap"]) else np.nan
    lo = {**row, "pd": pds[0], "grade_index": grades[0]}
    hi = {**row, "pd": pds[1], "grade_index": grades[1], "limit_cap": cap_hi}
    out = run([lo, hi])
    a_lo, a_hi = np.nan_to_num(out["offer_amount"].to_numpy(), nan=0.0)
    assert a_hi <= a_lo
    if out["offer_type"].ne("decline").all():
        assert out.loc[1, "interest_rate"] >= out.loc[0, "interest_rate"]
        assert out.loc[1, "apr"] >= out.loc[0, "apr"] - ROUNDING_APR


def test_product_config_rejects_unsound_products() -> None:
    from pydantic import ValidationError

    loan = LOAN.model_dump()
    with pytest.raises(ValidationError, match="non-decreasing"):
        Product(**{**loan, "apr_by_grade": [0.10, 0.08]})
    with pytest.raises(ValidationError, match="within"):
        Product(**{**loan, "apr_by_grade": [0.10, 1.5]})
    with pytest.raises(ValidationError, match="never repaid"):
        Product(**{**LINE.model_dump(), "min_payment_rate": 0.02})  # below 34.9% / 12 a month
    with pytest.raises(ValidationError, match="default_product"):
        ProductsConfig(default_product="mortgage")
    with pytest.raises(ValidationError, match="extra"):
        ProductsConfig(prodcuts={})
    with pytest.raises(ValueError, match="one rate per grade"):
        CFG.check_grades(4)
    CFG.check_grades(5)


# ---------------------------------------------------------------- fast notes and frames against per-row references
# Notes are formatted once per distinct figure and joined with Arrow kernels; frames are built from numpy and Arrow
# columns. The references below do it row by row with str.format and pandas' own inference, as first written.

from pipeline.decision import notes, offers  # noqa: E402


def reference_money(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


class ReferenceNotes:
    """The per-row notes: one str.format per row, codes and texts joined in the order the rules were added."""

    def __init__(self, n: int) -> None:
        self.codes = [""] * n
        self.texts = [""] * n

    def add(self, mask: np.ndarray, code: str, template: str, **values: object) -> None:
        import re
        import string

        plain = re.sub(r"\{(\w+):money\}", r"{\1}", template)
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        for k in np.flatnonzero(mask):
            row = {}
            for key, value in values.items():
                if isinstance(value, np.ndarray):
                    value = value[k]
                row[key] = reference_money(value) if f"{{{key}:money}}" in template and key in names else value
            text = plain.format(**row)
            self.codes[k] = code if not self.codes[k] else self.codes[k] + ";" + code
            self.texts[k] = text if not self.texts[k] else self.texts[k] + "; " + text


tricky_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e7, 1e7),
    # ties and their neighbours at 0 to 3 decimals: where rounding the binary value half to even matters
    st.tuples(st.integers(-(10**9), 10**9), st.integers(0, 3), st.sampled_from([-1, 0, 1])).map(
        lambda t: float(np.nextafter((t[0] + 0.5) / 10 ** t[1], np.inf * t[2])) if t[2] else (t[0] + 0.5) / 10 ** t[1]
    ),
    st.sampled_from([0.0, -0.0, 0.0625, -0.0625, 2.675, 1.005, -0.0004, 0.0005, 999_999_999.5, 1e9, 1e15]),
)


@settings(max_examples=examples(200), deadline=None)
@given(values=st.lists(tricky_floats, min_size=1, max_size=40))
@example(values=[0.0625, 2.675, -0.0004, -0.0, 0.0, np.nan, np.inf, -np.inf, 1e15, 0.1 + 0.2, 1234.5])
def test_property_figures_print_as_str_format_prints_each_row(values: list[float]) -> None:
    x = np.array(values + values[::-1])  # repeated values: formatted once, taken twice
    for spec in (".3f", ",.2f", ".0f", "money", "", ".1%"):
        got = notes.formatted(x, spec, None).to_pylist()
        want = [reference_money(v) if spec == "money" else format(v, spec) for v in x.tolist()]
        assert got == want, spec


def test_notes_join_as_the_per_row_reference() -> None:
    rng = np.random.default_rng(11)
    n = 4000
    cents = 10.0 ** rng.integers(0, 3, n)  # whole amounts, to the 10 cents, to the cent
    values = {
        "s": CFG.search, "min": 1000.0, "cut": " 0.250",
        "pd": rng.uniform(0, 1, n), "a_req": np.round(rng.uniform(0, 30_000, n) * cents) / cents,
        "limit": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 300, n) * 100.0),
        "pti": rng.normal(0.5, 0.3, n), "left": rng.normal(0, 800, n), "term": rng.choice([6.0, 36.0, 60.0], n),
    }  # fmt: skip
    values["pti"][::50] = -0.0
    labels = ("the product maximum", np.nan, "the largest amount that keeps debt payments within 40% of income")
    which = rng.integers(0, 3, n)
    rules = [
        ("PD_ABOVE_CUTOFF", "estimated probability of default {pd:.3f} is above the cutoff{cut}"),
        ("BELOW_PRODUCT_MIN", "requested amount {a_req:money} is below the product minimum {min:money}"),
        ("LIMIT_BELOW_MIN", "the credit limit for the grade, {limit:money}, is below the product minimum {min:money}"),
        ("PTI_CAP", "payment-to-income {pti:.3f} above the cap {s.max_payment_to_income:.3f} over {term:.0f} months"),
        ("RESIDUAL_INCOME", "income left {left:,.2f} below the minimum {s.min_residual_income:,.2f}"),
        ("AMOUNT_REDUCED", "amount reduced from {a_req:money}, {because}"),
        ("NO_INCOME", "no income to repay from"),
    ]  # fmt: skip
    fast, ref = notes.Notes(n), ReferenceNotes(n)
    for code, template in rules:
        mask = rng.random(n) < 0.3
        fast.add(mask, code, template, because=notes.Choice(which, labels), **values)
        ref.add(mask, code, template, because=np.array(labels, dtype=object)[which], **values)
    fast.add(~fast.noted, "NONE", "nothing applies")
    ref.add(np.array([c == "" for c in ref.codes]), "NONE", "nothing applies")
    codes, texts = fast.joined()
    assert codes.to_pylist() == ref.codes
    assert texts.to_pylist() == ref.texts
    assert any(";" in c for c in ref.codes) and "nan" in "".join(ref.texts)  # joins and a NaN figure were checked


def frame_as_pandas_infers(frame: pd.DataFrame) -> pd.DataFrame:
    """The same values through Python objects: what pandas makes of them with its own inference."""
    return pd.DataFrame({c: frame[c].to_numpy(dtype=object if frame[c].dtype == object or c in
                                               ("product", "offer_type", "offer_codes", "offer_reasons") else float)
                         for c in frame.columns})  # fmt: skip


def test_offer_frame_puts_parts_in_place_with_the_dtypes_pandas_infers() -> None:
    rows = [applicant(), applicant(pd=0.3), applicant(product="revolving_line", requested_amount=3_000.0),
            applicant(product="mortgage"), applicant(requested_amount=np.nan),
            applicant(requested_term_months=7.0)]  # fmt: skip
    whole = run(rows)
    assert whole.loc[3, "offer_codes"] == "UNKNOWN_PRODUCT" and whole.loc[4, "offer_codes"] == "NO_AMOUNT_REQUESTED"
    pd.testing.assert_frame_equal(whole, frame_as_pandas_infers(whole), check_exact=True)
    assert whole["offer_reasons"].dtype == pd.Series(["x"]).dtype  # text as pandas stores Python strings
    # the scorer's split: rows searched apart, rows declined by policy codes, put back in input order
    frame = pd.DataFrame(rows)
    inp = OfferInputs(**{c: frame[c].to_numpy(dtype=object if c == "product" else int if c == "grade_index"
                                                else float) for c in frame.columns})  # fmt: skip
    held = np.array([False, True, False, True, False, False])
    searched = np.flatnonzero(~held)
    parts = [(searched[r], cols) for r, cols in offers.offer_parts(inp.take(~held), CFG, pd_cutoff=CUTOFF)]
    parts.append((np.flatnonzero(held), offers.declined_part(np.array([1, 0]), ["A", "B;C"], ["a", "b; c"])))
    split = offers.offer_frame(inp.product, parts)
    pd.testing.assert_frame_equal(split.iloc[searched], whole.iloc[searched], check_exact=True)
    assert split.loc[[1, 3], "offer_codes"].tolist() == ["B;C", "A"]
    assert split.loc[[1, 3], "offer_reasons"].tolist() == ["b; c", "a"]
    assert split.loc[[1, 3], "offer_type"].eq("decline").all() and split.loc[[1, 3], "apr"].isna().all()
    pd.testing.assert_frame_equal(split, frame_as_pandas_infers(split), check_exact=True)


def test_a_row_of_no_known_product_name_has_no_offer_and_no_search_of_nothing() -> None:
    frame = pd.DataFrame([applicant(), applicant()])
    inp = OfferInputs(**{c: frame[c].to_numpy(dtype=int if c == "grade_index" else float) for c in frame.columns
                         if c != "product"}, product=np.array([np.nan, None], dtype=object))  # fmt: skip
    out = search_offers(inp, CFG, pd_cutoff=CUTOFF)
    assert out.loc[0, "offer_type"] == "" and np.isnan(out.loc[0, "offer_amount"])  # NaN equals no name: no part
    assert out.loc[1, "offer_reasons"] == "product None is not offered"  # None equals None: an unknown product
    empty = search_offers(
        OfferInputs(*(np.zeros(0) for _ in range(7)), np.zeros(0, dtype=object), np.zeros(0)), CFG, pd_cutoff=CUTOFF
    )
    assert list(empty.columns) == OFFER_COLUMNS and len(empty) == 0
    assert all(empty[c].dtype.kind == "O" for c in ("product", "offer_type", "offer_codes", "offer_reasons"))
