"""What a credit costs: instalments, amortisation in cents, fees, the APR including fees, late cost.

Money is carried in integer cents wherever a schedule is built, so totals add up exactly:
the level payment is rounded UP to the cent and each month's interest DOWN to the cent
(never overcharging), and the last payment absorbs what rounding left, so the principal is
repaid to the cent and the last payment is never above the others.

Two APR conventions, both actuarial (interest on the unpaid balance, payments applied to
interest first):
- US Regulation Z, Appendix J (12 CFR 1026): the unit-period rate i solving
  amount financed = sum_k P_k / (1 + i)^k, times the unit periods in a year (12 for monthly);
  amount financed = principal - prepaid finance charges.
- EU Consumer Credit Directive 2008/48/EC, Annex I (APRC): the annual effective rate X solving
  sum of drawdowns C_k / (1 + X)^t_k = sum of payments D_l / (1 + X)^s_l, times in years.
For monthly payments and 12 equal months the two share the monthly rate i: Reg Z = 12 i,
EU = (1 + i)^12 - 1. Solvers are vectorised over rows: safeguarded Newton, on the closed form for level
payments.

Many rows price the same loan (offers share a product's terms, rates and amount grid), and every
per-row result here depends on that row's inputs alone; so schedules, level rates and minimum-payment
runs are computed once per distinct input (by bit pattern: exact, -0.0 and NaN included) and broadcast.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import pandas as pd

MONTHS_PER_YEAR = 12  # a calendar fact, not a tunable
ArrayLike = np.ndarray | float | int


def distinct_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct combination, each row's combination) over equal-length 1-D numeric columns.

    Why bit patterns: a row-wise computation gives identical bits for identical input bits, so computing
    on the first rows and taking by the inverse is exact; comparing values would merge 0.0 and -0.0.
    Hash-based (pd.factorize), O(rows); combinations are numbered in order of first appearance.
    """
    group = np.zeros(len(columns[0]), dtype=np.int64)
    for col in columns:
        a = np.ascontiguousarray(col)
        codes, uniques = pd.factorize(a.view(f"i{a.dtype.itemsize}").astype(np.int64, copy=False))
        group = pd.factorize(group * len(uniques) + codes)[0] if len(uniques) > 1 else group
    if not len(group):
        return np.zeros(0, dtype=np.intp), group
    first = np.flatnonzero(np.r_[True, group[1:] > np.maximum.accumulate(group)[:-1]])
    return first, group


def to_cents(amount: ArrayLike) -> np.ndarray:
    """Currency units to integer cents, rounded half away from zero."""
    a = np.asarray(amount, dtype=float)
    return (np.sign(a) * np.floor(np.abs(a) * 100 + 0.5)).astype(np.int64)


def round_cents(amount: ArrayLike) -> np.ndarray:
    """Round to the cent, half away from zero, in currency units; NaN stays NaN."""
    a = np.asarray(amount, dtype=float)
    return np.sign(a) * np.floor(np.abs(a) * 100 + 0.5) / 100


