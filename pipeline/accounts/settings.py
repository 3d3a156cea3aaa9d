"""Every tunable number of the account review, with its default, in one place.

The models subclass `Strict`, so a typo in the `accounts:` section of a YAML config fails
loudly instead of silently falling back to a default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.strict import Strict


class HistorySettings(Strict):
    """How many monthly history columns a snapshot carries (m1 = latest)."""

    months: int = Field(6, ge=2, le=24)
    ratio_cap: float = Field(10.0, gt=0, description="ratios are clipped to [-cap, cap]: never inf")
    utilisation_cap: float = Field(1.5, gt=0, description="utilisation above this (over-limit) is clipped")


class EarlyWarningSettings(Strict):
    """An account is flagged when its PD crosses a level or it ranks among the riskiest share of the book."""

    pd_threshold: float = Field(0.30, gt=0, le=1)
    rank_share: float = Field(0.05, ge=0, le=1, description="riskiest share of accounts flagged regardless of PD")


class IncreaseSettings(Strict):
    """A limit increase is offered only to low-risk, clean, affordable accounts."""

    max_pd: float = Field(0.05, ge=0, le=1)
    clean_months: int = Field(6, ge=1, le=24, description="latest months with repayment_status <= 0 required")
    step_share: float = Field(0.20, gt=0, le=2, description="increase as a share of the current limit")
    min_months_on_book: int = Field(6, ge=0)
    max_payment_to_income: float = Field(
        0.35, gt=0, le=1, description="(min payment on the NEW limit + existing debts) / income, as at origination"
    )
    min_payment_rate: float = Field(0.05, gt=0, le=1, description="minimum payment at full use of the limit")
    max_limit: float = Field(1_000_000.0, gt=0)


class DecreaseSettings(Strict):
    """A limit decrease for high-risk accounts, softened by guard rails that protect the customer."""

    trigger_pd: float = Field(0.40, gt=0, le=1)
    desired_cut_share: float = Field(
        0.50, gt=0, le=1, description="cut a high-PD account would get before the guard rails soften it"
    )
    max_share: float = Field(0.25, gt=0, le=1, description="largest fall of the limit in one review")
    notice_days: int = Field(30, ge=0, le=365, description="days between the decision and the lower limit")
    balance_headroom_share: float = Field(
        0.0, ge=0, le=1, description="the new limit stays at least balance x (1 + this): never below the balance"
    )


class LimitSettings(Strict):
    increase: IncreaseSettings = IncreaseSettings()
    decrease: DecreaseSettings = DecreaseSettings()
    cooling_off_months: int = Field(6, ge=0, le=60, description="no move opposite to the last one within this")
    step: float = Field(1000.0, gt=0, description="limits move in whole steps (increases round down, cuts up)")

    @model_validator(mode="after")
    def _no_overlap(self) -> LimitSettings:
        if self.increase.max_pd >= self.decrease.trigger_pd:
            raise ValueError("increase.max_pd must be below decrease.trigger_pd: one PD cannot mean both")
        return self


class TreatmentSettings(Strict):
    """Which contact an account gets; the cap protects customers from being chased."""

    reminder_min_status: int = Field(1, ge=1, le=9, description="months past due that trigger a reminder")
    plan_min_status: int = Field(2, ge=1, le=9, description="months past due that trigger a repayment-plan offer")
    plan_min_pd: float = Field(
        0.50, gt=0, le=1, description="an early-warning account this risky is near arrears: offered a plan too"
    )
    remind_early_warning: bool = True
    max_contacts_per_month: int = Field(2, ge=0, le=31)

    @model_validator(mode="after")
    def _order(self) -> TreatmentSettings:
        if self.plan_min_status < self.reminder_min_status:
            raise ValueError("plan_min_status must not be below reminder_min_status")
        return self


class PlanSettings(Strict):
    """Instalment plans that turn an arrears balance into a payment the customer can meet."""

    terms_months: list[int] = Field(default_factory=lambda: [3, 6, 12, 24, 36])
    apr: float = Field(0.0, ge=0, le=1, description="plan interest; 0 is a common forbearance choice")
    affordable_share: float = Field(0.5, gt=0, le=1, description="share of residual income a plan may take")
    living_cost: float = Field(600.0, ge=0, description="monthly living-cost allowance in the data's currency")
    unknown_income: Literal["hardship_review"] = Field(
        "hardship_review", description="without income no plan can be shown affordable: a person reviews it"
    )

    @field_validator("terms_months")
    @classmethod
    def _terms(cls, terms: list[int]) -> list[int]:
        if not terms or any(t < 1 or t > 120 for t in terms) or len(set(terms)) != len(terms):
            raise ValueError("terms_months must be distinct whole months in 1..120")
        return sorted(terms)


class LossSettings(Strict):
    """Expected loss = PD x EAD x LGD with EAD = balance + CCF x undrawn limit."""

    ccf: float = Field(0.8, ge=0, le=1)
    lgd: float = Field(0.75, ge=0, le=1)


class ModelSettings(Strict):
    """How the behaviour PD is judged. It is trained by the applicant pipeline's own machinery, so its
    LightGBM, monotone and calibration settings are the config's `pd_model` and its splits `split`."""

    capture_shares: list[float] = Field(
        default_factory=lambda: [0.05, 0.10], description="shares of the early-warning list whose capture is reported"
    )
    rule_min_status: int = Field(
        1, ge=1, le=9, description="the simple rule compared against: repayment_status_m1 >= this (late last month)"
    )

    @field_validator("capture_shares")
    @classmethod
    def _shares(cls, shares: list[float]) -> list[float]:
        if not shares or any(not 0 < x < 1 for x in shares):
            raise ValueError("capture_shares must be fractions in (0, 1)")
        return sorted(shares)


