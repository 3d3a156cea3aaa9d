"""Typed configuration: every default of the pipeline lives here.

A YAML file is parsed into `Config`; unknown keys and bad values fail with a
message naming the dotted key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticSource(Strict):
    """Seeded generator of applicants: the embedded default data set."""

    kind: Literal["synthetic"] = "synthetic"
    rows: int = Field(20_000, ge=100)
    seed: int = 42
    base_default_rate: float = Field(0.10, gt=0, lt=1)
    start_date: str = "2024-01-01"
    months: int = Field(24, ge=1)


class ColumnMap(Strict):
    """How one contract column is made from a source column: copy, recode codes, scale units, or a constant.

    A plain string in YAML (`age: AGE`) is shorthand for `{source: AGE}`. `scale` takes a
    number or a fraction such as "1/12" (annual to monthly) so that no rounded constant is
    written by hand.
    """

    source: str | None = None
    constant: Any = None
    recode: dict[Any, Any] | None = None
    scale: float = 1.0
    parse_date: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"source": data} if isinstance(data, str) else data

    @field_validator("scale", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        if isinstance(value, str) and "/" in value:
            num, _, den = value.partition("/")
            try:
                return float(num) / float(den)
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"scale {value!r} is not a number or a fraction like 1/12") from None
        return value

    @model_validator(mode="after")
    def _one_origin(self) -> ColumnMap:
        if (self.source is None) == (self.constant is None):
            raise ValueError("give exactly one of 'source' or 'constant'")
        if self.constant is not None and (self.recode or self.scale != 1.0 or self.parse_date):
            raise ValueError("a constant takes no recode, scale or parse_date")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        return self


class FileSource(Strict):
    """A CSV (plain or gzip) or Parquet file mapped onto the contract in YAML."""

    kind: Literal["file"] = "file"
    path: str
    format: Literal["auto", "csv", "parquet"] = "auto"
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    id_column: str | None = Field(None, description="source column of applicant_id; None numbers the rows")
    columns: dict[str, ColumnMap] = Field(default_factory=dict)
    passthrough: list[str] = Field(default_factory=list, description="source columns kept under their own name")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @model_validator(mode="after")
    def _no_clash(self) -> FileSource:
        targets = list(self.columns) + self.passthrough + (["applicant_id"] if self.id_column else [])
        dupes = sorted({t for t in targets if targets.count(t) > 1})
        if dupes:
            raise ValueError(f"contract column(s) {', '.join(dupes)} filled twice (columns, passthrough, id_column)")
        return self


class ExtraColumn(Strict):
    """A feature column beyond the core contract, declared by the user."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    dtype: Literal["float", "int", "category", "str"] = "float"
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None
    nullable: bool = True
    risk_direction: Literal[-1, 0, 1] = 0
    reason: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ExtraColumn:
        numeric = self.dtype in ("float", "int")
        if not numeric and (self.min is not None or self.max is not None):
            raise ValueError(f"{self.name}: min/max apply to float or int columns only")
        if self.allowed is not None and self.dtype not in ("category", "str"):
            raise ValueError(f"{self.name}: allowed values apply to category or str columns only")
        if self.dtype == "category" and not self.allowed:
            raise ValueError(f"{self.name}: a category column needs its list of allowed values")
        if self.allowed is not None:
            folded = [a.strip().lower() for a in self.allowed]
            if len(set(folded)) != len(folded):
                raise ValueError(f"{self.name}: allowed values must be distinct (ignoring case)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{self.name}: min {self.min} is above max {self.max}")
        if not numeric and self.risk_direction != 0:
            raise ValueError(f"{self.name}: a risk direction needs a numeric column")
        return self


class ContractConfig(Strict):
    history_months: int = Field(6, ge=0, le=24)
    extras: list[ExtraColumn] = Field(default_factory=list)
    protected: list[str] = Field(default_factory=list)
    training_targets_required: bool = True

    @model_validator(mode="after")
    def _unique_names(self) -> ContractConfig:
        names = [e.name for e in self.extras] + list(self.protected)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"column(s) declared twice among extras and protected: {', '.join(dupes)}")
        return self


