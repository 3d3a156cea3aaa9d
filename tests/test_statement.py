"""Applicant statements: the exact text, safe files for a batch, and the HTML as a real browser shows it."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.decision.offers import OfferInputs, search_offers
from pipeline.decision.products import Product, ProductsConfig
from pipeline.decision.statement import render_html, safe_filename, statement, write_statements

CHROMIUM = Path("/usr/bin/chromium")
PERSONAL = Product(
    kind="instalment",
    terms_months=[12],
    min_amount=1_000,
    max_amount=25_000,
    amount_step=500,
    apr_by_grade=[0.149],
    late_fee=15.0,
    penalty_apr_margin=0.03,
)
CFG = ProductsConfig(products={"personal_loan": PERSONAL}, default_product="personal_loan", currency="")
REASONS = ["high use of existing credit limits", "short credit history", None]


def offer_row(**kw: object) -> dict:
    """20,000 over 12 months asked; the 1,360 payment room fits 15,000 (1,353.17 a month) but not 15,500."""
    base = dict(
        pd=0.05, grade_index=0, monthly_income=4000.0, monthly_debt_payments=240.0, living_cost=850.0,
        requested_amount=20_000.0, requested_term_months=12.0, product="personal_loan", limit_cap=np.nan,
    )  # fmt: skip
    base.update(kw)
    arrays = {k: np.array([v], dtype=object if k == "product" else float) for k, v in base.items()}
    arrays["grade_index"] = arrays["grade_index"].astype(int)
    out = search_offers(OfferInputs(**arrays), CFG, pd_cutoff=0.25).iloc[0].to_dict()
    return {**out, "applicant_id": "A-1001", "requested_amount": base["requested_amount"],
            "requested_term_months": base["requested_term_months"]}  # fmt: skip


def test_counter_offer_statement_text() -> None:
    s = statement(offer_row(), REASONS, CFG)
    assert s["outcome"] == "counter_offer"
    assert s["request"] == "You asked for 20,000 over 12 months."
    assert s["offer"] == (
        "We can offer 15,000 over 12 months at 14.9% APR: 11 monthly payments of 1,353.17 and a final payment of "
        "1,353.09, 16,237.96 in total."
    )
    assert 11 * 1353.17 + 1353.09 == pytest.approx(16_237.96)
    assert s["differences"] == [
        "Amount reduced from 20,000 to 15,000, the largest amount that keeps debt payments within 40% of income."
    ]
    assert s["model_reasons"] == ["High use of existing credit limits.", "Short credit history."]
    assert s["late_payment"] == (
        "If a payment of 1,353.17 is a month late, it costs 35.18 more: a late fee of 15.00 and 20.18 interest on "
        "the missed payment at 17.9% a year. Late payments can also make future credit harder to get."
    )
    assert 1353.17 * 0.179 / 12 == pytest.approx(20.18, abs=0.005)
    assert "review@example.com" in s["review"] and "a person" in s["review"]
    assert s["figures"]["total_to_repay"] == pytest.approx(16_237.96)
    json.dumps(s, allow_nan=False)  # JSON-able, no NaN


def test_approval_and_decline_statements() -> None:
    approved = statement(offer_row(requested_amount=5_000.0), [], CFG)
    assert approved["outcome"] == "approve" and approved["differences"] == []
    assert approved["offer"].startswith("We can offer 5,000 over 12 months at 14.9% APR: ")
    declined = statement(offer_row(pd=0.4), REASONS, CFG)
    assert declined["offer"] == "We cannot offer you credit at the moment."
    assert declined["differences_heading"] == "Why we cannot offer credit"
    assert declined["differences"] == ["Estimated probability of default 0.400 is above the cutoff 0.250."]
    assert declined["late_payment"] is None and declined["figures"]["apr"] is None
    assert "Why we cannot offer credit:" in declined["text"]


def test_revolving_statement_discloses_repaying_at_the_minimum() -> None:
    cfg = ProductsConfig(currency="£")
    inp = OfferInputs(
        pd=np.array([0.05]), grade_index=np.array([0]), monthly_income=np.array([4000.0]),
        monthly_debt_payments=np.array([0.0]), living_cost=np.array([850.0]), requested_amount=np.array([3000.0]),
        requested_term_months=np.array([np.nan]), product=np.array(["revolving_line"], dtype=object),
        limit_cap=np.array([np.nan]),
    )  # fmt: skip
    row = {**search_offers(inp, cfg, pd_cutoff=0.25).iloc[0].to_dict(), "applicant_id": 7, "requested_amount": 3000.0}
    s = statement(row, [], cfg)
    assert s["request"] == "You asked for a credit limit of £3,000."
    assert s["offer"].startswith("We can offer a credit limit of £3,000 at 19.9% APR. If you use all of it, the first")
    assert (
        f"it takes {row['months_to_repay']:.0f} months to repay, £{row['total_to_repay']:,.2f} in total." in s["offer"]
    )


def test_write_statements_uses_safe_unique_file_names(tmp_path: Path) -> None:
    rows = [offer_row(), {**offer_row(requested_amount=5_000.0), "applicant_id": "../../etc/passwd"}]
    frame = pd.DataFrame(rows).assign(reason_2=["short credit history", None], reason_1=["high use", None])
    paths = write_statements(frame, tmp_path, CFG)
    assert sorted(p.name for p in paths) == sorted(
        ["A-1001.json", "A-1001.html", f"{safe_filename('../../etc/passwd')}.json",
         f"{safe_filename('../../etc/passwd')}.html"]
    )  # fmt: skip
    assert all(p.parent == tmp_path for p in paths)
    assert safe_filename("../../etc/passwd").startswith("______etc_passwd-")
    assert safe_filename("a/b") != safe_filename("a_b") and safe_filename("CON") != "CON"
    data = json.loads((tmp_path / "A-1001.json").read_text())
    assert data["model_reasons"] == ["High use.", "Short credit history."]  # reason_1 before reason_2
    with pytest.raises(ValueError, match="unique"):
        write_statements(pd.concat([frame, frame]), tmp_path, CFG)


def test_html_escapes_applicant_data() -> None:
    s = statement({**offer_row(), "applicant_id": "<script>alert(1)</script>"}, ["<b>bold</b> & co"], CFG)
    html = render_html(s)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._hidden += tag in ("style", "script", "title", "head")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "script", "title", "head")

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.parts.append(" ".join(data.split()))


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None, reason="no /usr/bin/chromium")
def test_statement_renders_in_a_headless_browser(tmp_path: Path) -> None:
    """Chromium loads the written HTML; the text a reader sees carries the offer, the reasons and the review route."""
    frame = pd.DataFrame([offer_row()]).assign(reason_1="high use of existing credit limits")
    write_statements(frame, tmp_path, CFG)
    page = tmp_path / "A-1001.html"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()]  # fmt: skip
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    parser = _VisibleText()
    parser.feed(dom)
    visible = parser.parts
    assert visible[0] == "Your credit decision"
    assert "You asked for 20,000 over 12 months." in visible
    assert any(p.startswith("We can offer 15,000 over 12 months at 14.9% APR") for p in visible)
    assert "Why this differs from your request" in visible
    assert "High use of existing credit limits." in visible
    assert "If a payment is late" in visible
    assert any("review@example.com" in p for p in visible)


def test_a_loan_the_cent_rounding_repays_early_states_the_payments_it_has() -> None:
    """1,360.84 at 59.6% over 116 months: the payment rounded up and the interest rounded down repay it in 115
    months, so the statement counts 114 level payments and the final one, which add up to the stated total."""
    product = Product(kind="instalment", terms_months=[116], min_amount=1_000, max_amount=25_000, amount_step=500,
                      apr_by_grade=[0.595703125], late_fee=15.0, penalty_apr_margin=0.03)  # fmt: skip
    cfg = ProductsConfig(products={"personal_loan": product}, default_product="personal_loan", currency="")
    inputs = dict(pd=0.05, grade_index=0, monthly_income=10_000.0, monthly_debt_payments=0.0, living_cost=850.0,
                  requested_amount=1360.84, requested_term_months=116.0, product="personal_loan",
                  limit_cap=np.nan)  # fmt: skip
    arrays = {k: np.array([v], dtype=object if k == "product" else float) for k, v in inputs.items()}
    arrays["grade_index"] = arrays["grade_index"].astype(int)
    row = search_offers(OfferInputs(**arrays), cfg, pd_cutoff=0.25).iloc[0].to_dict()
    assert (row["offer_term_months"], row["months_to_repay"]) == (116, 115)
    s = statement({**row, "applicant_id": "A-1", "requested_amount": 1360.84, "requested_term_months": 116.0}, [], cfg)
    assert s["offer"] == (
        "We can offer 1,360.84 over 116 months at 59.6% APR: 114 monthly payments of 67.81 and a final payment of "
        "55.99, 7,786.33 in total."
    )
    assert 114 * 67.81 + 55.99 == pytest.approx(7_786.33)
