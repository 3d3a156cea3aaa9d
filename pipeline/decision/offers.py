"""From a limit to an offer: the closest offer to the request that passes every rule, vectorised.

Rules an offer must pass: the PD cutoff; the product's amount range (and, when given, the
credit limit the risk policy allows, `limit_cap`); payment-to-income, (existing debt payments +
new payment) / income <= `search.max_payment_to_income`; and residual income, income - living
cost - existing debts - new payment >= `search.min_residual_income`.

Search order for an instalment loan (terms are the product's allowed terms):
  (a) the request as asked: approve;
  (b) the requested amount at a longer term, shortest first;
  (c) the largest affordable amount (rounded down to `amount_step`) at the requested term, then at
      longer terms; the larger amount wins, a tie goes to the shorter term.
(b) is (c) when the full amount fits, so one pass over the terms does both. An instalment loan never
offers more than asked, and never a shorter term than asked. A requested term the product does not
offer is replaced by the nearest longer one (a counter-offer). A revolving line has no term: its
limit is the request when affordable, else the largest affordable limit; above the request only when
the product has `allow_above_request`. Its payment is the minimum payment at full use.

Missing values: no requested amount falls back to the product's limit logic: the largest amount the
rules allow at the requested (or default) term, within `limit_cap`; that is an approval, since
nothing else was asked. No requested term uses the product's default term. Unknown debt payments
count as none, as in `pipeline.decision.policy`. Unknown income: affordability cannot be checked, so a
careful lender declines ("income unknown") with `search.unknown_income: decline`; with
`product_minimum` the offer is capped at the product minimum; with `risk_limit` (the default, matching
the policy's `unknown_income: table_limit`) it is capped by `limit_cap`, the credit limit the risk
policy allows for the grade, and the reasons say affordability was not checked. A declined row has
NaN amounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.decision import pricing
from pipeline.decision.notes import Choice, Notes
from pipeline.decision.products import Product, ProductsConfig
from pipeline.decision.textcols import arrow_text, object_text, strings

APPROVE, COUNTER, DECLINE = "approve", "counter_offer", "decline"
OFFER_COLUMNS = (
    "product offer_type offer_amount offer_term_months interest_rate apr monthly_payment total_to_repay fees "
    "late_payment_cost months_to_repay offer_codes offer_reasons"
).split()
_NUMERIC = OFFER_COLUMNS[2:11]
_TEXT = ("offer_type", "offer_codes", "offer_reasons")
_KINDS = (APPROVE, COUNTER, DECLINE)
_CAP_WHY = ("REQUEST", "MAX", "LIMIT", "NO_INCOME")  # the cap's candidates, in the order of _rows


@dataclass(frozen=True)
class OfferInputs:
    """Per-applicant arrays; NaN marks an unknown value, `limit_cap` NaN means no cap from the risk policy."""

    pd: np.ndarray
    grade_index: np.ndarray
    monthly_income: np.ndarray
    monthly_debt_payments: np.ndarray
    living_cost: np.ndarray
    requested_amount: np.ndarray
    requested_term_months: np.ndarray
    product: np.ndarray  # product name per row
    limit_cap: np.ndarray
    pd_pass: np.ndarray | None = None  # bool; None: compare pd with the cutoff given to search_offers

    def take(self, mask: np.ndarray) -> OfferInputs:
        rows = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else mask  # found once for every field
        parts = {f.name: getattr(self, f.name) for f in fields(self)}
        taken: dict[str, Any] = {k: None if v is None else np.asarray(v)[rows] for k, v in parts.items()}
        return OfferInputs(**taken)


def offer_inputs_from_frame(
    df: pd.DataFrame,
    pd_: np.ndarray,
    grade_index: np.ndarray,
    living_cost: np.ndarray,
    limit_cap: np.ndarray,
    cfg: ProductsConfig,
    product_column: str = "product",
) -> OfferInputs:
    """Inputs from contract columns; a missing column counts as unknown, a missing product as the default."""

    def col(name: str) -> np.ndarray:
        return pd.to_numeric(df[name], errors="coerce").to_numpy(float) if name in df else np.full(len(df), np.nan)

    products = df[product_column].fillna(cfg.default_product) if product_column in df else None
    return OfferInputs(
        pd=np.asarray(pd_, float),
        grade_index=np.asarray(grade_index, int),
        monthly_income=col("monthly_income"),
        monthly_debt_payments=col("monthly_debt_payments"),
        living_cost=np.asarray(living_cost, float),
        requested_amount=col("requested_amount"),
        requested_term_months=col("requested_term_months"),
        product=_repeat(cfg.default_product, len(df)) if products is None else products.to_numpy(object),
        limit_cap=np.asarray(limit_cap, float),
    )


def _repeat(value: object, n: int) -> np.ndarray:
    """An object array of n references to `value` (np.full makes a new string per row: 20x slower)."""
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


@dataclass(frozen=True)
class _Rows:
    """What every product search needs, per row of one product."""

    pd_ok: np.ndarray
    rate: np.ndarray
    income: np.ndarray
    debt: np.ndarray
    living: np.ndarray
    income_known: np.ndarray
    pay_room: np.ndarray  # largest affordable new payment; inf when income is unknown and allowed
    pti_binds: np.ndarray  # bool: payment-to-income, not residual income, sets pay_room
    a_req: np.ndarray  # requested amount; NaN when missing
    missing: np.ndarray
    cap: np.ndarray  # amount cap from the product max, the risk limit, the request and unknown income
    cap_why: np.ndarray  # why the cap: an index into _CAP_WHY


def _floor_step(x: np.ndarray, step: float) -> np.ndarray:
    return np.floor(x / step + 1e-9) * step


def _rows(inp: OfferInputs, product: Product, cfg: ProductsConfig, pd_ok: np.ndarray) -> _Rows:
    search = cfg.search
    rate = np.asarray(product.apr_by_grade)[inp.grade_index]
    income, debt = inp.monthly_income, np.nan_to_num(inp.monthly_debt_payments, nan=0.0)
    known = ~np.isnan(income)
    pti_room = search.max_payment_to_income * income - debt
    resid_room = income - inp.living_cost - debt - search.min_residual_income
    lenient = (search.unknown_income != "decline") & ~known  # affordability cannot be checked: not applied
    at_minimum = lenient & (search.unknown_income == "product_minimum")
    room = np.where(lenient, np.inf, np.minimum(pti_room, resid_room))
    missing = np.isnan(inp.requested_amount)
    limit = np.where(np.isnan(inp.limit_cap), np.inf, inp.limit_cap)
    request = np.where(missing | product.allow_above_request, np.inf, inp.requested_amount)
    candidates = np.stack(
        [request, np.full(len(rate), product.max_amount), limit, np.where(at_minimum, product.min_amount, np.inf)]
    )
    which = np.argmin(candidates, axis=0)  # ties to the request: an exact request is not a reduction
    return _Rows(
        pd_ok=pd_ok,
        rate=rate,
        income=income,
        debt=debt,
        living=inp.living_cost,
        income_known=known,
        pay_room=room,
        pti_binds=pti_room <= resid_room,
        a_req=inp.requested_amount,
        missing=missing,
        cap=candidates.min(axis=0),
        cap_why=which,
    )


def _instalment_payment(amount: np.ndarray, factor: np.ndarray, product: Product) -> np.ndarray:
    """Level payment of `amount` plus its fee at an annuity factor (see `_factors`)."""
    principal = amount + pricing.arrangement_fee(amount, product.arrangement_fee, product.arrangement_fee_rate)
    return pricing.instalment_cents(principal, factor) / 100


def _factors(product: Product) -> np.ndarray:
    """Annuity factors by grade (rows) and term (columns): each row's factor is one of these, so the
    transcendental functions run on a small table instead of on every row for every term."""
    rates = np.asarray(product.apr_by_grade, dtype=float)
    return pricing.annuity_factor(rates[:, None], np.asarray(product.terms_months)[None, :])


def _revolving_payment(limit: np.ndarray, rate: np.ndarray, product: Product) -> np.ndarray:
    """Minimum payment on the first statement at full use: limit + fee + a month's interest."""
    balance = limit + pricing.arrangement_fee(limit, product.arrangement_fee, product.arrangement_fee_rate)
    statement = balance + np.floor(pricing.to_cents(balance) * rate / 12 + 1e-7) / 100
    return pricing.min_payment(statement, product.min_payment_rate or 0.0, product.min_payment_floor)


