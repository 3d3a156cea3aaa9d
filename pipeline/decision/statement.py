"""A plain statement per applicant: what was asked, what we offer and what it costs, why, and how to ask for a review.

Built from one row of `search_offers` output joined to the request (and the applicant id); the
numbers are recomputed from the same pricing functions, so the statement cannot drift from the
offer. `statement` returns a JSON-able dict; `render_html` fills `templates/statement.html`
(jinja2, autoescaped: applicant data never becomes markup); `write_statements` writes both for a batch.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from pipeline.decision import pricing
from pipeline.decision.products import Product, ProductsConfig

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_REASON_COLUMN = re.compile(r"^reason_(\d+)$")


def _num(value: Any) -> float | None:
    """A finite float, or None for missing values (NaN, None, pandas NA)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _stated(row: Mapping, key: str) -> float:
    """A figure the offer text states: the offers table sets it on every offered row."""
    x = _num(row.get(key))
    if x is None:
        raise ValueError(f"applicant {row.get('applicant_id')}: an offer needs a finite {key}, got {row.get(key)!r}")
    return x


def _money(x: float, currency: str) -> str:
    text = f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"
    return f"{currency}{text}"


def _cents(x: float, currency: str) -> str:
    return f"{currency}{x:,.2f}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _request_text(kind: str, amount: float | None, term: float | None, m) -> str:
    if amount is None:
        return "You did not ask for a particular amount."
    if kind == "revolving":
        return f"You asked for a credit limit of {m(amount)}."
    return f"You asked for {m(amount)}" + (f" over {term:.0f} months." if term else ".")


def _instalment_offer(row: Mapping, apr_text: str, cfg: ProductsConfig) -> tuple[str, dict]:
    amount, term, fees = _stated(row, "offer_amount"), int(row["offer_term_months"]), _num(row.get("fees")) or 0.0
    sched = pricing.amortise(amount + fees, _stated(row, "interest_rate"), term)
    pay, last, total = sched.payment[0] / 100, sched.last_payment[0] / 100, sched.total_paid[0] / 100
    months = int(sched.months[0])  # the term, or fewer where the cent rounding repays early (pricing.schedule)
    c = cfg.currency
    if last == pay:
        payments = f"{months} monthly payments of {_cents(pay, c)}"
    else:
        payments = f"{months - 1} monthly payments of {_cents(pay, c)} and a final payment of {_cents(last, c)}"
    text = (
        f"We can offer {_money(amount, c)} over {term} months at {apr_text} APR: "
        f"{payments}, {_cents(total, c)} in total."
    )
    return text, {"monthly_payment": pay, "final_payment": last, "total_to_repay": total, "term_months": term}


def _revolving_offer(row: Mapping, apr_text: str, cfg: ProductsConfig) -> tuple[str, dict]:
    c = cfg.currency
    amount, pay = _stated(row, "offer_amount"), _stated(row, "monthly_payment")
    months, total = _num(row.get("months_to_repay")), _num(row.get("total_to_repay"))
    text = (
        f"We can offer a credit limit of {_money(amount, c)} at {apr_text} APR. "
        f"If you use all of it, the first minimum payment is {_cents(pay, c)}; "
    )
    if months is None:
        years = cfg.search.max_months_simulated // 12
        text += f"paying only the minimum would not repay it within {years} years."
    else:
        repaid = _stated(row, "total_to_repay")
        text += f"paying only the minimum, it takes {months:.0f} months to repay, {_cents(repaid, c)} in total."
    return text, {"monthly_payment": pay, "months_to_repay": months, "total_to_repay": total}


def _late_text(row: Mapping, product: Product, cfg: ProductsConfig) -> str | None:
    pay, cost = _num(row.get("monthly_payment")), _num(row.get("late_payment_cost"))
    if pay is None or cost is None:
        return None
    c, rate = cfg.currency, (_num(row["interest_rate"]) or 0.0) + product.penalty_apr_margin
    interest = cost - product.late_fee
    return (
        f"If a payment of {_cents(pay, c)} is a month late, it costs {_cents(cost, c)} more: a late fee of "
        f"{_cents(product.late_fee, c)} and {_cents(interest, c)} interest on the missed payment at "
        f"{rate * 100:.{cfg.apr_decimals}f}% a year. Late payments can also make future credit harder to get."
    )


