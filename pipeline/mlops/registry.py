"""Model registry: versions, the champion/challenger aliases, the promotion gate, the audit trail.

Every registered version enters as `challenger`; the gate moves `champion` only when the
challenger is at least as good on the same holdout (within a tolerance) and meets the
calibration, stability and fairness limits. Every alias move is appended to the
registered model's `alias_history` tag, so who-was-champion-when is queryable.

Each version records the sha256 of every file of its artifact (tag `artifact_sha256`),
checked before anything of it is unpickled: the artifact store holds pickles, which are code.
Registration holds a lock (on the SQLite store) from `next_version` to `register`, so two
concurrent registrations cannot stamp the same number into their artifacts.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline.config import GateConfig
from pipeline.errors import ArtifactIntegrityError, ModelNotFoundError, TrackingError

CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "alias_history"
HISTORY_KEEP = 40
DIGEST_TAG = "artifact_sha256"
_held_lock: dict[str, int] = {}  # lock file -> fd, held from next_version() until register() ends


@dataclass
class GateVerdict:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)

    def text(self) -> str:
        head = "PROMOTE" if self.promote else "KEEP CHAMPION"
        return head + "\n" + "\n".join(f"  - {r}" for r in self.reasons)


def client() -> MlflowClient:
    from pipeline.mlops.tracking import check_store_exists

    check_store_exists()
    return MlflowClient()


def _lock_path() -> Path | None:
    """A lock file beside a SQLite store; None for a server (its registry has no lock we can take)."""
    uri = mlflow.get_registry_uri() or ""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :] + ".register.lock")


def acquire_registration_lock() -> None:
    """Serialise registrations on one SQLite store across processes; the OS frees it if the process dies."""
    path = _lock_path()
    if path is None or str(path) in _held_lock:
        return
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _held_lock[str(path)] = fd


def release_registration_lock() -> None:
    for key in list(_held_lock):
        fd = _held_lock.pop(key)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextmanager
def registration_lock() -> Iterator[None]:
    """`with registration_lock():` around next_version .. register (what stages/model.py::register should do).

    Re-entrant: inside a held lock it does nothing, so alias moves can take it too.
    """
    path = _lock_path()
    if path is None or str(path) in _held_lock:
        yield
        return
    acquire_registration_lock()
    try:
        yield
    finally:
        release_registration_lock()


def next_version(name: str) -> int:
    """The number the next registration will get; takes the registration lock, released by `register`."""
    acquire_registration_lock()
    try:
        versions = client().search_model_versions(f"name='{name}'")
    except MlflowException:
        return 1
    return max((int(v.version) for v in versions), default=0) + 1


LOCAL_FILES = {"registered_model_meta"}  # written by MLflow into the download folder, not read from the store


def manifest(folder: Path) -> dict[str, str]:
    """sha256 of every file under folder, by relative path."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in LOCAL_FILES):
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out[path.relative_to(folder).as_posix()] = h.hexdigest()
    return out


def artifact_manifest(model_uri: str) -> dict[str, str]:
    """Digests of a logged model's files, as the artifact store holds them now."""
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        return manifest(Path(local))


def compare_manifests(recorded: dict[str, str], found: dict[str, str], label: str) -> None:
    """Refuse any file that differs, is missing or was added, naming it (exit 8)."""
    changed = sorted(k for k in recorded.keys() & found.keys() if recorded[k] != found[k])
    missing, added = sorted(recorded.keys() - found.keys()), sorted(found.keys() - recorded.keys())
    if changed or missing or added:
        parts = [
            f"{what}: {', '.join(files[:5])}"
            for what, files in (("changed", changed), ("missing", missing), ("added", added))
            if files
        ]
        raise ArtifactIntegrityError(
            f"{label}: the artifact differs from the sha256 recorded at registration ({'; '.join(parts)}); "
            "refusing to load it (pickles run code): restore the artifact store or re-register the model"
        )


