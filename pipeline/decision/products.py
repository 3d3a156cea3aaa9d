"""Credit products and the settings of the offer search: every tunable number of an offer lives here.

A product says what can be offered (terms, amount range and step), what it costs (a rate per
risk grade, fees) and how a revolving line is repaid (minimum payment rule). `ProductsConfig`
adds the affordability rules of the offer search and how the APR is disclosed.

Rates in `apr_by_grade` are nominal annual rates charged monthly (rate / 12 a month), the
convention `pipeline.features.monthly_instalment` already uses; the disclosed APR, which
includes fees, is computed from the schedule by `pipeline.decision.pricing`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.strict import Strict


class Product(Strict):
    """One credit product. A rate per grade index (grade 0 is the best), non-decreasing: risk-based pricing."""

    kind: Literal["revolving", "instalment"]
    terms_months: list[int] = Field(default_factory=list, description="allowed terms; empty for revolving")
    default_term_months: int | None = Field(None, description="term used when the applicant gave none")
    min_amount: float = Field(gt=0)
    max_amount: float = Field(gt=0)
    amount_step: float = Field(gt=0, description="computed offers are rounded down to a multiple of this")
    apr_by_grade: list[float] = Field(min_length=1, description="nominal annual rate as a fraction, per grade")
    arrangement_fee: float = Field(0.0, ge=0, description="flat fee, added to the loan balance")
    arrangement_fee_rate: float = Field(0.0, ge=0, lt=1, description="fee as a share of the amount, added too")
    late_fee: float = Field(0.0, ge=0, description="flat fee per missed payment")
    penalty_apr_margin: float = Field(0.0, ge=0, le=1, description="extra annual rate on an overdue amount")
    min_payment_rate: float | None = Field(None, gt=0, le=1, description="revolving: share of the balance a month")
    min_payment_floor: float = Field(0.0, ge=0, description="revolving: smallest minimum payment")
    allow_above_request: bool = Field(False, description="revolving: may the limit exceed the request")

    @field_validator("apr_by_grade")
    @classmethod
    def _risk_based(cls, rates: list[float]) -> list[float]:
        if any(r < 0 or r > 1 for r in rates):
            raise ValueError("every rate in apr_by_grade must be within [0, 1]")
        if any(worse < better for better, worse in zip(rates[:-1], rates[1:], strict=False)):
            raise ValueError("apr_by_grade must be non-decreasing: a worse grade never pays a lower rate")
        return rates

    @model_validator(mode="after")
    def _consistent(self) -> Product:
        if self.min_amount > self.max_amount:
            raise ValueError("min_amount must not exceed max_amount")
        if self.kind == "instalment":
            self._check_instalment()
        else:
            self._check_revolving()
        return self

    def _check_instalment(self) -> None:
        terms = self.terms_months
        if not terms or terms != sorted(set(terms)) or terms[0] < 1:
            raise ValueError("an instalment product needs terms_months: distinct, ascending, at least 1")
        if self.default_term_months is not None and self.default_term_months not in terms:
            raise ValueError(f"default_term_months {self.default_term_months} is not one of {terms}")
        if self.allow_above_request:
            raise ValueError("allow_above_request applies to revolving products only")
        if self.min_payment_rate is not None:
            raise ValueError("min_payment_rate applies to revolving products only")

    def _check_revolving(self) -> None:
        if self.terms_months or self.default_term_months is not None:
            raise ValueError("a revolving product has no terms_months or default_term_months")
        if self.min_payment_rate is None:
            raise ValueError("a revolving product needs min_payment_rate")
        # Why: a minimum payment below a month's interest never repays the balance.
        if self.min_payment_rate <= max(self.apr_by_grade) / 12:
            raise ValueError(
                f"min_payment_rate {self.min_payment_rate} must exceed the highest monthly rate "
                f"{max(self.apr_by_grade) / 12:.4f}, or the balance is never repaid"
            )

    @property
    def request_term(self) -> int:
        """Term used when none was asked for: the default, else the shortest offered."""
        return self.default_term_months if self.default_term_months is not None else self.terms_months[0]


class OfferSearch(Strict):
    """Affordability rules the offer must pass, with the new payment counted in."""

    max_payment_to_income: float = Field(
        0.40, gt=0, le=1, description="(existing debt payments + new payment) / income must not exceed this"
    )
    min_residual_income: float = Field(
        100.0, ge=0, description="income - living cost - existing debts - new payment must stay at least this"
    )
    unknown_income: Literal["decline", "product_minimum", "risk_limit"] = Field(
        "risk_limit",
        description="without income: decline, offer at most the product minimum, or at most the grade's risk limit "
        "(affordability unchecked, as the policy's unknown_income: table_limit)",
    )
    max_months_simulated: int = Field(
        1200, ge=12, le=6000, description="revolving: months simulated when repaying at minimum payments"
    )


def _default_products() -> dict[str, Product]:
    return {
        "revolving_line": Product(
            kind="revolving",
            min_amount=500,
            max_amount=15_000,
            amount_step=100,
            apr_by_grade=[0.199, 0.229, 0.259, 0.299, 0.349],
            late_fee=12.0,
            penalty_apr_margin=0.0,
            min_payment_rate=0.05,
            min_payment_floor=25.0,
        ),
        "instalment_loan": Product(
            kind="instalment",
            terms_months=[12, 24, 36, 48, 60],
            default_term_months=36,
            min_amount=1_000,
            max_amount=25_000,
            amount_step=250,
            apr_by_grade=[0.069, 0.099, 0.139, 0.189, 0.249],
            arrangement_fee_rate=0.01,
            late_fee=15.0,
            penalty_apr_margin=0.03,
        ),
    }


class ProductsConfig(Strict):
    """Products on offer, the offer search rules and how offers are disclosed.

    `apr_method` defaults to "reg_z" (US Regulation Z, Appendix J: unit-period rate x 12) because
    product rates here are nominal annual rates charged monthly, as elsewhere in the pipeline: a
    fee-free loan then discloses exactly its configured rate. Choose "eu_aprc" (Directive
    2008/48/EC Annex I, an annual effective rate, higher for the same loan) where EU or UK rules apply.
    """

    products: dict[str, Product] = Field(default_factory=_default_products)
    default_product: str = "instalment_loan"
    apr_method: Literal["reg_z", "eu_aprc"] = "reg_z"
    search: OfferSearch = OfferSearch()
    currency: str = Field("", description="prefix printed before money in statements, e.g. '£'")
    apr_decimals: int = Field(1, ge=1, le=4, description="decimals of the APR in statements (EU: at least one)")
    review_contact: str = (
        "write to Credit Review, PO Box 100, or email review@example.com within 30 days; "
        "a person, not the model, will look at your application again"
    )

    @model_validator(mode="after")
    def _default_exists(self) -> ProductsConfig:
        if not self.products:
            raise ValueError("at least one product is needed")
        if self.default_product not in self.products:
            raise ValueError(f"default_product {self.default_product!r} is not one of {sorted(self.products)}")
        return self

    def check_grades(self, n_grades: int) -> None:
        """Each product prices every grade of the scorecard; call where both configs are known."""
        short = [name for name, p in self.products.items() if len(p.apr_by_grade) != n_grades]
        if short:
            raise ValueError(f"apr_by_grade of {', '.join(sorted(short))} must have one rate per grade ({n_grades})")