def _fit(amount: np.ndarray, room: np.ndarray, pay_of, step: float) -> np.ndarray:
    """Step an amount down to the grid until its rounded payment fits the room (cent rounding can tip it).

    Up to three steps; `pay_of(amounts, rows)` is re-evaluated only for rows the last step moved, since a
    row that fitted fits again at the same amount."""
    amount = amount.copy()
    rows = np.arange(len(amount))
    for _ in range(3):
        current = amount[rows]
        over = pay_of(current, rows) > room[rows] + 1e-9
        rows = rows[over]
        if not len(rows):
            break
        amount[rows] = np.ceil(current[over] / step - 1e-9) * step - step
    return amount


def _best_amount(r: _Rows, afford: np.ndarray, pay_of, step: float, rows: np.ndarray | None = None) -> np.ndarray:
    """The request when it fits, else the largest grid amount within cap and affordability (for `rows` of r:
    afford and `pay_of` are theirs)."""
    cap, a_req, room = (r.cap, r.a_req, r.pay_room) if rows is None else (r.cap[rows], r.a_req[rows], r.pay_room[rows])
    exact = (cap == a_req) & (afford >= a_req)
    amount = np.where(exact, a_req, _floor_step(np.minimum(afford, cap), step))
    amount = np.where(np.isfinite(amount), amount, 0.0)
    return _fit(amount, room, pay_of, step)


