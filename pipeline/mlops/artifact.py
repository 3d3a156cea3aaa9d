"""The scoring artifact: one MLflow pyfunc model that carries the whole scoring path.

It holds the pickled `Scorer` (contract, feature settings, PD model and calibrator,
limit model, policy, dictionary names, drift references) and the `pipeline` package
itself as code, so a batch job, a notebook or a Spark executor scores with exactly
the functions training used.

Loading it unpickles code, so a registered version is loaded only from a private copy whose
every file matches the sha256 recorded at registration (`load_model_scorer`).
"""

from __future__ import annotations

import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema, TensorSpec

import pipeline
from pipeline.data.contract import contract_columns
from pipeline.decision.scorer import Scorer
from pipeline.errors import ModelNotFoundError

ARTIFACT_NAME = "scoring_model"
# What the scoring path imports directly (tests/test_artifact.py checks every module a scoring process
# imports comes from these or their own requirements), pinned as installed so the artifact can
# rebuild its environment (`env_manager="virtualenv"`). Training-only packages stay out.
RUNTIME_PACKAGES = [
    "mlflow",
    "lightgbm",
    "scikit-learn",
    "scipy",
    "pandera",
    "pandas",
    "numpy",
    "pyarrow",
    "joblib",
    "pydantic",
    "pyyaml",
    "numba",
    "llvmlite",
]


class CreditScoringModel(PythonModel):
    """pyfunc wrapper: predict(DataFrame in contract columns) -> one score row per input row."""

    def load_context(self, context) -> None:
        self.scorer: Scorer = joblib.load(context.artifacts["scorer"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.scorer.score_all(pd.DataFrame(model_input), origin="pyfunc input")


def pip_requirements() -> list[str]:
    """Exact versions of what is installed now: explicit, so logging skips slow inference."""
    reqs = []
    for name in RUNTIME_PACKAGES:
        try:
            reqs.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            reqs.append(name)
    return reqs


def _spec_type(dtype: str) -> str:
    return {"float": "double", "int": "double", "date": "datetime"}.get(dtype, "string")


def signature(scorer: Scorer) -> ModelSignature:
    """Inputs: the contract columns the model was trained with (protected ones included, optional);
    a Spark UDF passes columns by position in this order."""
    required = set(scorer.required_columns)
    trained_with = set(scorer.meta.get("input_columns", required))
    inputs: list[ColSpec | TensorSpec] = [
        ColSpec(_spec_type(c.dtype), c.name, required=c.name in required)
        for c in contract_columns(scorer.contract)
        if c.role != "target" and c.name in trained_with
    ]
    outputs: list[ColSpec | TensorSpec] = [
        ColSpec(
            "double" if name in scorer.numeric_outputs else "string",
            name,
            required=not name.startswith("reason_"),
        )
        for name in scorer.output_columns
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def log_scoring_model(scorer: Scorer, input_example: pd.DataFrame) -> mlflow.models.model.ModelInfo:
    """Log the artifact into the active run; returns its ModelInfo (model_uri for registration)."""
    return log_pickled_model(scorer, CreditScoringModel(), signature(scorer), input_example)


def log_pickled_model(
    scorer,
    python_model: PythonModel,
    model_signature: ModelSignature,
    input_example: pd.DataFrame,
    **extra_metadata: str,
) -> mlflow.models.model.ModelInfo:
    """One pyfunc convention for every scoring object (applicants, accounts): the pickled scorer as an
    artifact, the `pipeline` package as code, pinned requirements, version and commit as metadata."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scorer.joblib"
        joblib.dump(scorer, path, compress=3)
        return mlflow.pyfunc.log_model(
            name=ARTIFACT_NAME,
            python_model=python_model,
            artifacts={"scorer": str(path)},
            code_paths=[str(Path(pipeline.__file__).parent)],
            signature=model_signature,
            input_example=input_example,
            pip_requirements=pip_requirements(),
            metadata={
                "project_version": pipeline.__version__,
                **extra_metadata,
                "git_commit": scorer.meta.get("git_commit", "unknown"),
                "model_name": scorer.meta.get("model_name", ""),
                "model_version": str(scorer.meta.get("model_version", "")),
            },
        )


def load_model_scorer(model_uri: str, version: str | None) -> Scorer:
    """The scorer of a registry version (verified first) or of a local model folder (trusted as given)."""
    from pipeline.mlops.registry import model_name, verified_copy

    try:
        if version is None or not model_uri.startswith("models:/"):
            return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().scorer
        with tempfile.TemporaryDirectory() as tmp:
            local = verified_copy(model_name(model_uri), version, tmp)
            return mlflow.pyfunc.load_model(str(local)).unwrap_python_model().scorer
    except (OSError, MlflowException) as err:
        raise ModelNotFoundError(f"cannot load model {model_uri}: {err}") from None
