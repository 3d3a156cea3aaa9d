"""Where each stage's outputs live, the "run X first" checks and the lineage records that catch stale inputs.

Every stage writes `<stage>/lineage.json` after it succeeds: the sha256 of each file it read
and of each file it wrote. Before a stage runs, each input must exist, must be the file its
producer last wrote, and must have been made from what its producer's own inputs are now.
A failed stage deletes its record, so the outputs it left from an earlier run count as stale.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import StageInputMissing, StaleInput

# Output name -> path under the config's run folder (`output/<name>/`).
DESCRIPTIONS: dict[str, str] = {
    "ingested": "ingest/applicants.parquet",
    "ingest_report": "ingest/ingest.json",
    "valid": "validate/valid.parquet",
    "rejects": "validate/rejects.parquet",
    "validation_report": "validate/summary.json",
    "features": "features/features.parquet",
    "features_report": "features/report.json",
    "scorer": "train/scorer.joblib",
    "splits": "train/splits.npz",
    "run": "train/run.json",
    "evaluation": "evaluate/evaluation.json",
    "registration": "register/registration.json",
    "scores": "score/scores.parquet",
}


@dataclass(frozen=True)
class Paths:
    root: Path

    def __getitem__(self, name: str) -> Path:
        return self.root / DESCRIPTIONS[name]

    ingested = property(lambda self: self["ingested"])
    ingest_report = property(lambda self: self["ingest_report"])
    valid = property(lambda self: self["valid"])
    rejects = property(lambda self: self["rejects"])
    validation_report = property(lambda self: self["validation_report"])
    features = property(lambda self: self["features"])
    features_report = property(lambda self: self["features_report"])
    scorer = property(lambda self: self["scorer"])
    splits = property(lambda self: self["splits"])
    run = property(lambda self: self["run"])
    evaluation = property(lambda self: self["evaluation"])
    registration = property(lambda self: self["registration"])
    scores = property(lambda self: self["scores"])

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def report_dir(self) -> Path:
        return self.root / "evaluate"

    def lineage(self, stage: str) -> Path:
        return self.root / stage / "lineage.json"


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _record(paths: Paths, stage: str) -> dict | None:
    path = paths.lineage(stage)
    return json.loads(path.read_text()) if path.exists() else None


def check_inputs(paths: Paths, stage_name: str) -> dict[str, str]:
    """Digests of a stage's inputs, after checking each exists and is fresh; raises exit 7 otherwise."""
    from pipeline.stages import BY_NAME, producer

    digests: dict[str, str] = {}
    for name in BY_NAME[stage_name].reads:
        path, maker = paths[name], producer(name).name
        if not path.exists():
            raise StageInputMissing(f"{path} not found: run `make {maker}` (or `python -m pipeline {maker}`) first")
        digests[name] = digest(path)
        record = _record(paths, maker)
        if record is None:
            raise StaleInput(
                f"{path} has no lineage record of a completed `{maker}` run (its last run failed or predates "
                f"lineage records): rerun `make {maker}`"
            )
        if record["outputs"].get(name) != digests[name]:
            raise StaleInput(
                f"{path} is not the file `{maker}` last wrote: sha256 {digests[name][:12]}, "
                f"recorded {str(record['outputs'].get(name))[:12]}: rerun `make {maker}`"
            )
        for upstream_name, recorded in record["inputs"].items():
            now = digest(paths[upstream_name]) if paths[upstream_name].exists() else "missing"
            if now != recorded:
                raise StaleInput(
                    f"{path} is stale: `{maker}` made it from {paths[upstream_name]} with sha256 {recorded[:12]}, "
                    f"which is now {now[:12]}: rerun `make {maker}`"
                )
    return digests


def record_lineage(paths: Paths, stage_name: str, inputs: dict[str, str], config: str) -> None:
    """Written last, after every output: its presence means the stage completed."""
    from pipeline.data.io import atomic_write_text
    from pipeline.stages import BY_NAME

    outputs = {name: digest(paths[name]) for name in BY_NAME[stage_name].writes if paths[name].exists()}
    record = {"stage": stage_name, "config_sha256": config, "inputs": inputs, "outputs": outputs}
    atomic_write_text(json.dumps(record, indent=2), paths.lineage(stage_name))


def up_to_date(paths: Paths, stage_name: str, config: str) -> bool:
    """True when the stage's last completed run used this config and these inputs, and its outputs are intact."""
    record = _record(paths, stage_name)
    if record is None or record.get("config_sha256") != config:
        return False
    try:
        inputs = check_inputs(paths, stage_name)
    except StageInputMissing:
        return False
    intact = all(paths[name].exists() and digest(paths[name]) == d for name, d in record["outputs"].items())
    return intact and inputs == record["inputs"]


def forget_lineage(paths: Paths, stage_name: str) -> None:
    """A failed stage's old outputs must not pass as the result of this run."""
    paths.lineage(stage_name).unlink(missing_ok=True)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