def statement(row: Mapping, model_reasons: Sequence[str], cfg: ProductsConfig) -> dict[str, Any]:
    """The statement of one applicant as plain, JSON-able data; `text` is the whole of it as plain text."""
    product = cfg.products.get(str(row.get("product")))
    kind = product.kind if product else "instalment"
    c = cfg.currency
    m = lambda x: _money(x, c)  # noqa: E731
    request = _request_text(kind, _num(row.get("requested_amount")), _num(row.get("requested_term_months")), m)
    outcome = str(row["offer_type"])
    reasons = [_sentence(r) for r in str(row.get("offer_reasons") or "").split("; ") if r]
    figures: dict[str, Any] = {"offer_amount": _num(row.get("offer_amount")), "apr": _num(row.get("apr"))}
    offer = fee = late = None
    if outcome != "decline" and product is not None:
        apr_text = f"{figures['apr'] * 100:.{cfg.apr_decimals}f}%"
        if kind == "instalment":
            offer, more = _instalment_offer(row, apr_text, cfg)
        else:
            offer, more = _revolving_offer(row, apr_text, cfg)
        figures.update(more)
        fees = _num(row.get("fees")) or 0.0
        if fees > 0:
            fee = f"This includes an arrangement fee of {_cents(fees, c)}, added to the balance."
        late = _late_text(row, product, cfg)
    else:
        offer = "We cannot offer you credit at the moment."
    differences = [] if reasons == ["Approved as requested."] else reasons
    why_heading = "Why we cannot offer credit" if outcome == "decline" else "Why this differs from your request"
    review = f"If you think this decision is wrong, or want a person to look at it again: {cfg.review_contact}."
    model = [_sentence(str(r)) for r in model_reasons if r is not None and str(r).strip() and str(r) != "nan"]
    parts = [request, offer, fee, *([why_heading + ":", *differences] if differences else []), late]
    if model:
        parts += ["The main factors in our risk assessment were:", *model]
    parts.append(review)
    return {
        "applicant_id": str(row["applicant_id"]),
        "outcome": outcome,
        "request": request,
        "offer": offer,
        "fee": fee,
        "differences_heading": why_heading if differences else None,
        "differences": differences,
        "model_reasons": model,
        "late_payment": late,
        "review": review,
        "figures": figures,
        "text": "\n".join(p for p in parts if p),
    }


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("statement.html")


def render_html(stmt: Mapping[str, Any]) -> str:
    """The statement as a standalone HTML page (no scripts, no external resources)."""
    return _template().render(s=stmt)


def safe_filename(applicant_id: object) -> str:
    """A file name stem from an id: letters, digits, _ and - only; an id that needed changes gets a hash suffix
    so two ids never share a file (and "../x" cannot leave the directory)."""
    raw = str(applicant_id)
    name = _UNSAFE.sub("_", raw)[:80]
    if name != raw or not name or name.upper() in _RESERVED:
        name = f"{name}-{hashlib.sha256(raw.encode('utf-8')).hexdigest()[:12]}"
    return name


def write_statements(
    frame: pd.DataFrame,
    directory: str | Path,
    cfg: ProductsConfig | None = None,
    reason_columns: Sequence[str] | None = None,
) -> list[Path]:
    """Write `<id>.json` and `<id>.html` per row; model reasons come from reason_1.. columns unless named."""
    cfg = cfg or ProductsConfig()
    if frame["applicant_id"].astype(str).duplicated().any():
        raise ValueError("applicant_id must be unique to write one statement per applicant")
    if reason_columns is None:
        found = [(int(mt.group(1)), c) for c in frame.columns if (mt := _REASON_COLUMN.match(str(c)))]
        reason_columns = [c for _, c in sorted(found)]
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for row in frame.to_dict("records"):
        stmt = statement(row, [row[c] for c in reason_columns], cfg)
        stem = out / safe_filename(row["applicant_id"])
        json_path, html_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".html")
        json_path.write_text(json.dumps(stmt, indent=2, ensure_ascii=False, allow_nan=False), encoding="utf-8")
        html_path.write_text(render_html(stmt), encoding="utf-8")
        written += [json_path, html_path]
    return written
