"""The whole scoring path in one picklable object: validate -> features -> PD -> limit -> policy.

Training evaluates with it and the MLflow artifact wraps it, so production scores with
the very functions training used. It holds configs, names and boosters only; feature
functions are looked up from `pipeline.features` by name when it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from pipeline.config import ContractConfig, FeatureConfig, PolicyConfig, ScorecardConfig
from pipeline.data.validate import ValidationResult, validate_frame
from pipeline.decision.offers import OFFER_COLUMNS, offer_inputs_from_frame, search_offers
from pipeline.decision.policy import REASONS, PolicyInputs, decide
from pipeline.decision.products import ProductsConfig
from pipeline.decision.reasons import top_reasons
from pipeline.decision.scorecard import grade_names, pd_to_score, score_to_grade_index
from pipeline.features import FeatureSpec, compute_features, feature_dictionary, living_cost
from pipeline.model.boosters import LimitModel, PDModel, to_matrix

OUTPUT_BASE = ["applicant_id", "pd", "score", "grade", "decision", "credit_limit"]
TEXT_OFFER_COLUMNS = ("product", "offer_type", "offer_codes", "offer_reasons")


@dataclass
class Scorer:
    contract: ContractConfig
    features_cfg: FeatureConfig
    feature_names: list[str]
    categories: dict[str, list[str]]
    pd_model: PDModel
    limit_model: LimitModel | None
    scorecard: ScorecardConfig
    policy: PolicyConfig
    reason_k: int = 4
    reference: dict = field(default_factory=dict)  # drift reference distributions
    meta: dict = field(default_factory=dict)  # model name, version, commit, data digest
    products: ProductsConfig | None = None  # None: a limit only, no offer (artifacts before 0.2)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("specs", None)  # cached; rebuilt from the dictionary on load
        return state

    @cached_property
    def specs(self) -> list[FeatureSpec]:
        by_name = {s.name: s for s in feature_dictionary(self.contract, self.features_cfg.history_passthrough)}
        missing = [n for n in self.feature_names if n not in by_name]
        if missing:
            raise RuntimeError(f"the feature dictionary has no entry for trained feature(s) {missing}")
        return [by_name[n] for n in self.feature_names]

    @property
    def required_columns(self) -> list[str]:
        """Contract columns the trained features need (the first alternative present at training)."""
        return sorted(set(self.meta.get("required_columns", ["applicant_id"])) | {"applicant_id"})

    @property
    def output_columns(self) -> list[str]:
        offers = list(OFFER_COLUMNS) if self.products is not None else []
        return (
            OUTPUT_BASE
            + offers
            + [f"reason_{i}" for i in range(1, self.reason_k + 1)]
            + ["decision_reasons", "model_name", "model_version"]
        )

    @property
    def numeric_outputs(self) -> list[str]:
        offers = [c for c in OFFER_COLUMNS if c not in TEXT_OFFER_COLUMNS] if self.products is not None else []
        return ["pd", "score", "credit_limit", *offers]

    def validate(
        self,
        df: pd.DataFrame,
        origin: str,
        row_offset: int = 0,
        budget: float | None = None,
        allow_all_rejected: bool = False,
    ) -> ValidationResult:
        return validate_frame(
            df,
            self.contract,
            origin,
            required=self.required_columns,
            rejection_budget=budget,
            row_offset=row_offset,
            allow_all_rejected=allow_all_rejected,
        )

    def score_all(self, df: pd.DataFrame, origin: str = "input") -> pd.DataFrame:
        """One output row per input row, in input order: scores, or decision 'rejected' with the failed rules.

        This is what the pyfunc artifact (and so Spark) returns; the batch job instead writes
        rejects to their own file.
        """
        result = self.validate(df, origin, allow_all_rejected=True)
        out = pd.DataFrame(index=np.arange(len(df)), columns=self.output_columns).astype(object)
        if result.rows_valid:
            scored = self.score_valid(result.valid)
            out.iloc[result.valid["row_number"].to_numpy() - 1] = scored[self.output_columns].to_numpy(dtype=object)
        if len(result.rejects):
            why = result.rejects.groupby("row_number").apply(
                lambda g: "; ".join(g["column"] + ": " + g["rule"]), include_groups=False
            )
            pos = why.index.to_numpy() - 1
            ids = df["applicant_id"].astype(object).to_numpy()[pos] if "applicant_id" in df else None
            out.loc[pos, "applicant_id"] = ids
            out.loc[pos, "decision"] = "rejected"
            out.loc[pos, "decision_reasons"] = why.to_numpy()
            out.loc[pos, "model_name"] = self.meta.get("model_name", "")
            out.loc[pos, "model_version"] = str(self.meta.get("model_version", ""))
        for col in self.numeric_outputs:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
        # Text columns carry "" rather than a missing value: engines such as Spark render None as "nan".
        text = [c for c in self.output_columns if c not in self.numeric_outputs]
        out[text] = out[text].where(out[text].notna(), "")
        return out

    def features(self, valid: pd.DataFrame) -> pd.DataFrame:
        return compute_features(valid, self.specs, self.features_cfg, self.categories)

    def matrix(self, valid: pd.DataFrame) -> np.ndarray:
        return to_matrix(self.features(valid), self.feature_names)

    def score_valid(self, valid: pd.DataFrame, X: np.ndarray | None = None) -> pd.DataFrame:
        """Scores for rows that passed validation, in their order."""
        X = self.matrix(valid) if X is None else X
        contrib = None
        if self.reason_k:  # PD and reason-code attribution from one walk of the trees
            raw, contrib = self.pd_model.raw_and_contrib(X)
            pd_ = self.pd_model.calibrator(raw)
        else:
            pd_ = self.pd_model.predict(X)
        score = pd_to_score(pd_, self.scorecard)
        grade_idx = score_to_grade_index(score, self.scorecard)
        if self.limit_model is not None:
            cols = [self.feature_names.index(n) for n in self.limit_model.names]
            estimate = self.limit_model.predict(X[:, cols])
        else:
            estimate = np.full(len(valid), np.nan)
        decisions = decide(self._policy_inputs(valid, pd_, grade_idx, estimate), self.policy, self.scorecard)
        if self.products is not None:
            decisions = self._with_offers(decisions, valid, pd_, grade_idx)
        out = pd.DataFrame(
            {
                "applicant_id": valid["applicant_id"].to_numpy(),
                "pd": pd_,
                "score": score,
                "grade": grade_names(grade_idx, self.scorecard),
                "decision": decisions["decision"].to_numpy(),
                "credit_limit": decisions["credit_limit"].to_numpy(),
            }
        )
        if self.products is not None:
            for col in OFFER_COLUMNS:
                out[col] = decisions[col].to_numpy()
        if contrib is not None:
            texts = [s.reason for s in self.specs]
            reasons = top_reasons(contrib, texts, self.reason_k)
            for i in range(self.reason_k):
                out[f"reason_{i + 1}"] = reasons[:, i]
        out["decision_reasons"] = decisions["decision_reasons"].to_numpy()
        out["model_name"] = self.meta.get("model_name", "")
        out["model_version"] = str(self.meta.get("model_version", ""))
        return out

    def _with_offers(self, decisions: pd.DataFrame, valid: pd.DataFrame, pd_, grade_idx) -> pd.DataFrame:
        """The offer for what was asked; the decision and limit follow the offer.

        Declines that no product can change (residual income, a recent 90+ days delinquency,
        unknown income under `unknown_income: decline`) keep the policy's codes and words.
        """
        living = np.asarray(living_cost(valid, self.features_cfg), dtype=float)
        inputs = offer_inputs_from_frame(
            valid, pd_, grade_idx, living, decisions["risk_limit"].to_numpy(), self.products
        )
        offers = search_offers(inputs, self.products, pd_cutoff=self.policy.pd_cutoff)
        hard = decisions["hard_decline"].to_numpy(dtype=bool)
        if hard.any():
            codes = decisions["decision_reasons"].to_numpy(dtype=object)[hard]
            offers.loc[hard, [c for c in self.numeric_outputs if c in offers]] = np.nan
            offers.loc[hard, "offer_type"] = "decline"
            offers.loc[hard, "offer_codes"] = codes
            offers.loc[hard, "offer_reasons"] = [
                "; ".join(REASONS[c].lower() for c in str(row).split(";") if c in REASONS) for row in codes
            ]
        approved = offers["offer_type"].to_numpy() != "decline"
        offers["decision"] = np.where(approved, "approve", "decline").astype(object)
        offers["credit_limit"] = np.where(approved, offers["offer_amount"].to_numpy(dtype=float), 0.0)
        offers["decision_reasons"] = offers["offer_codes"].to_numpy(dtype=object)
        return offers

    def _policy_inputs(self, valid, pd_, grade_idx, estimate) -> PolicyInputs:
        n = len(valid)

        def col(name):
            return valid[name].to_numpy(dtype=float) if name in valid else np.full(n, np.nan)

        income, debt = col("monthly_income"), col("monthly_debt_payments")
        residual = income - debt - np.asarray(living_cost(valid, self.features_cfg), dtype=float)
        recent = np.nan_to_num(col("delinquencies_90d")) > 0
        status_cols = [c for c in valid.columns if c.startswith("repayment_status_m")]
        if status_cols:
            recent |= np.nan_to_num(valid[status_cols].to_numpy(dtype=float), nan=-2).max(axis=1) >= (
                self.policy.severe_status_months
            )
        return PolicyInputs(pd_, grade_idx, estimate, income, debt, residual, recent)