def _most(r: _Rows, step: float) -> np.ndarray:
    """An amount no term can beat: `_best_amount` gives the request (when it is the cap) or at most the cap
    rounded down to the grid."""
    return np.maximum(np.where(r.cap == r.a_req, r.a_req, -np.inf), _floor_step(r.cap, step))


def _instalment(inp: OfferInputs, r: _Rows, product: Product, cfg: ProductsConfig) -> dict[str, np.ndarray]:
    terms = np.asarray(product.terms_months)
    asked = np.where(np.isnan(inp.requested_term_months), product.request_term, inp.requested_term_months)
    pos = np.minimum(np.searchsorted(terms, asked - 1e-9), len(terms) - 1)
    t_req = terms[pos].astype(float)  # the nearest allowed term not shorter than asked (else the longest)
    fee_share = 1 + product.arrangement_fee_rate
    factors = _factors(product)
    amounts = np.full((len(terms), len(asked)), -np.inf)
    most, searching = _most(r, product.amount_step), np.ones(len(asked), dtype=bool)
    for k, t in enumerate(terms):
        # Only the rows this term can serve, and only until a row reaches an amount no longer term can beat
        # (a tie goes to the shorter term): most rows stop at the term asked for.
        rows = np.flatnonzero(searching & (t >= t_req) & (~r.missing | (t == t_req)))
        factor = factors[inp.grade_index[rows], k]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            afford = (r.pay_room[rows] / factor - product.arrangement_fee) / fee_share
        amount = _best_amount(
            r, afford, lambda a, at, f=factor: _instalment_payment(a, f[at], product), product.amount_step, rows
        )
        usable = amount >= product.min_amount
        amounts[k, rows] = np.where(usable, amount, -np.inf)
        searching[rows[usable & (amount >= most[rows])]] = False
    best = np.argmax(amounts, axis=0)  # first maximum: the shorter term wins a tie
    amount = amounts[best, np.arange(len(asked))]
    offered = r.pd_ok & np.isfinite(amount) & (r.income_known | np.isinf(r.pay_room))
    term = np.where(offered, terms[best], np.nan)
    amount = np.where(offered, amount, np.nan)
    principal = amount + pricing.arrangement_fee(amount, product.arrangement_fee, product.arrangement_fee_rate)
    apr, payment, total, months = _schedules(offered, amount, principal, inp.grade_index, r.rate, term, cfg.apr_method)
    smallest = np.where(r.missing, pos, len(terms) - 1)
    return {
        "offered": offered,
        "offer_amount": amount,
        "offer_term_months": term,
        "asked_term": asked,
        "term_used": t_req,
        "apr": apr,
        "monthly_payment": payment,
        "total_to_repay": total,
        "fees": principal - amount,
        "months_to_repay": months,  # the term, or fewer where cent rounding repays early (pricing.schedule)
        "smallest_payment": _instalment_payment(
            np.full(len(asked), product.min_amount), factors[inp.grade_index, smallest], product
        ),
        "smallest_term": terms[smallest].astype(float),
    }