class ReportSettings(Strict):
    """How much of the review the HTML page and the notebook show (the Parquet output always has every account)."""

    watch_list_rows: int = Field(50, ge=1, le=10_000, description="riskiest accounts listed by early-warning rank")
    plan_offers_rows: int = Field(50, ge=1, le=10_000, description="plan offers listed, riskiest first")


class DefaultWeights(Strict):
    """Log-odds weights of next-month default in the synthetic book: behaviour, plus unobserved stress."""

    status: float = 0.7  # per month past due, counted up to status_cap
    status_cap: int = Field(4, ge=1, le=9)
    utilisation: float = 1.5
    unpaid_share: float = 1.0  # 1 - share of the bill paid
    recent_late_months: float = 0.3  # per late month among the last three
    no_capacity: float = 0.8  # income left after debts and living costs is nil
    stress: float = 0.6  # unobserved: keeps the book from being perfectly predictable


class SyntheticPortfolioSettings(Strict):
    """The embedded seeded portfolio: behaviour with income shocks, so the review has known signal."""

    accounts: int = Field(5000, ge=50)
    months: int = Field(12, ge=2, le=60, description="months simulated; the last `history` are emitted")
    history: int = Field(6, ge=2, le=24)
    snapshots: int = Field(1, ge=1, description="latest months emitted as snapshot rows per account")
    seed: int = 42
    start_month: str = "2024-01-01"
    job_loss_share: float = Field(0.08, ge=0, le=1, description="accounts whose income drops part-way")
    income_drop_to: float = Field(0.3, ge=0, le=1, description="income after a job loss, as a share of before")
    base_default_rate: float = Field(0.05, gt=0, lt=1)
    min_payment_rate: float = Field(0.05, gt=0, le=1)
    monthly_rate: float = Field(0.015, ge=0, le=0.1, description="interest on the revolved balance")
    living_cost: float = Field(600.0, ge=0)
    income_known_share: float = Field(0.85, ge=0, le=1)
    transactor_share: float = Field(0.35, ge=0, le=1, description="customers who pay the bill in full")
    shock_spend_factor: float = Field(1.4, ge=0, description="card spending after a job loss, times before")
    weights: DefaultWeights = DefaultWeights()

    @model_validator(mode="after")
    def _window(self) -> SyntheticPortfolioSettings:
        if self.history + self.snapshots - 1 > self.months:
            raise ValueError("months must cover history + snapshots - 1")
        return self


class AccountSettings(Strict):
    """The `accounts:` section of a config."""

    history: HistorySettings = HistorySettings()
    early_warning: EarlyWarningSettings = EarlyWarningSettings()
    limits: LimitSettings = LimitSettings()
    treatments: TreatmentSettings = TreatmentSettings()
    plans: PlanSettings = PlanSettings()
    loss: LossSettings = LossSettings()
    model: ModelSettings = ModelSettings()
    report: ReportSettings = ReportSettings()
    portfolio: SyntheticPortfolioSettings = Field(
        SyntheticPortfolioSettings(), description="the seeded generator `source: {kind: synthetic}` reads"
    )

    @model_validator(mode="after")
    def _within_history(self) -> AccountSettings:
        if self.limits.increase.clean_months > self.history.months:
            raise ValueError("limits.increase.clean_months cannot exceed history.months")
        if self.portfolio.history < self.history.months:
            raise ValueError("portfolio.history must cover history.months (the generator emits that many months)")
        return self
