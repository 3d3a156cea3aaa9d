"""Running tallies of a batch job: counts, repeated ids, drift bins and bounded value samples.

They let the summary be written without a second pass over the data, in memory that does not
grow with the number of rows scored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import Config
from pipeline.data.validate import ValidationResult
from pipeline.decision.scorer import Scorer
from pipeline.evaluation.stability import bin_shares, psi_from_shares


@dataclass
class Tally:
    """Running totals across chunks, so the summary needs no second pass over the data."""

    rows_in: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    approved: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    seen_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))  # sorted id hashes
    drift_counts: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, Reservoir] = field(
        default_factory=lambda: {k: Reservoir() for k in ("pd", "score", "credit_limit")}
    )
    seconds: dict[str, float] = field(
        default_factory=lambda: {"read": 0.0, "validate": 0.0, "score": 0.0, "write": 0.0}
    )

    def accounting(self) -> dict:
        """Rows in = rows scored + rows rejected, and the rejections by rule, most frequent first."""
        return {
            "rows_in": self.rows_in,
            "rows_scored": self.rows_scored,
            "rows_rejected": self.rows_rejected,
            "rejected_by_rule": dict(sorted(self.by_rule.items(), key=lambda kv: -kv[1])),
        }

    def add_drift(self, name: str, values: np.ndarray, reference: dict) -> None:
        counts = bin_shares(values, np.asarray(reference["edges"])) * len(values)
        self.drift_counts[name] = self.drift_counts.get(name, 0) + counts

    def add_scored(self, scored: pd.DataFrame, X: np.ndarray, scorer: Scorer) -> None:
        """Drift bins per feature and for the score, value samples and approvals of one scored chunk."""
        for i, name in enumerate(scorer.feature_names):
            if name in scorer.reference:
                self.add_drift(name, X[:, i], scorer.reference[name])
        self.add_drift("__score__", scored["score"].to_numpy(), scorer.reference["__score__"])
        for key, reservoir in self.values.items():
            reservoir.add(scored[key].to_numpy(dtype=float))
        self.approved += int((scored["decision"] == "approve").sum())

    def add_rejected(self, checked: ValidationResult) -> None:
        self.rows_rejected += checked.rows_rejected
        for key, count in checked.rejected_by_rule().items():
            self.by_rule[key] = self.by_rule.get(key, 0) + count


def reject_repeated_ids(checked: ValidationResult, seen: np.ndarray) -> tuple[ValidationResult, np.ndarray]:
    """Quarantine rows whose applicant_id was already seen in an earlier chunk.

    Within a chunk the contract's uniqueness rule rejects every copy; across chunks the
    earlier copy is already written, so later copies are rejected with rule `unique`.
    Ids are kept as 64-bit hashes (80 MB for 10M rows), not strings.
    """
    valid = checked.valid
    if not len(valid):
        return checked, seen
    hashes = pd.util.hash_array(valid["applicant_id"].astype(str).to_numpy())
    pos = np.searchsorted(seen, hashes)
    repeated = (
        (pos < len(seen)) & (seen[np.minimum(pos, len(seen) - 1)] == hashes)
        if len(seen)
        else np.zeros(len(valid), bool)
    )
    fresh = np.unique(hashes[~repeated])
    seen = np.concatenate([seen, fresh])
    seen.sort(kind="stable")  # two sorted runs: timsort merges them in linear time
    if not repeated.any():
        return checked, seen
    dupes = valid.loc[repeated]
    extra = pd.DataFrame(
        {
            "row_number": dupes["row_number"].to_numpy(),
            "applicant_id": dupes["applicant_id"].to_numpy(),
            "column": "applicant_id",
            "rule": "unique",
            "value": dupes["applicant_id"].astype(str).to_numpy(),
        }
    )
    rejects = pd.concat([checked.rejects, extra], ignore_index=True).sort_values(
        "row_number", kind="stable", ignore_index=True
    )
    return replace(checked, valid=valid.loc[~repeated].reset_index(drop=True), rejects=rejects), seen


QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


class Reservoir:
    """Exact mean, min and max plus quantiles from a uniform sample of at most `size` values.

    Keeps memory flat however many rows a job scores; below `size` rows the quantiles are exact.
    """

    def __init__(self, size: int = 200_000, seed: int = 0) -> None:
        self.size, self.rng = size, np.random.default_rng(seed)
        self.sample = np.empty(0)
        self.seen, self.total = 0, 0.0
        self.low, self.high = np.inf, -np.inf

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        self.total += float(values.sum())
        self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))
        room = self.size - len(self.sample)
        if room > 0:
            self.sample = np.concatenate([self.sample, values[:room]])
        rest = values[max(room, 0) :]
        if len(rest):  # algorithm R, vectorised: value i replaces a random slot with probability size / (index + 1)
            index = self.seen + max(room, 0) + np.arange(len(rest))
            slots = (self.rng.random(len(rest)) * (index + 1)).astype(np.int64)
            keep = slots < self.size
            self.sample[slots[keep]] = rest[keep]
        self.seen += len(values)

    def summary(self) -> dict:
        if not self.seen:
            return {}
        qs = np.quantile(self.sample, QUANTILES)
        return {
            "mean": self.total / self.seen,
            "min": self.low,
            "max": self.high,
            **{f"p{int(q * 100):02d}": float(x) for q, x in zip(QUANTILES, qs, strict=True)},
        }


def summary(
    tally: Tally,
    scorer: Scorer,
    model_uri: str,
    input_path: Path,
    output_path: Path,
    rejects_path: Path,
    started: float,
    cfg: Config,
) -> dict:
    drift = {}
    for name, counts in tally.drift_counts.items():
        ref = scorer.reference[name]
        value = psi_from_shares(np.asarray(ref["shares"]), counts / max(counts.sum(), 1))
        drift["score" if name == "__score__" else name] = round(value, 5)
    warn, alert = cfg.scoring.psi_warn, cfg.scoring.psi_alert
    total = time.perf_counter() - started
    return {
        **tally.accounting(),
        "approval_rate": tally.approved / tally.rows_scored if tally.rows_scored else None,
        "pd": tally.values["pd"].summary(),
        "score": tally.values["score"].summary(),
        "credit_limit": tally.values["credit_limit"].summary(),
        "drift_psi": drift,
        "drift_warnings": sorted(k for k, v in drift.items() if warn < v <= alert),
        "drift_alerts": sorted(k for k, v in drift.items() if v > alert),
        "model_uri": model_uri,
        "model_name": scorer.meta.get("model_name"),
        "model_version": scorer.meta.get("model_version"),
        "input": str(input_path),
        "output": str(output_path),
        "rejects": str(rejects_path),
        "seconds": {**{k: round(v, 3) for k, v in tally.seconds.items()}, "total": round(total, 3)},
        "rows_per_second": round(tally.rows_in / total, 1) if total > 0 else None,
    }
