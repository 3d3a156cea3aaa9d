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
from pipeline.features import FeatureSpec, compute_features, feature_dictionary, living_cost
from pipeline.models import LimitModel, PDModel, to_matrix
from pipeline.policy import PolicyInputs, decide
from pipeline.reasons import top_reasons
from pipeline.scorecard import grade_names, pd_to_score, score_to_grade_index
from pipeline.validate import ValidationResult, validate_frame

OUTPUT_BASE = ["applicant_id", "pd", "score", "grade", "decision", "credit_limit"]


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
        return (
            OUTPUT_BASE
            + [f"reason_{i}" for i in range(1, self.reason_k + 1)]
            + ["decision_reasons", "model_name", "model_version"]
        )

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
        for col in ("pd", "score", "credit_limit"):
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
        # Text columns carry "" rather than a missing value: engines such as Spark render None as "nan".
        text = [c for c in self.output_columns if c not in ("pd", "score", "credit_limit")]
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
        if contrib is not None:
            texts = [s.reason for s in self.specs]
            reasons = top_reasons(contrib, texts, self.reason_k)
            for i in range(self.reason_k):
                out[f"reason_{i + 1}"] = reasons[:, i]
        out["decision_reasons"] = decisions["decision_reasons"].to_numpy()
        out["model_name"] = self.meta.get("model_name", "")
        out["model_version"] = str(self.meta.get("model_version", ""))
        return out

    def _policy_inputs(self, valid, pd_, grade_idx, estimate) -> PolicyInputs:
        n = len(valid)

        def col(name):
            return valid[name].to_numpy(dtype=float) if name in valid else np.full(n, np.nan)

        income, debt = col("monthly_income"), col("monthly_debt_payments")
        residual = income - debt - np.asarray(living_cost(valid, self.features_cfg), dtype=float)
        recent = np.nan_to_num(col("delinquencies_90d")) > 0
        status_cols = [c for c in valid.columns if c.startswith("repayment_status_m")]
        if status_cols:
            recent |= np.nan_to_num(valid[status_cols].to_numpy(dtype=float), nan=-2).max(axis=1) >= 3
        return PolicyInputs(pd_, grade_idx, estimate, income, debt, residual, recent)