def _schedules(
    offered: np.ndarray,
    amount: np.ndarray,
    principal: np.ndarray,
    grade: np.ndarray,
    rate: np.ndarray,
    term: np.ndarray,
    method: Literal["reg_z", "eu_aprc"],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """APR, level payment, total repaid and months with a payment of each offered loan (NaN elsewhere).

    A loan is its amount, grade (so rate and fee) and term, and offers repeat a few amounts (the grid, common
    requests) at a few grades and terms: each distinct loan is scheduled and solved once, found here once."""
    loans = np.flatnonzero(offered)
    first, group = pricing.distinct_rows(amount[loans], grade[loans], term[loans])
    one = loans[first]
    sched, apr = pricing.price_distinct(method, amount[one], principal[one], rate[one], term[one])
    out = []
    for values in (apr, sched.payment / 100, sched.total_paid / 100, sched.months):
        full = np.full(len(offered), np.nan)
        full[loans] = values[group]
        out.append(full)
    return out[0], out[1], out[2], out[3]


def _revolving(inp: OfferInputs, r: _Rows, product: Product, cfg: ProductsConfig) -> dict[str, np.ndarray]:
    min_rate = product.min_payment_rate or 0.0
    share = min_rate * (1 + r.rate / 12) * (1 + product.arrangement_fee_rate)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        afford = np.where(r.pay_room >= product.min_payment_floor, r.pay_room / share, -np.inf)
    afford = afford - product.arrangement_fee / (1 + product.arrangement_fee_rate)
    pay_of = lambda a, rows=slice(None): _revolving_payment(a, r.rate[rows], product)  # noqa: E731
    amount = _best_amount(r, afford, pay_of, product.amount_step)
    ceiling = np.minimum(afford, r.cap)  # with allow_above_request the cap leaves the request out
    as_asked = (r.a_req >= product.min_amount) & (r.a_req <= ceiling) & (pay_of(np.nan_to_num(r.a_req)) <= r.pay_room)
    amount = np.where(as_asked, np.maximum(np.nan_to_num(r.a_req), amount), amount)
    offered = r.pd_ok & (amount >= product.min_amount) & (r.income_known | np.isinf(r.pay_room))
    amount = np.where(offered, amount, np.nan)
    fee = pricing.arrangement_fee(amount, product.arrangement_fee, product.arrangement_fee_rate)
    if cfg.apr_method == "reg_z":  # open-end credit: periodic rate x 12 (12 CFR 1026.14(a))
        apr = r.rate.astype(float)
    else:  # EU assumption for open-end credit: drawn in full, repaid in 12 equal monthly instalments
        twelve = np.full(len(amount), 12.0)
        apr = _schedules(offered, amount, amount + fee, inp.grade_index, r.rate, twelve, "eu_aprc")[0]
    months, total = pricing.repay_at_minimum(
        np.nan_to_num(amount + fee), r.rate, min_rate, product.min_payment_floor, cfg.search.max_months_simulated
    )
    nan = np.full(len(amount), np.nan)
    return {
        "offered": offered,
        "offer_amount": amount,
        "offer_term_months": nan,
        "asked_term": nan,
        "term_used": nan,
        "apr": np.where(offered, apr, np.nan),
        "monthly_payment": np.where(offered, pay_of(np.nan_to_num(amount)), np.nan),
        "total_to_repay": np.where(offered, total, np.nan),
        "fees": fee,
        "months_to_repay": np.where(offered, months, np.nan),
        "smallest_payment": pay_of(np.full(len(amount), product.min_amount)),
        "smallest_term": nan,
    }


def _decline_notes(notes: Notes, declined: np.ndarray, r: _Rows, res: dict, product: Product, values: dict) -> None:
    """Every rule the applicant fails, with the figures: affordability is shown at the most lenient option."""
    s = values["s"]
    pay = res["smallest_payment"]
    with np.errstate(divide="ignore", invalid="ignore"):
        pti = (r.debt + pay) / r.income
    left = r.income - r.living - r.debt - pay
    known = r.income_known & (r.income > 0)
    if product.kind == "revolving":
        at = "with the minimum payment on the smallest limit {min:money}"
    else:
        at = "at the smallest amount {min:money} over {term:.0f} months"
    rules = [
        (~r.pd_ok, "PD_ABOVE_CUTOFF", "estimated probability of default {pd:.3f} is above the cutoff{cut}"),
        (~r.income_known & (s.unknown_income == "decline"), "INCOME_UNKNOWN",
         "income unknown: affordability cannot be checked"),
        (~r.missing & (r.a_req < product.min_amount) & ~product.allow_above_request, "BELOW_PRODUCT_MIN",
         "requested amount {a_req:money} is below the product minimum {min:money}"),
        (values["limit"] < product.min_amount, "LIMIT_BELOW_MIN",
         "the credit limit for the risk grade, {limit:money}, is below the product minimum {min:money}"),
        (r.income_known & (r.income <= 0), "NO_INCOME", "no income to repay from"),
        (known & (pti > s.max_payment_to_income + 1e-12), "PTI_CAP",
         "payment-to-income {pti:.3f} above the cap {s.max_payment_to_income:.3f} " + at),
        (known & (left < s.min_residual_income), "RESIDUAL_INCOME",
         "income left after living costs and debts {left:,.2f} below the minimum {s.min_residual_income:,.2f} " + at),
    ]  # fmt: skip
    for mask, code, template in rules:
        notes.add(declined & mask, code, template, pti=pti, left=left, term=res["smallest_term"], **values)
    notes.add(declined & ~notes.noted, "NO_OFFER", "no offer passes the lending rules")


def _counter_notes(notes: Notes, offered: np.ndarray, r: _Rows, res: dict, product: Product, values: dict) -> None:
    """Why the offer differs from the request; an offer equal to it is "approved as requested"."""
    amount, term, asked, used = res["offer_amount"], res["offer_term_months"], res["asked_term"], res["term_used"]
    cap_binds = (r.cap < r.a_req) & (amount >= _floor_step(r.cap, product.amount_step) - 1e-9)
    why = np.where(cap_binds, r.cap_why, np.where(r.pti_binds, len(_CAP_WHY), len(_CAP_WHY) + 1))
    texts = {code: text.format(**values) for code, text in _BECAUSE.items()}
    because = Choice(why, tuple(texts.get(code, np.nan) for code in (*_CAP_WHY, "PTI", "RESIDUAL")))
    rules = [
        (~np.isnan(asked) & (asked != used), "TERM_NOT_OFFERED",
         "a term of {asked:.0f} months is not offered; the nearest is {used:.0f} months"),
        (term > used, "TERM_EXTENDED",
         "term extended from {used:.0f} to {term:.0f} months to keep the payment affordable"),
        (~r.missing & (amount < r.a_req), "AMOUNT_REDUCED",
         "amount reduced from {a_req:money} to {amount:money}, {because}"),
        (~r.missing & (amount > r.a_req), "AMOUNT_RAISED",
         "limit of {amount:money}, above the {a_req:money} requested"),
        (r.missing, "NO_AMOUNT_REQUESTED", "no amount requested: the largest amount the lending rules allow"),
    ]  # fmt: skip
    for mask, code, template in rules:
        notes.add(offered & mask, code, template, asked=asked, used=used, term=term, amount=amount,
                  because=because, **values)  # fmt: skip
    notes.add(offered & ~notes.noted, "AS_REQUESTED", "approved as requested")


_BECAUSE = {
    "MAX": "the product maximum",
    "LIMIT": "the credit limit for the risk grade",
    "NO_INCOME": "the product minimum, as income is unknown",
    "PTI": "the largest amount that keeps debt payments within {s.max_payment_to_income:.0%} of income",
    "RESIDUAL": (
        "the largest amount that leaves at least {s.min_residual_income:,.2f} a month after living costs and debts"
    ),
}


def _outcome(
    inp: OfferInputs, r: _Rows, res: dict, product: Product, cfg: ProductsConfig, pd_cutoff: float | None
) -> tuple[np.ndarray, Notes]:
    offered = res["offered"]
    same_amount = r.missing | (res["offer_amount"] >= r.a_req)  # above the request only where allowed
    same_term = np.isnan(res["asked_term"]) | (res["offer_term_months"] == res["asked_term"])
    kind = np.where(offered, np.where(same_amount & same_term, 0, 1), 2)  # an index into _KINDS
    notes = Notes(len(offered))
    values = {"s": cfg.search, "pd": inp.pd, "a_req": r.a_req, "limit": inp.limit_cap,
              "min": product.min_amount, "cut": "" if pd_cutoff is None else f" {pd_cutoff:.3f}"}  # fmt: skip
    _decline_notes(notes, ~offered, r, res, product, values)
    _counter_notes(notes, offered, r, res, product, values)
    return kind, notes


def search_offers(inp: OfferInputs, cfg: ProductsConfig, pd_cutoff: float | None = None) -> pd.DataFrame:
    """One offer per applicant, in input order, with the columns of OFFER_COLUMNS."""
    return offer_frame(inp.product, offer_parts(inp, cfg, pd_cutoff))


Part = tuple[np.ndarray, dict[str, Any]]  # row positions, and their columns: numbers and Arrow strings


def offer_parts(inp: OfferInputs, cfg: ProductsConfig, pd_cutoff: float | None = None) -> list[Part]:
    """The offers of `search_offers` as one part per product, for `offer_frame`."""
    if (inp.pd_pass is None) == (pd_cutoff is None):
        raise ValueError("give exactly one of inputs.pd_pass or pd_cutoff")
    pd_ok = np.asarray(inp.pd_pass, bool) if inp.pd_pass is not None else np.asarray(inp.pd <= pd_cutoff)
    products = np.asarray(inp.product, dtype=object)
    parts: list[Part] = []
    for name in pd.unique(products):
        mask = products == name
        rows = np.flatnonzero(mask)
        product = cfg.products.get(name)
        if product is None:
            parts.append((rows, declined_part(np.zeros(len(rows), dtype=np.intp), ["UNKNOWN_PRODUCT"],
                                              [f"product {name!r} is not offered"])))  # fmt: skip
            continue
        sub = inp if len(rows) == len(products) else inp.take(rows)
        if sub.grade_index.size and (sub.grade_index.min() < 0 or sub.grade_index.max() >= len(product.apr_by_grade)):
            raise ValueError(f"grade index outside the {len(product.apr_by_grade)} rates of product {name!r}")
        parts.append((rows, _product_offers(sub, product, cfg, pd_ok[mask], pd_cutoff)))
    return parts


def _product_offers(
    sub: OfferInputs, product: Product, cfg: ProductsConfig, pd_ok: np.ndarray, pd_cutoff: float | None
) -> dict[str, Any]:
    """The columns of one product's rows: figures in numpy, texts in Arrow (see `offer_frame`)."""
    r = _rows(sub, product, cfg, pd_ok)
    res = (_instalment if product.kind == "instalment" else _revolving)(sub, r, product, cfg)
    kind, notes = _outcome(sub, r, res, product, cfg, pd_cutoff)
    offered = res["offered"]
    res["interest_rate"] = np.where(offered, r.rate, np.nan)
    res["late_payment_cost"] = pricing.late_payment_cost(
        res["monthly_payment"], r.rate, product.late_fee, product.penalty_apr_margin
    )
    columns: dict[str, Any] = {c: np.where(offered, res[c], np.nan) for c in _NUMERIC}
    columns["offer_codes"], columns["offer_reasons"] = notes.joined()
    columns["offer_type"] = strings(_KINDS).take(pa.array(kind))
    return columns


def declined_part(index: np.ndarray, codes: Sequence[object], reasons: Sequence[object]) -> dict[str, Any]:
    """Columns of rows declined without a search: no figures, codes[index] and reasons[index]."""
    columns: dict[str, Any] = {c: np.full(len(index), np.nan) for c in _NUMERIC}
    columns["offer_type"] = strings([DECLINE]).take(pa.array(np.zeros(len(index), dtype=np.intp)))
    columns["offer_codes"] = strings(codes).take(pa.array(index))
    columns["offer_reasons"] = strings(reasons).take(pa.array(index))
    return columns


def offer_frame(product: np.ndarray, parts: list[Part]) -> pd.DataFrame:
    """The frame of OFFER_COLUMNS: the product per row, and parts that cover rows at most once; a row no part
    covers has no figures and empty texts. Built once, from numpy and Arrow columns: no Python object per row."""
    n, covered = len(product), sum(len(rows) for rows, _ in parts)
    source = np.full(n, covered)  # where each row's texts are in the parts' texts; past their end: ""
    if parts:
        source[np.concatenate([rows for rows, _ in parts])] = np.arange(covered)
    frame: dict[str, Any] = {"product": object_text(np.asarray(product, dtype=object))}
    for c in _NUMERIC:
        frame[c] = np.full(n, np.nan)
        for rows, columns in parts:
            frame[c][rows] = columns[c]
    for c in _TEXT:
        texts = pa.concat_arrays([*(columns[c] for _, columns in parts), strings([""])])
        frame[c] = arrow_text(texts.take(pa.array(source)))
    return pd.DataFrame(frame, columns=OFFER_COLUMNS)
