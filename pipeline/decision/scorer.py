"""The whole scoring path in one picklable object: validate -> features -> PD -> limit -> policy.

Training evaluates with it and the MLflow artifact wraps it, so production scores with
the very functions training used. It holds configs, names and boosters only; feature
functions are looked up from `pipeline.features` by name when it is loaded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from pipeline.config import ContractConfig, FeatureConfig, PolicyConfig, ScorecardConfig, ScoringConfig
from pipeline.data.validate import ValidationResult, validate_frame
from pipeline.decision.offers import (
    COUNTER,
    OFFER_COLUMNS,
    declined_part,
    offer_frame,
    offer_inputs_from_frame,
    offer_parts,
    search_offers,
)
from pipeline.decision.policy import DECLINE, REASONS, PolicyInputs, decide
from pipeline.decision.products import ProductsConfig
from pipeline.decision.scorecard import pd_to_score, score_to_grade_index
from pipeline.decision.textcols import labels_column, repeated_text
from pipeline.decision.treeshap import shap_values, top_k_exact
from pipeline.features import FeatureSpec, compute_features, feature_columns, feature_dictionary, living_cost
from pipeline.model.boosters import LimitModel, PDModel, to_matrix

log = logging.getLogger(__name__)
OUTPUT_BASE = ["applicant_id", "pd", "score", "grade", "decision", "credit_limit"]
TEXT_OFFER_COLUMNS = ("product", "offer_type", "offer_codes", "offer_reasons")
REQUEST_COLUMNS = ("requested_amount", "requested_term_months")


class _OneBlasThread:
    """numpy's BLAS at one thread while chunks are featurised and scored.

    Why: the forests already use every core (the compiled forest's thread pool, numba's prange)
    and the batch job featurises the next chunk in a second thread meanwhile; BLAS threads on top
    oversubscribe the cores. Counted, so overlapping users (that producer and the scoring thread)
    restore the original setting only when the last one leaves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._limits: Any = None  # the controller's limiter while limited
        self._controller: ThreadpoolController | None = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                # The loaded libraries are found once per process (at first use, when numpy's BLAS is loaded):
                # `threadpool_limits` looked for them on every call, 2.5 ms each in a worker (measured).
                if self._controller is None:
                    self._controller = ThreadpoolController()
                self._limits = self._controller.limit(limits=1, user_api="blas")
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._limits is not None:
                    self._limits.restore_original_limits()
                    self._limits = None