def annuity_factor(rate: ArrayLike, term: ArrayLike) -> np.ndarray:
    """Level monthly payment per unit of principal at nominal annual `rate` over `term` months; 1/term at 0%."""
    r = np.asarray(rate, dtype=float) / MONTHS_PER_YEAR
    n = np.asarray(term, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = r / -np.expm1(-n * np.log1p(r))
    return np.where(np.abs(r) < 1e-12, 1.0 / n, factor)


def level_payment(principal: ArrayLike, rate: ArrayLike, term: ArrayLike) -> np.ndarray:
    """Exact annuity instalment (not rounded)."""
    return np.asarray(principal, dtype=float) * annuity_factor(rate, term)


def payment_cents(principal: ArrayLike, rate: ArrayLike, term: ArrayLike) -> np.ndarray:
    """The level instalment in cents, rounded up so rounding never leaves a balloon at the end."""
    return instalment_cents(principal, annuity_factor(rate, term))


def instalment_cents(principal: ArrayLike, factor: ArrayLike) -> np.ndarray:
    """`payment_cents` at a known annuity factor: offers price many rows at a few (rate, term) factors."""
    exact = to_cents(principal) * np.asarray(factor, dtype=float)
    return np.ceil(exact - 1e-7).astype(np.int64)


def arrangement_fee(amount: ArrayLike, flat: float, rate: float) -> np.ndarray:
    """Flat fee plus a share of the amount, in currency units rounded to the cent."""
    return round_cents(flat + rate * np.asarray(amount, dtype=float))


@dataclass(frozen=True)
class Amortisation:
    """Per-row results of a schedule, in cents."""

    payment: np.ndarray  # level payment
    last_payment: np.ndarray  # the final non-zero payment
    months: np.ndarray  # payments made: the term, or fewer when rounding up repays a tiny loan early
    total_interest: np.ndarray
    total_paid: np.ndarray


def _months(
    principal_c: np.ndarray, rate: np.ndarray, term: np.ndarray, pay: np.ndarray
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (month, payment, interest, balance after) in cents; rows past their term pay 0."""
    monthly = np.asarray(rate, dtype=float) / MONTHS_PER_YEAR
    bal = principal_c.copy()
    for m in range(1, int(term.max(initial=0)) + 1):
        live = term >= m
        interest = np.where(live, np.floor(bal * monthly + 1e-7).astype(np.int64), 0)
        due = bal + interest
        payment = np.where(term == m, due, np.minimum(np.where(live, pay, 0), due))
        bal = bal - (payment - interest)
        yield m, payment, interest, bal


def amortise(principal: ArrayLike, rate: ArrayLike, term: ArrayLike) -> Amortisation:
    """Schedule totals per row (vectorised over rows, one pass over months); term 0 means no loan.

    Each distinct (principal in cents, rate, term) is scheduled once: offers repeat a few loans many times.
    """
    principal_c = np.atleast_1d(to_cents(principal))
    term_i = np.atleast_1d(np.nan_to_num(np.asarray(term, dtype=float), nan=0)).astype(np.int64)
    shape = np.broadcast_shapes(principal_c.shape, term_i.shape)
    principal_c = np.broadcast_to(principal_c, shape).ravel()
    term_i = np.broadcast_to(term_i, shape).ravel()
    rate_a = np.broadcast_to(np.asarray(rate, dtype=float), shape).ravel()
    first, group = distinct_rows(principal_c, rate_a, term_i)
    totals = _amortise_rows(principal_c[first], rate_a[first], term_i[first])
    return Amortisation(*(getattr(totals, f.name)[group].reshape(shape) for f in fields(Amortisation)))


def _amortise_rows(principal_c: np.ndarray, rate: np.ndarray, term_i: np.ndarray) -> Amortisation:
    """`amortise` on 1-D rows: the month loop of `_months`, with its totals.

    Without negative amounts or rates a balance never goes below 0, so a row does nothing after its term;
    sorted by term, the rows still paying in a month are then a suffix, and each month works on a view."""
    pay = np.where(term_i > 0, payment_cents(principal_c / 100, rate, np.maximum(term_i, 1)), 0)
    monthly = rate / MONTHS_PER_YEAR
    if not ((principal_c >= 0) & (monthly >= 0) & (pay >= 0)).all():
        return _amortise_any(principal_c, rate, term_i, pay)
    order = np.argsort(term_i, kind="stable")
    term_s, bal, monthly, pay_s = term_i[order], principal_c[order], monthly[order], pay[order]
    totals = [np.zeros_like(principal_c) for _ in range(4)]  # interest, paid, last payment, months
    starts = np.searchsorted(term_s, np.arange(1, term_s.max(initial=0) + 2))  # first row paying in month m
    for m in range(1, len(starts)):
        s, ends = starts[m - 1], starts[m] - starts[m - 1]  # rows s .. s + ends - 1 end their term this month
        interest = np.floor(bal[s:] * monthly[s:] + 1e-7).astype(np.int64)
        due = bal[s:] + interest
        payment = np.minimum(pay_s[s:], due)
        payment[:ends] = due[:ends]
        bal[s:] = due - payment
        totals[0][s:] += interest
        totals[1][s:] += payment
        paying = payment > 0
        totals[2][s:][paying] = payment[paying]
        totals[3][s:][paying] = m
    interest_total, paid_total, last, months = (np.empty_like(t) for t in totals)
    for out, t in zip((interest_total, paid_total, last, months), totals, strict=True):
        out[order] = t
    return Amortisation(pay, last, months, interest_total, paid_total)


def _amortise_any(principal_c: np.ndarray, rate: np.ndarray, term_i: np.ndarray, pay: np.ndarray) -> Amortisation:
    """`_amortise_rows` for any rows (negative amounts or rates too): every row through every month."""
    interest_total = np.zeros_like(principal_c)
    paid_total = np.zeros_like(principal_c)
    last = np.zeros_like(principal_c)
    months = np.zeros_like(principal_c)
    for m, payment, interest, _ in _months(principal_c, rate, term_i, pay):
        interest_total += interest
        paid_total += payment
        last = np.where(payment > 0, payment, last)
        months = np.where(payment > 0, m, months)
    return Amortisation(pay, last, months, interest_total, paid_total)


def schedule(principal: float, rate: float, term: int) -> pd.DataFrame:
    """Month-by-month schedule of one loan in currency units, for statements and checks."""
    principal_c = to_cents(np.array([principal]))
    term_a = np.array([term], dtype=np.int64)
    rate_a = np.array([rate], dtype=float)
    pay = payment_cents(principal_c / 100, rate_a, term_a)
    rows = [
        (m, int(p[0]), int(i[0]), int(p[0] - i[0]), int(b[0]))
        for m, p, i, b in _months(principal_c, rate_a, term_a, pay)
    ]
    frame = pd.DataFrame(rows, columns=["month", "payment", "interest", "principal", "balance"])
    # The loan ends with its last payment: paying the level amount rounded up while interest is rounded down
    # can clear the balance before the term, for a small loan (100 at 0% over 116 months: 115) or an extreme
    # rate x term (1,360.84 at 59.6% over 116 months: 115).
    paid = frame.index[frame["payment"] > 0]
    frame = frame.iloc[: paid[-1] + 1] if len(paid) else frame.iloc[:1]
    frame[["payment", "interest", "principal", "balance"]] /= 100
    return frame


def _solve_flows(amounts: np.ndarray, times: np.ndarray, iterations: int) -> np.ndarray:
    """Rate y per row with sum_k amounts_k (1 + y)^-times_k = 0 (payments +, drawdowns -): safeguarded Newton."""
    n = amounts.shape[0]
    lo, hi = np.full(n, -0.99), np.full(n, 1.0)

    def npv(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        disc = np.exp(-times * np.log1p(y)[:, None])
        return (amounts * disc).sum(axis=1), (-times * amounts * disc).sum(axis=1) / (1 + y)

    for _ in range(60):  # widen the bracket until the NPV changes sign
        grow = npv(hi)[0] > 0
        if not grow.any():
            break
        hi = np.where(grow, hi * 2, hi)
    y = np.zeros(n)
    for _ in range(iterations):
        value, slope = npv(y)
        lo = np.where(value > 0, y, lo)
        hi = np.where(value <= 0, y, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = y - value / slope
        inside = np.isfinite(step) & (step > lo) & (step < hi)
        y_next = np.where(inside, step, (lo + hi) / 2)
        if np.all(np.abs(y_next - y) < 1e-15):
            return y_next
        y = y_next
    return y


def apr_reg_z(
    principal: ArrayLike,
    payments: np.ndarray,
    prepaid_finance_charge: ArrayLike = 0.0,
    periods_per_year: int = MONTHS_PER_YEAR,
    iterations: int = 100,
) -> np.ndarray:
    """Regulation Z Appendix J APR for a single advance repaid by payments at the end of unit periods 1..K.

    `payments` is (K,) or (n, K) with zeros after a row's last payment; returns the nominal APR
    (unit-period rate x periods per year) as a fraction per row.
    """
    pay = np.atleast_2d(np.asarray(payments, dtype=float))
    financed = np.broadcast_to(np.asarray(principal, dtype=float) - prepaid_finance_charge, pay.shape[:1])
    times = np.arange(0, pay.shape[1] + 1, dtype=float)[None, :]
    flows = np.column_stack([-financed, pay])
    return _solve_flows(flows, np.broadcast_to(times, flows.shape), iterations) * periods_per_year


def aprc_eu(
    drawdowns: ArrayLike,
    drawdown_years: ArrayLike,
    payments: ArrayLike,
    payment_years: ArrayLike,
    iterations: int = 100,
) -> np.ndarray:
    """EU CCD Annex I APRC: X with sum C_k (1+X)^-t_k = sum D_l (1+X)^-s_l, times in years; per row for 2-D input."""
    c = np.atleast_2d(np.asarray(drawdowns, dtype=float))
    d = np.atleast_2d(np.asarray(payments, dtype=float))
    n = max(c.shape[0], d.shape[0])
    t = np.broadcast_to(np.atleast_2d(np.asarray(drawdown_years, dtype=float)), (n, c.shape[1]))
    s = np.broadcast_to(np.atleast_2d(np.asarray(payment_years, dtype=float)), (n, d.shape[1]))
    flows = np.column_stack([-np.broadcast_to(c, (n, c.shape[1])), np.broadcast_to(d, (n, d.shape[1]))])
    return _solve_flows(flows, np.column_stack([t, s]), iterations)


def level_monthly_rate(
    financed: ArrayLike, payment: ArrayLike, last_payment: ArrayLike, term: ArrayLike, iterations: int = 100
) -> np.ndarray:
    """Monthly rate i with financed = payment x a(term-1, i) + last_payment / (1+i)^term; O(n) memory.

    Solved once per distinct row (`_level_rate_rows`); the bracket's lower end, -0.99 (to within 1e-15), where
    no rate in (-0.99, inf) solves it (no loan, a NaN, payments that never repay), as the bisection did.
    """
    cols = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (financed, payment, last_payment, term)))
    shape = cols[0].shape
    flat = [c.ravel() for c in cols]
    first, group = distinct_rows(*flat)
    a0, p, last, n = (c[first] for c in flat)
    return _level_rate_rows(a0, p, last, n, iterations)[group].reshape(shape)


def _level_pv(
    i: np.ndarray, a0: np.ndarray, p: np.ndarray, last: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Present value at monthly rate i of the level schedule, less the amount financed, and its slope in i.

    With v = 1 / (1 + i), d(v^k)/di = -k v^(k+1), so the annuity a(n-1) = (1 - v^(n-1)) / i has the slope
    ((n-1) v^n - a(n-1)) / i, and -(n-1) n / 2 at i = 0 (where a(n-1) = n - 1)."""
    log_v = -np.log1p(i)
    zero = np.abs(i) < 1e-13
    v_n = np.exp(n * log_v)
    with np.errstate(divide="ignore", invalid="ignore"):
        annuity = np.where(zero, n - 1, -np.expm1((n - 1) * log_v) / i)
        slope = np.where(zero, (1 - n) * n / 2, ((n - 1) * v_n - annuity) / i)
    return p * annuity + last * v_n - a0, p * slope - n * last * v_n / (1 + i)


def _level_rate_rows(
    a0: np.ndarray, p: np.ndarray, last: np.ndarray, n: np.ndarray, iterations: int = 100
) -> np.ndarray:
    """`level_monthly_rate` per 1-D row (float columns), for rows already distinct: safeguarded Newton.

    The present value is convex and decreasing in i for positive payments, so Newton from 0% (the start) reaches
    the root in about 5 steps, where bisection took 60. Each evaluation narrows the row's bracket; a step that
    leaves it (a slope of the wrong sign, a NaN) bisects instead, which takes a row without a root to -0.99.
    A row stops once its step is at most 1e-15 (relative above 1): past the root's rounding noise, smaller steps
    can cycle. Rows stop on their own and leave the arrays, so a row's bits do not depend on the other rows."""
    lo, hi = np.full(a0.shape, -0.99), np.full(a0.shape, 1.0)
    for _ in range(60):  # widen the bracket until the present value changes sign
        grow = _level_pv(hi, a0, p, last, n)[0] > 0
        if not grow.any():
            break
        hi = np.where(grow, hi * 2, hi)
    rate = np.zeros(a0.shape)
    rows, args, y = np.arange(len(a0)), (a0, p, last, n), rate
    for _ in range(iterations):
        value, slope = _level_pv(y, *args)
        above = value > 0
        lo, hi = np.where(above, y, lo), np.where(above, hi, y)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = y - value / slope
        y_next = np.where((step >= lo) & (step <= hi), step, (lo + hi) / 2)
        moving = np.abs(y_next - y) > 1e-15 * np.maximum(1.0, np.abs(y_next))
        rate[rows] = y_next
        rows, lo, hi, y = rows[moving], lo[moving], hi[moving], y_next[moving]
        if not len(rows):
            break
        args = (a0[rows], p[rows], last[rows], n[rows])
    return rate


def monthly_to_apr(method: Literal["reg_z", "eu_aprc"], i: np.ndarray) -> np.ndarray:
    """The APR of a monthly rate i: Reg Z 12 i, or EU (1 + i)^12 - 1 (12 equal months)."""
    return i * MONTHS_PER_YEAR if method == "reg_z" else np.expm1(MONTHS_PER_YEAR * np.log1p(i))


def disclosed_apr(
    method: Literal["reg_z", "eu_aprc"], financed: ArrayLike, payment: ArrayLike, last: ArrayLike, term: ArrayLike
) -> np.ndarray:
    """APR including fees of a monthly schedule: Reg Z 12 i, or EU (1 + i)^12 - 1 (12 equal months)."""
    return monthly_to_apr(method, level_monthly_rate(financed, payment, last, term))


def price_distinct(
    method: Literal["reg_z", "eu_aprc"], financed: np.ndarray, principal: np.ndarray, rate: np.ndarray, term: np.ndarray
) -> tuple[Amortisation, np.ndarray]:
    """`amortise` and its `disclosed_apr` on 1-D rows the caller has already made distinct (offers): the same
    per-row results without looking for repeats twice more. Terms are whole months, none NaN."""
    sched = _amortise_rows(to_cents(principal), np.asarray(rate, dtype=float), term.astype(np.int64))
    payment, last = sched.payment / 100, sched.last_payment / 100
    i = _level_rate_rows(np.asarray(financed, dtype=float), payment, last, sched.months.astype(float))
    return sched, monthly_to_apr(method, i)


def late_payment_cost(instalment: ArrayLike, rate: ArrayLike, late_fee: float, penalty_margin: float) -> np.ndarray:
    """Extra cost of one missed instalment left unpaid for one month: late fee + interest at rate + margin."""
    interest = round_cents(np.asarray(instalment, dtype=float) * (np.asarray(rate) + penalty_margin) / MONTHS_PER_YEAR)
    return round_cents(late_fee + interest)


def min_payment(balance: ArrayLike, min_rate: float, floor: float) -> np.ndarray:
    """Revolving minimum payment: the larger of a share of the balance and a floor, never above the balance."""
    b = np.asarray(balance, dtype=float)
    share = np.ceil(to_cents(b) * min_rate - 1e-7) / 100
    return np.minimum(b, np.maximum(share, floor))


def repay_at_minimum(
    balance: ArrayLike, rate: ArrayLike, min_rate: float, floor: float, max_months: int
) -> tuple[np.ndarray, np.ndarray]:
    """Months and total paid to clear a balance paying only the minimum each month (NaN if beyond max_months).

    Each month interest (rounded down) is added, then the minimum payment on that statement balance is paid.
    Each distinct (balance in cents, rate) is simulated once.
    """
    bal = np.atleast_1d(to_cents(balance))
    monthly = np.broadcast_to(np.asarray(rate, dtype=float) / MONTHS_PER_YEAR, bal.shape)
    first, group = distinct_rows(bal.ravel(), monthly.ravel())
    months, paid = _repay_rows(bal.ravel()[first], monthly.ravel()[first], min_rate, floor, max_months)
    return months[group].reshape(bal.shape), paid[group].reshape(bal.shape)


def _repay_rows(
    bal: np.ndarray, monthly: np.ndarray, min_rate: float, floor: float, max_months: int
) -> tuple[np.ndarray, np.ndarray]:
    """`repay_at_minimum` on 1-D rows of cents at a monthly rate."""
    months = np.zeros(bal.shape, dtype=float)
    paid = np.zeros(bal.shape, dtype=np.int64)
    floor_c = int(to_cents(floor))
    for m in range(1, max_months + 1):
        open_ = bal > 0
        if not open_.any():
            break
        due = bal + np.floor(bal * monthly + 1e-7).astype(np.int64)
        pay = np.minimum(due, np.maximum(np.ceil(due * min_rate - 1e-7).astype(np.int64), floor_c))
        pay = np.where(open_, pay, 0)
        bal = np.where(open_, due - pay, 0)
        paid += pay
        months = np.where(open_ & (bal == 0), m, months)
    unpaid = bal > 0
    return np.where(unpaid, np.nan, months), np.where(unpaid, np.nan, paid / 100)