class ValidationConfig(Strict):
    rejection_budget: float = Field(
        0.05, ge=0, le=1, description="largest share of rows that may be quarantined before the stage fails"
    )


class FeatureConfig(Strict):
    living_cost_base: float = Field(600.0, ge=0)
    living_cost_per_dependent: float = Field(250.0, ge=0)
    apr: float = Field(0.18, ge=0, le=2)
    default_term_months: int = Field(12, ge=1, le=360)
    credit_type: Literal["instalment", "revolving"] = "instalment"
    min_payment_rate: float = Field(0.05, gt=0, le=1)
    utilization_cap: float = Field(1.5, gt=0)
    ratio_cap: float = Field(10.0, gt=0)
    history_passthrough: bool = False


class SplitConfig(Strict):
    train: float = Field(0.6, gt=0, lt=1)
    validation: float = Field(0.15, gt=0, lt=1)
    calibration: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)
    seed: int = 7
    out_of_time: bool = True
    cv_folds: int = Field(0, ge=0, le=20)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitConfig:
        total = self.train + self.validation + self.calibration + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + calibration + test must be 1, got {total:.4f}")
        return self


class SearchConfig(Strict):
    trials: int = Field(0, ge=0)
    time_budget_s: float = Field(120.0, gt=0)
    seed: int = 11


class PDModelConfig(Strict):
    params: dict[str, Any] = Field(
        default_factory=lambda: {
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": 50,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
        }
    )
    num_boost_round: int = Field(600, ge=1)
    early_stopping_rounds: int = Field(50, ge=1)
    monotone: bool = True
    calibration: Literal["isotonic", "sigmoid", "none"] = "isotonic"
    pd_floor: float = Field(
        0.0005, ge=0, lt=0.5, description="PD kept within [floor, 1 - floor] (Basel retail floor 0.05%)"
    )
    search: SearchConfig = SearchConfig()


