"""Model registry: versions, the champion/challenger aliases, the promotion gate, the audit trail.

Every registered version enters as `challenger`; the gate moves `champion` only when the
challenger is at least as good on the same holdout (within a tolerance) and meets the
calibration, stability and fairness limits. Every alias move is appended to the
registered model's `alias_history` tag, so who-was-champion-when is queryable.
"""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import dataclass, field

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline.config import GateConfig
from pipeline.errors import ModelNotFoundError, TrackingError

CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "alias_history"
HISTORY_KEEP = 40


@dataclass
class GateVerdict:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        head = "PROMOTE" if self.promote else "KEEP CHAMPION"
        return head + "\n" + "\n".join(f"  - {r}" for r in self.reasons)


def client() -> MlflowClient:
    return MlflowClient()


def next_version(name: str) -> int:
    try:
        versions = client().search_model_versions(f"name='{name}'")
    except MlflowException:
        return 1
    return max((int(v.version) for v in versions), default=0) + 1


def alias_version(name: str, alias: str) -> str | None:
    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def describe_registry(name: str | None = None) -> str:
    """What exists: registered names, or a name's versions and aliases (for 'not found' messages)."""
    c = client()
    if name is None or not c.search_registered_models(f"name='{name}'"):
        names = [m.name for m in c.search_registered_models()]
        return "registered models: " + (", ".join(names) if names else "(none)")
    model = c.get_registered_model(name)
    versions = sorted(int(v.version) for v in c.search_model_versions(f"name='{name}'"))
    aliases = ", ".join(f"@{a}=v{v}" for a, v in sorted(model.aliases.items())) or "(no aliases)"
    return f"model {name!r}: versions {versions}; aliases {aliases}"


def history(name: str) -> list[dict]:
    try:
        tags = client().get_registered_model(name).tags
    except MlflowException as err:
        raise ModelNotFoundError(f"no registered model {name!r}; {describe_registry()}") from err
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def set_alias(name: str, alias: str, version: str, action: str, reason: str) -> None:
    """Move an alias and append the move to the audit trail."""
    c = client()
    previous = alias_version(name, alias)
    c.set_registered_model_alias(name, alias, str(version))
    events = history(name)
    events.append(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "alias": alias,
            "version": str(version),
            "previous": previous,
            "action": action,
            "reason": reason,
            "user": getpass.getuser(),
        }
    )
    c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(events[-HISTORY_KEEP:]))


def register(model_uri: str, name: str, expected_version: int, tags: dict[str, str]) -> str:
    """Register the logged model as a new version with alias `challenger`."""
    try:
        mv = mlflow.register_model(model_uri, name, tags=tags)
    except MlflowException as err:
        raise TrackingError(f"registering {model_uri} as {name!r} failed: {err}") from None
    if int(mv.version) != expected_version:
        client().set_model_version_tag(
            name, mv.version, "version_mismatch", f"artifact records v{expected_version}; registry gave v{mv.version}"
        )
    set_alias(name, CHALLENGER, str(mv.version), "register", "new version")
    return str(mv.version)


def gate(challenger: dict[str, float], champion: dict[str, float] | None, cfg: GateConfig) -> GateVerdict:
    """Pure decision: challenger metrics vs champion metrics measured on the same holdout.

    With no champion, the first version is promoted (something must score), and the
    checks are still reported so a failing first model is visible in the verdict.
    """
    reasons, ok = [], True
    if champion is not None:
        drop = champion["roc_auc"] - challenger["roc_auc"]
        passed = drop <= cfg.auc_tolerance
        ok &= passed
        reasons.append(
            f"AUC {challenger['roc_auc']:.4f} vs champion {champion['roc_auc']:.4f} on the same holdout "
            f"(drop {drop:+.4f}, tolerance {cfg.auc_tolerance}): {'pass' if passed else 'FAIL'}"
        )
    checks = [
        ("ECE", challenger["ece"], cfg.max_ece, challenger["ece"] <= cfg.max_ece, "<="),
        (
            "score PSI train vs test",
            challenger["score_psi"],
            cfg.max_score_psi,
            challenger["score_psi"] <= cfg.max_score_psi,
            "<=",
        ),
        (
            "min adverse impact ratio",
            challenger["min_air"],
            cfg.min_adverse_impact_ratio,
            challenger["min_air"] >= cfg.min_adverse_impact_ratio,
            ">=",
        ),
    ]
    for label, value, limit, passed, op in checks:
        ok &= bool(passed)
        reasons.append(f"{label} {value:.4f} {op} {limit}: {'pass' if passed else 'FAIL'}")
    if champion is None:
        reasons.insert(
            0, "no champion yet: the first version becomes champion" + ("" if ok else " although a check below failed")
        )
        ok = True
    return GateVerdict(bool(ok), reasons, dict(challenger))


def resolve_uri(uri: str) -> tuple[str, str | None]:
    """(model URI to load, registry version or None) for models:/NAME@alias, models:/NAME/VERSION or a path."""
    if not uri.startswith("models:/"):
        return uri, None
    body = uri[len("models:/") :]
    c = client()
    try:
        if "@" in body:
            name, alias = body.split("@", 1)
            return uri, str(c.get_model_version_by_alias(name, alias).version)
        name, _, ver = body.partition("/")
        return uri, str(c.get_model_version(name, ver).version)
    except MlflowException:
        name = body.split("@")[0].split("/")[0]
        raise ModelNotFoundError(f"model {uri} not found; {describe_registry(name)}") from None


def force_promote(name: str, version: str, reason: str) -> None:
    """Override the gate: make `version` champion, recording the reason on the version and in the history."""
    c = client()
    try:
        c.get_model_version(name, str(version))
    except MlflowException:
        raise ModelNotFoundError(f"model {name!r} has no version {version}; {describe_registry(name)}") from None
    c.set_model_version_tag(name, str(version), "forced_promotion_reason", reason)
    set_alias(name, CHAMPION, str(version), "force", reason)


def rollback(name: str, reason: str) -> tuple[str, str]:
    """Move champion back to the version that was champion before the current one."""
    current = alias_version(name, CHAMPION)
    if current is None:
        raise ModelNotFoundError(f"model {name!r} has no champion to roll back; {describe_registry(name)}")
    earlier = [e for e in history(name) if e["alias"] == CHAMPION and e["version"] == current and e["previous"]]
    if not earlier:
        raise ModelNotFoundError(f"model {name!r}: champion v{current} has no previous champion in the alias history")
    previous = earlier[-1]["previous"]
    set_alias(name, CHAMPION, previous, "rollback", reason)
    return current, previous