one_blas_thread = _OneBlasThread()


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
    compiled: bool = True  # score with the compiled forests when the models carry them (scoring.compiled)
    exact_reasons: str = "adverse"  # rows with exact TreeSHAP reasons: adverse | all | none (scoring.exact_reasons)

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
        offers = [*REQUEST_COLUMNS, *OFFER_COLUMNS] if self.products is not None else []
        reasons = [f"reason_{i}" for i in range(1, self.reason_k + 1)] + ["reason_method"] * (self.reason_k > 0)
        return OUTPUT_BASE + offers + reasons + ["decision_reasons", "model_name", "model_version"]

    @property
    def numeric_outputs(self) -> list[str]:
        offers = [c for c in OFFER_COLUMNS if c not in TEXT_OFFER_COLUMNS] if self.products is not None else []
        requests = list(REQUEST_COLUMNS) if self.products is not None else []
        return ["pd", "score", "credit_limit", *requests, *offers]

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
        """The model's input matrix, stacked from the feature columns (no frame in between)."""
        with one_blas_thread():
            if not self.feature_names:
                return np.empty((len(valid), 0))
            columns = feature_columns(valid, self.specs, self.features_cfg, self.categories)
            return to_matrix(columns, self.feature_names)

    def compile(self, scoring: ScoringConfig | None = None) -> dict:
        """Stamp the scoring settings and build the native forests shipped in the artifact (at registration).

        Why at registration: code generation takes seconds and LLVM's code generator, loading the
        blob at scoring takes milliseconds. `scoring.compiled: false` ships without blobs (numba).
        """
        scoring = scoring or ScoringConfig()
        self.compiled, self.exact_reasons = scoring.compiled, scoring.exact_reasons
        models = {"pd": (self.pd_model, self.reason_k > 0), "limit": (self.limit_model, False)}
        report: dict = {"enabled": scoring.compiled}
        for name, (model, contrib) in models.items():
            if model is None:
                continue
            if scoring.compiled:
                report[name] = model.compile(contrib=contrib)
            else:
                model.compiled_blob, model._engine = None, None
        self.meta["compiled"] = report
        return report

    def score_valid(self, valid: pd.DataFrame, X: np.ndarray | None = None) -> pd.DataFrame:
        """Scores for rows that passed validation, in their order."""
        return pd.DataFrame(self.score_columns(valid, X))

    def score_columns(self, valid: pd.DataFrame, X: np.ndarray | None = None) -> dict[str, Any]:
        """`score_valid`'s columns, by name in output order (numpy arrays and pandas text arrays), before any frame:
        the batch job makes its Arrow table from them directly (a frame would copy the numbers into one block
        and Arrow would split them again)."""
        with one_blas_thread():
            X = self.matrix(valid) if X is None else X
            pd_, contrib = self._pd(X)
            score = pd_to_score(pd_, self.scorecard)
            grade_idx = score_to_grade_index(score, self.scorecard)
            decisions = self._decide(valid, X, pd_, grade_idx)
            if self.products is not None:
                decisions = self._with_offers(decisions, valid, pd_, grade_idx)
            # columns are handed over as arrays (.array: no copy, no text turned into Python objects and back)
            columns = {
                "applicant_id": valid["applicant_id"].array,
                "pd": pd_,
                "score": score,
                "grade": labels_column([g.name for g in self.scorecard.grades], grade_idx),
                "decision": decisions["decision"].array,
                "credit_limit": decisions["credit_limit"].to_numpy(),
            }
            if self.products is not None:
                for col in REQUEST_COLUMNS:  # what was asked, beside what is offered (statements, audits)
                    columns[col] = valid[col].to_numpy(dtype=float) if col in valid else np.full(len(valid), np.nan)
                for col in OFFER_COLUMNS:
                    columns[col] = decisions[col].array
            if self.reason_k:
                columns.update(self._reasons(X, contrib, decisions))
            n = len(valid)
            columns["decision_reasons"] = decisions["decision_reasons"].array
            columns["model_name"] = repeated_text(self.meta.get("model_name", ""), n)
            columns["model_version"] = repeated_text(str(self.meta.get("model_version", "")), n)
            return columns

    def _pd(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated PD, and path attribution from the same walk of the trees when some row will use it."""
        if self.reason_k and self.exact_reasons != "all":
            raw, contrib = self.pd_model.raw_and_contrib(X, self.compiled)
            return self.pd_model.calibrator(raw), contrib
        return self.pd_model.predict(X, self.compiled), None

    def _limit(self, X: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The limit model's estimate for `rows` of X (all rows when None)."""
        assert self.limit_model is not None
        cols = [self.feature_names.index(n) for n in self.limit_model.names]
        sub = X[:, cols] if rows is None else X[np.ix_(rows, np.asarray(cols))]
        return self.limit_model.predict(sub, self.compiled)

    def _decide(self, valid: pd.DataFrame, X: np.ndarray, pd_, grade_idx) -> pd.DataFrame:
        """The policy's decisions, with the limit model run only for rows whose outcome can depend on it.

        The skipped rows are checked against the policy's own verdict; should the policy ever
        disagree (a rule changed), their estimates are computed and the policy runs again.
        """
        n = len(valid)
        inputs = self._policy_inputs(valid, pd_, grade_idx, np.full(n, np.nan))
        if self.limit_model is None:
            return decide(inputs, self.policy, self.scorecard)
        skip = self._declined_before_limit(inputs)
        estimate = np.full(n, np.nan)
        estimate[~skip] = self._limit(X, None if not skip.any() else np.flatnonzero(~skip))
        decisions = decide(replace(inputs, limit_estimate=estimate), self.policy, self.scorecard)
        wrong = skip & ~self._limit_free(decisions, pd_)
        if wrong.any():
            log.warning("%d rows skipped the limit model but the policy did not decline them: rescored", wrong.sum())
            estimate[wrong] = self._limit(X, np.flatnonzero(wrong))
            decisions = decide(replace(inputs, limit_estimate=estimate), self.policy, self.scorecard)
        return decisions

    def _declined_before_limit(self, inputs: PolicyInputs) -> np.ndarray:
        """Rows whose outputs cannot depend on the limit estimate, from the policy's rules (`policy.decide`).

        Hard-rule declines (residual income, a recent 90+ days delinquency, unknown income under
        `unknown_income: decline`): their offer is replaced by the decline. PD above the cutoff only
        without products: with products the decline notice also lists LIMIT_BELOW_MIN, from the limit.
        """
        p = self.policy
        residual = inputs.residual_income
        hard = p.require_positive_residual_income & ~(residual > 0) & ~np.isnan(residual)
        hard |= p.decline_recent_90d & inputs.recent_90d
        hard |= (p.unknown_income == "decline") & np.isnan(inputs.monthly_income)
        if self.products is None:
            hard |= inputs.pd > p.pd_cutoff
        return np.asarray(hard, dtype=bool)

    def _limit_free(self, decisions: pd.DataFrame, pd_: np.ndarray) -> np.ndarray:
        """Rows the policy declined before the limit step, as `_declined_before_limit` assumed."""
        free = decisions["hard_decline"].to_numpy(dtype=bool)
        if self.products is None:
            declined = decisions["decision"].to_numpy() == DECLINE
            free = free | (declined & (pd_ > self.policy.pd_cutoff))
        return free

    def _exact_rows(self, decisions: pd.DataFrame) -> np.ndarray:
        """Rows whose reasons are exact TreeSHAP: adverse decisions (declines and counter-offers) by default."""
        n = len(decisions)
        if self.exact_reasons == "all":
            return np.ones(n, dtype=bool)
        if self.exact_reasons == "none":
            return np.zeros(n, dtype=bool)
        if self.products is not None:
            kind = decisions["offer_type"].to_numpy()
            return (kind == DECLINE) | (kind == COUNTER)
        return decisions["decision"].to_numpy() == DECLINE

    def _reasons(self, X: np.ndarray, contrib: np.ndarray | None, decisions) -> dict[str, object]:
        """reason_1..k and reason_method: exact TreeSHAP on the rows that need it, path attribution elsewhere.

        The selection is `top_reasons`'s (`treeshap.top_k_exact`), kept as feature indices until the texts."""
        exact = self._exact_rows(decisions)
        if contrib is None:
            contrib = np.zeros(X.shape)
        if exact.any():
            rows = np.flatnonzero(exact)
            contrib[rows] = shap_values(self.pd_model, X[rows])
        texts = [s.reason for s in self.specs]
        idx = top_k_exact(contrib, self.reason_k)  # -1 pads: fewer than k features raise risk
        out: dict[str, object] = {f"reason_{i + 1}": labels_column(texts, idx[:, i]) for i in range(self.reason_k)}
        out["reason_method"] = labels_column(["path", "exact"], exact.astype(np.int64))
        return out

    def _with_offers(self, decisions: pd.DataFrame, valid: pd.DataFrame, pd_, grade_idx) -> pd.DataFrame:
        """The offer for what was asked; the decision and limit follow the offer.

        Declines that no product can change (residual income, a recent 90+ days delinquency,
        unknown income under `unknown_income: decline`) keep the policy's codes and words.
        """

        assert self.products is not None
        living = np.broadcast_to(np.asarray(living_cost(valid, self.features_cfg), dtype=float), (len(valid),))
        inputs = offer_inputs_from_frame(
            valid, pd_, grade_idx, living, decisions["risk_limit"].to_numpy(), self.products
        )
        hard = decisions["hard_decline"].to_numpy(dtype=bool)
        if hard.any():  # no offer can change a hard decline: search only the others
            offers = self._offers_and_hard_declines(inputs, hard, decisions["decision_reasons"])
        else:
            offers = search_offers(inputs, self.products, pd_cutoff=self.policy.pd_cutoff)
        approved = (offers["offer_type"] != "decline").to_numpy(dtype=bool)
        offers["decision"] = labels_column(("decline", "approve"), approved.astype(np.intp))
        offers["credit_limit"] = np.where(approved, offers["offer_amount"].to_numpy(dtype=float), 0.0)
        offers["decision_reasons"] = offers["offer_codes"]
        return offers

    def _offers_and_hard_declines(self, inputs, hard: np.ndarray, codes: pd.Series) -> pd.DataFrame:
        """Offers searched for the rows not hard-declined; hard declines keep their product and the policy's
        codes and words, with no figures. Words are made once per distinct set of codes, and the frame once
        from numpy and Arrow columns (no Python string per row: this step runs on every batch)."""

        assert self.products is not None
        searched = np.flatnonzero(~hard)
        parts = []
        if len(searched):
            found = offer_parts(inputs.take(~hard), self.products, pd_cutoff=self.policy.pd_cutoff)
            parts = [(searched[rows], columns) for rows, columns in found]
        held = np.flatnonzero(hard)
        if len(held):
            index, sets = pd.factorize(codes.iloc[held], use_na_sentinel=False)
            words = ["; ".join(REASONS[c].lower() for c in str(s).split(";") if c in REASONS) for s in sets]
            parts.append((held, declined_part(index, list(sets), words)))
        return offer_frame(inputs.product, parts)

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