class LimitModelConfig(Strict):
    enabled: bool = True
    alpha: float = Field(0.3, gt=0, lt=1)
    params: dict[str, Any] = Field(
        default_factory=lambda: {"learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 50}
    )
    num_boost_round: int = Field(400, ge=1)
    early_stopping_rounds: int = Field(40, ge=1)


class Grade(Strict):
    name: str
    min_score: float
    limit_multiplier: float = Field(1.0, ge=0)
    table_limit: float = Field(0.0, ge=0, description="limit used when there is no limit model")


class ScorecardConfig(Strict):
    base_score: float = 600.0
    base_odds: float = Field(50.0, gt=0, description="good:bad odds at the base score")
    pdo: float = Field(20.0, gt=0, description="points to double the odds")
    grades: list[Grade] = Field(
        default_factory=lambda: [
            Grade(name="A", min_score=620, limit_multiplier=1.2, table_limit=20000),
            Grade(name="B", min_score=590, limit_multiplier=1.0, table_limit=12000),
            Grade(name="C", min_score=560, limit_multiplier=0.8, table_limit=8000),
            Grade(name="D", min_score=530, limit_multiplier=0.6, table_limit=4000),
            Grade(name="E", min_score=float("-inf"), limit_multiplier=0.4, table_limit=2000),
        ]
    )

    @field_validator("grades")
    @classmethod
    def _descending(cls, grades: list[Grade]) -> list[Grade]:
        scores = [g.min_score for g in grades]
        if not grades or scores != sorted(scores, reverse=True) or scores[-1] != float("-inf"):
            raise ValueError("grades must be ordered by descending min_score and end with min_score -.inf")
        for worse, better in zip(grades[1:], grades[:-1], strict=False):
            if worse.limit_multiplier > better.limit_multiplier or worse.table_limit > better.table_limit:
                raise ValueError(
                    f"grade {worse.name} must not get a larger multiplier or table limit than {better.name}"
                )
        return grades


class PolicyConfig(Strict):
    pd_cutoff: float = Field(0.25, ge=0, le=1)
    max_payment_to_income: float = Field(0.35, gt=0, le=1)
    min_payment_rate: float = Field(0.05, gt=0, le=1, description="payment at full use of a revolving limit")
    limit_step: float = Field(100.0, gt=0)
    min_limit: float = Field(500.0, ge=0)
    max_limit: float = Field(50_000.0, gt=0)
    decline_recent_90d: bool = True
    unknown_income: Literal["decline", "table_limit"] = "table_limit"
    require_positive_residual_income: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> PolicyConfig:
        if self.min_limit > self.max_limit:
            raise ValueError("min_limit must not exceed max_limit")
        return self


class EvaluationConfig(Strict):
    lgd: float = Field(0.75, ge=0, le=1)
    ccf: float = Field(0.8, ge=0, le=1, description="credit conversion factor: drawn share of a limit at default")
    calibration_bins: int = Field(10, ge=2)
    psi_bins: int = Field(10, ge=2)


class GateConfig(Strict):
    auc_tolerance: float = Field(0.005, ge=0)
    max_ece: float = Field(0.03, ge=0)
    max_score_psi: float = Field(0.1, ge=0)
    min_adverse_impact_ratio: float = Field(0.8, ge=0, le=1)


class RegistryConfig(Strict):
    model_name: str = "credit-assessment"
    experiment: str = "credit-assessment"
    gate: GateConfig = GateConfig()


class ScoringConfig(Strict):
    chunk_rows: int = Field(100_000, ge=1)  # peak memory grows ~4 KB per chunk row (measured)
    reason_codes: int = Field(4, ge=0, le=10)
    psi_warn: float = 0.1
    psi_alert: float = 0.25


class Config(Strict):
    name: str = "default"
    output_dir: str = "output"
    source: SyntheticSource | FileSource = Field(SyntheticSource(), discriminator="kind")
    contract: ContractConfig = ContractConfig()
    validation: ValidationConfig = ValidationConfig()
    features: FeatureConfig = FeatureConfig()
    split: SplitConfig = SplitConfig()
    pd_model: PDModelConfig = PDModelConfig()
    limit_model: LimitModelConfig = LimitModelConfig()
    scorecard: ScorecardConfig = ScorecardConfig()
    policy: PolicyConfig = PolicyConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    registry: RegistryConfig = RegistryConfig()
    scoring: ScoringConfig = ScoringConfig()
    seed: int = 42

    @property
    def run_dir(self) -> Path:
        """One output folder per config, so stages can be rerun alone."""
        return Path(self.output_dir) / self.name


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"invalid config {origin}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("SyntheticSource", "FileSource")))
        key = key.replace(".synthetic", "").replace(".file", "")
        lines.append(f"  {key or '<root>'}: {e['msg']}")
    return "\n".join(lines)


REPO_ROOT = Path(__file__).resolve().parent.parent


def resolve_source_path(path: str, base_dir: Path | None) -> str:
    """A relative data path is looked up from the cwd, then the YAML file's folder, then the repo root.

    Configs name shared data relative to the repo root (where make runs); the fallbacks let the
    same config load from a notebook or another folder. The first existing candidate wins; when
    none exists the path is kept as written, so the error names what the user wrote.
    """
    given = Path(path).expanduser()
    if given.is_absolute() or given.exists():
        return str(given)
    for folder in (base_dir, REPO_ROOT):
        if folder is not None and (folder / given).exists():
            return str((folder / given).resolve())
    return path


def parse_config(data: dict[str, Any] | None, origin: str = "<dict>", base_dir: Path | None = None) -> Config:
    """Build a Config from plain data; a relative source path is resolved as `resolve_source_path` says."""
    data = dict(data or {})
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, origin)) from None
    if isinstance(cfg.source, FileSource):
        resolved = resolve_source_path(cfg.source.path, base_dir)
        if resolved != cfg.source.path:
            cfg = cfg.model_copy(update={"source": cfg.source.model_copy(update={"path": resolved})})
    return cfg


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return parse_config(data, origin=str(path), base_dir=path.resolve().parent)


def config_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
