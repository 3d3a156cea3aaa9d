"""The behaviour-PD artifact: an MLflow pyfunc that scores account snapshots, by the applicant artifact's conventions.

Same name inside the run (`scoring_model`), same pinned runtime requirements, the `pipeline` package as
code, the pickled scorer as its one artifact, and a `scorer` attribute after loading - so the registry's
sha256-verified loading (`pipeline.mlops.artifact.load_model_scorer`) and the batch job's `load_scorer`
serve it unchanged.
"""

from __future__ import annotations

import joblib
import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema, TensorSpec

from pipeline.accounts.contract import account_columns
from pipeline.accounts.scorer import OUTPUT_COLUMNS, AccountScorer
from pipeline.mlops.artifact import log_pickled_model


class AccountScoringModel(PythonModel):
    """pyfunc wrapper: predict(snapshots in contract columns) -> one row per input row with its PD or why not."""

    def load_context(self, context) -> None:
        self.scorer: AccountScorer = joblib.load(context.artifacts["scorer"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.scorer.score_all(pd.DataFrame(model_input), origin="pyfunc input")


def _spec_type(dtype: str) -> str:
    return {"float": "double", "int": "double", "date": "datetime"}.get(dtype, "string")


def signature(scorer: AccountScorer) -> ModelSignature:
    """Inputs: the account contract's columns (the required ones marked so); outputs: OUTPUT_COLUMNS."""
    required = set(scorer.required_columns)
    inputs: list[ColSpec | TensorSpec] = [
        ColSpec(_spec_type(c.dtype), c.name, required=c.name in required)
        for c in account_columns(scorer.history.months)
        if c.role != "target"
    ]
    outputs: list[ColSpec | TensorSpec] = [
        ColSpec("double" if name == "pd" else "string", name) for name in OUTPUT_COLUMNS
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def log_account_model(scorer: AccountScorer, input_example: pd.DataFrame) -> mlflow.models.model.ModelInfo:
    """Log the artifact into the active run; returns its ModelInfo (model_uri for registration)."""
    return log_pickled_model(scorer, AccountScoringModel(), signature(scorer), input_example, kind="accounts")
