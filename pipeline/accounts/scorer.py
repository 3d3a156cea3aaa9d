"""The account scoring path as one picklable object: contract check, behaviour features, calibrated PD.

Why one object: the registered artifact, the batch review and the notebook must turn a snapshot into
a PD with exactly the functions training used. It mirrors the applicant `Scorer`'s interface where the
shared machinery relies on it (`meta`, `validate`, `score_all`), so `pipeline.batch.job.load_scorer` and
the registry's verified loading serve both kinds of model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.accounts.behaviour import BY_NAME, HISTORY, BehaviourSpec, compute_behaviour
from pipeline.accounts.contract import ID, validate_accounts
from pipeline.accounts.settings import HistorySettings
from pipeline.data.validate import ValidationResult
from pipeline.model.boosters import PDModel, to_matrix

KIND = "accounts"
# Columns the review itself reads besides the model's inputs (limits, exposure, the month of a decision).
REVIEW_COLUMNS = (ID, "snapshot_month", "credit_limit", "balance")
OUTPUT_COLUMNS = [ID, "snapshot_month", "pd", "status", "reasons", "model_name", "model_version"]


@dataclass
class AccountScorer:
    history: HistorySettings
    feature_names: list[str]
    pd_model: PDModel
    reference: dict[str, dict] = field(default_factory=dict)  # training distributions, for drift
    meta: dict = field(default_factory=dict)
    kind: str = KIND

    @property
    def specs(self) -> list[BehaviourSpec]:
        return [BY_NAME[name] for name in self.feature_names]

    @property
    def required_columns(self) -> list[str]:
        """Every column a snapshot must carry to be scored and reviewed (history prefixes expanded)."""
        cols = list(REVIEW_COLUMNS)
        for spec in self.specs:
            for name in spec.inputs:
                expanded = [f"{name}_m{m}" for m in range(1, self.history.months + 1)] if name in HISTORY else [name]
                cols += [c for c in expanded if c not in cols]
        return cols

    def validate(self, frame: pd.DataFrame, origin: str = "input", row_offset: int = 0) -> ValidationResult:
        """The account contract; a missing required column stops the file, a bad value quarantines the row."""
        return validate_accounts(
            frame, self.history.months, origin, required=self.required_columns, row_offset=row_offset
        )

    def matrix(self, valid: pd.DataFrame) -> np.ndarray:
        return to_matrix(compute_behaviour(valid, self.history, self.specs), self.feature_names)

    def predict(self, valid: pd.DataFrame) -> np.ndarray:
        """Calibrated PD of validated rows, in row order."""
        if not len(valid):
            return np.empty(0)
        return self.pd_model.predict(self.matrix(valid))

    def score_all(self, frame: pd.DataFrame, origin: str = "input") -> pd.DataFrame:
        """One row per input row, in input order: the PD, or status 'rejected' with the failed rules (pyfunc, Spark)."""
        frame = frame.reset_index(drop=True)
        result = self.validate(frame, origin)
        out = pd.DataFrame(index=np.arange(len(frame)), columns=OUTPUT_COLUMNS).astype(object)
        out[ID] = frame[ID].astype(str).to_numpy() if ID in frame else ""
        out["snapshot_month"] = frame["snapshot_month"].astype(str).to_numpy() if "snapshot_month" in frame else ""
        out["status"], out["reasons"], out["pd"] = "scored", "", np.nan
        if result.rows_valid:
            out.loc[result.valid["row_number"].to_numpy() - 1, "pd"] = self.predict(result.valid)
        if len(result.rejects):
            why = result.rejects.groupby("row_number")[["column", "rule"]].apply(
                lambda g: "; ".join(g["column"] + ": " + g["rule"])
            )
            pos = why.index.to_numpy() - 1
            out.loc[pos, "status"], out.loc[pos, "reasons"] = "rejected", why.to_numpy()
        out["pd"] = pd.to_numeric(out["pd"], errors="coerce").astype(float)
        out["model_name"] = self.meta.get("model_name", "")
        out["model_version"] = str(self.meta.get("model_version", ""))
        return out