def verified_copy(name: str, version: str, dst: str | Path) -> Path:
    """Download a version's artifact to dst and check every file against the digests recorded at registration."""
    label = f"models:/{name}/{version}"
    recorded = client().get_model_version(name, version).tags.get(DIGEST_TAG)
    if not recorded:
        raise ArtifactIntegrityError(
            f"{label} has no recorded artifact digests (registered before they were recorded, or its registration "
            "was interrupted): re-register it to score with it"
        )
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=label, dst_path=str(dst)))
    compare_manifests(json.loads(recorded), manifest(local), label)
    return local


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
    """Move an alias and append the move to the audit trail (under the lock: two moves must not lose an event)."""
    with registration_lock():
        _set_alias(name, alias, version, action, reason)


def _set_alias(name: str, alias: str, version: str, action: str, reason: str) -> None:
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
    """Register the logged model as a new version with alias `challenger`, with its files' sha256.

    The artifact carries `expected_version`. Under the lock taken by `next_version` no other
    registration can come between; without one (a tracking server), a version that came out
    different is deleted and the stage fails, so no version is ever labelled with another's number.
    """
    try:
        digests = artifact_manifest(model_uri)
        mv = mlflow.register_model(model_uri, name, tags={**tags, DIGEST_TAG: json.dumps(digests)})
        if int(mv.version) != expected_version:
            client().delete_model_version(name, mv.version)
            raise TrackingError(
                f"registering {name!r}: another registration took v{expected_version} meanwhile (the artifact "
                f"records v{expected_version}, the registry gave v{mv.version}); v{mv.version} was removed: "
                "rerun register"
            )
        set_alias(name, CHALLENGER, str(mv.version), "register", "new version")
    except MlflowException as err:
        raise TrackingError(f"registering {model_uri} as {name!r} failed: {err}") from None
    finally:
        release_registration_lock()
    return str(mv.version)


def _measured(metrics: dict[str, float | None], key: str) -> float:
    """A metric the gate cannot judge without (only `min_air` may be None)."""
    value = metrics[key]
    if value is None:
        raise ValueError(f"gate: the challenger's {key} was not measured")
    return value


def gate(challenger: dict[str, float | None], champion: dict[str, float] | None, cfg: GateConfig) -> GateVerdict:
    """Pure decision: challenger metrics vs champion metrics measured on the same holdout.

    With no champion, the first version is promoted (something must score), and the
    checks are still reported so a failing first model is visible in the verdict.
    """
    reasons, ok = [], True
    auc, ece, psi = (_measured(challenger, key) for key in ("roc_auc", "ece", "score_psi"))
    if champion is not None:
        drop = champion["roc_auc"] - auc
        passed = drop <= cfg.auc_tolerance
        ok &= passed
        reasons.append(
            f"AUC {auc:.4f} vs champion {champion['roc_auc']:.4f} on the same holdout "
            f"(drop {drop:+.4f}, tolerance {cfg.auc_tolerance}): {'pass' if passed else 'FAIL'}"
        )
    checks = [
        ("ECE", ece, cfg.max_ece, ece <= cfg.max_ece, "<="),
        ("score PSI train vs test", psi, cfg.max_score_psi, psi <= cfg.max_score_psi, "<="),
    ]
    air = challenger.get("min_air")
    if air is None:  # no protected attribute assessed: the check cannot apply, and must not read "pass"
        reasons.append(
            f"min adverse impact ratio >= {cfg.min_adverse_impact_ratio}: not applicable (no protected attribute)"
        )
    else:
        checks.append(
            ("min adverse impact ratio", air, cfg.min_adverse_impact_ratio, air >= cfg.min_adverse_impact_ratio, ">=")
        )
    for label, value, limit, passed, op in checks:
        ok &= bool(passed)
        reasons.append(f"{label} {value:.4f} {op} {limit}: {'pass' if passed else 'FAIL'}")
    if champion is None:
        reasons.insert(
            0, "no champion yet: the first version becomes champion" + ("" if ok else " although a check below failed")
        )
        ok = True
    return GateVerdict(bool(ok), reasons, dict(challenger))


def model_name(uri: str) -> str:
    return uri[len("models:/") :].split("@")[0].split("/")[0]


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
