"""Typed configuration: every default of the pipeline lives here.

A YAML file is parsed into `Config`; unknown keys and bad values fail with a
message naming the dotted key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from pipeline.accounts.settings import AccountSettings
from pipeline.decision.products import ProductsConfig
from pipeline.errors import ConfigError
from pipeline.strict import Strict


class SyntheticSource(Strict):
    """Seeded generator of applicants: the embedded default data set."""

    kind: Literal["synthetic"] = "synthetic"
    rows: int = Field(20_000, ge=100)
    seed: int = 42
    base_default_rate: float = Field(0.10, gt=0, lt=1)
    start_date: str = "2024-01-01"
    months: int = Field(24, ge=1)


class ColumnMap(Strict):
    """How one contract column is made from the source: copied, derived, recoded, parsed, scaled, or a constant.

    A plain string in YAML (`age: AGE`) is shorthand for `{source: AGE}`. Steps run in this
    order: `na_values` (codes that mean missing) -> `recode` -> `parse` (numbers written as
    text) -> `scale` -> `parse_date`. `expr` derives the column from several source columns
    with a safe expression (see docs/own-data.md); `parse` and `na_values` then apply to each
    column it reads. `scale` takes a number or a fraction such as "1/12" (annual to monthly)
    so that no rounded constant is written by hand.
    """

    source: str | None = None
    expr: str | None = None
    constant: Any = None
    na_values: list[Any] = Field(default_factory=list, description="source values that mean missing, e.g. [96, 98]")
    recode: dict[Any, Any] | None = None
    parse: Literal["number", "thousands", "currency", "percent", "months", "years", "auto"] | None = None
    decimal: Literal[".", ","] = "."
    scale: float = 1.0
    parse_date: str | None = None
    reason: str | None = Field(None, description="reason-code text for this column, replacing the default wording")

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
        origins = [name for name in ("source", "expr", "constant") if getattr(self, name) is not None]
        if len(origins) != 1:
            raise ValueError("give exactly one of 'source', 'expr' or 'constant'")
        transforms = self.recode or self.scale != 1.0 or self.parse_date or self.parse or self.na_values
        if self.constant is not None and transforms:
            raise ValueError("a constant takes no na_values, recode, parse, scale or parse_date")
        if self.expr is not None and (self.recode or self.parse_date):
            raise ValueError("an expr takes no recode or parse_date (write the logic in the expression)")
        if self.decimal != "." and self.parse is None:
            raise ValueError("decimal applies only together with parse")
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
    def _expressions_parse(self) -> FileSource:
        """A wrong expression fails when the config loads, naming the column and the token."""
        from pipeline.data.sources.expr import parse

        for target, spec in self.columns.items():
            if spec.expr is not None:
                try:
                    parse(spec.expr, target)
                except ConfigError as err:
                    raise ValueError(str(err)) from None
        return self

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


class ColumnRange(Strict):
    """A core column's accepted range, changed by the user within the contract's hard bounds."""

    min: float | None = None
    max: float | None = None


class ContractConfig(Strict):
    history_months: int = Field(6, ge=0, le=24)
    extras: list[ExtraColumn] = Field(default_factory=list)
    protected: list[str] = Field(default_factory=list)
    training_targets_required: bool = True
    ranges: dict[str, ColumnRange] = Field(
        default_factory=dict, description="core column -> {min, max}, e.g. {age: {max: 120}}, within hard bounds"
    )
    reasons: dict[str, str] = Field(
        default_factory=dict, description="feature -> reason-code text replacing the default wording"
    )
    delinquency_window_months: int | None = Field(
        None, ge=1, le=120, description="window the source counts delinquencies over; reason texts state it if set"
    )

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
    duplicate_rows: Literal["keep", "reject"] = Field(
        "keep",
        description="rows identical in every column but the id: kept (and counted) or all but the first rejected",
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


class PDBoundsConfig(Strict):
    """How the PD floor and cap are derived from the calibration split (never a fixed constant)."""

    band_share: float = Field(0.05, gt=0, lt=0.5, description="share of rows, lowest raw score first, in the band")
    band_min_rows: int = Field(100, ge=0, description="the band holds at least this many rows")
    band_max_share: float = Field(0.2, gt=0, le=0.5, description="... but never more than this share of the split")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="one-sided confidence of the bound")
    interval: Literal["clopper_pearson", "wilson"] = "clopper_pearson"
    min_floor: float = Field(0.0, ge=0, lt=0.5, description="a regulatory minimum PD on top of the data's floor")
    max_cap: float = Field(1.0, gt=0.5, le=1, description="a maximum PD (with data_cap: on top of the data's cap)")
    data_cap: bool = Field(
        False,
        description="also cap PD at the upper bound of the highest band's bad rate; lowers the riskiest PDs, "
        "which biases the top band down when that band spans a wide score range (see docs/model-quality.md)",
    )


class CalibrationConfig(Strict):
    """How calibration methods are compared: k-fold on the calibration split, so flexibility is not rewarded."""

    folds: int = Field(5, ge=2, le=20)
    auc_tolerance: float = Field(0.001, ge=0, description="largest AUC loss a method may cause and stay eligible")
    tail: Literal["platt", "flat"] = Field("platt", description="isotonic_interp beyond its outer blocks")
    min_tail_events: int = Field(1, ge=1, description="isotonic end blocks hold at least this many bads / goods")
    seed: int = 0
    bounds: PDBoundsConfig = PDBoundsConfig()


class MonotoneEvidenceConfig(Strict):
    """Checking each monotone constraint on the training rows (constrained vs relaxed cross-validation)."""

    tolerance: float = Field(0.002, ge=0, description="AUC a constraint may cost before it is relaxed")
    noise_z: float = Field(1.0, ge=0, description="the gain must also exceed this many standard errors")
    folds: int = Field(3, ge=2, le=10)
    early_stop_share: float = Field(0.2, gt=0, lt=0.5)
    max_fits: int = Field(30, ge=2, description="budget of fits in all")
    pd_rows: int = Field(500, ge=10, description="held-out rows per fold for the wrong-way screen")
    pd_grid: int = Field(12, ge=3)
    seed: int = 0


CalibrationMethod = Literal["isotonic_interp", "platt", "beta", "identity"]


def _all_calibration_methods() -> list[CalibrationMethod]:
    return ["isotonic_interp", "platt", "beta", "identity"]


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
    monotone: Literal["off", "prior", "evidence"] = Field(
        "evidence", description="constraints from the dictionary's direction: none, as written, or checked on data"
    )
    monotone_overrides: dict[str, Literal[-1, 0, 1]] = Field(
        default_factory=dict, description="per-feature direction that wins over prior and evidence"
    )
    monotone_evidence: MonotoneEvidenceConfig = MonotoneEvidenceConfig()
    refit_with_validation: bool = Field(
        True,
        description="after early stopping, refit on training + validation rows with the tree count scaled by rows",
    )
    calibration: Literal["auto", "isotonic_interp", "platt", "beta", "identity", "isotonic", "sigmoid", "none"] = Field(
        "auto", description="auto: the eligible method with the lowest cross-validated log loss"
    )
    calibration_methods: list[CalibrationMethod] = Field(default_factory=_all_calibration_methods)
    calibration_settings: CalibrationConfig = CalibrationConfig()
    search: SearchConfig = SearchConfig()

    @field_validator("monotone", mode="before")
    @classmethod
    def _bool_monotone(cls, value: Any) -> Any:
        return {True: "prior", False: "off"}.get(value, value) if isinstance(value, bool) else value


class LimitModelConfig(Strict):
    enabled: bool = True
    alpha: float = Field(0.3, gt=0, lt=1)
    params: dict[str, Any] = Field(
        default_factory=lambda: {"learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 50}
    )
    num_boost_round: int = Field(400, ge=1)
    early_stopping_rounds: int = Field(40, ge=1)
    num_leaves_candidates: list[int] = Field(
        default_factory=lambda: [7, 15, 31],
        description="tree sizes tried, one early-stopped fit each; `size_tolerance_se` chooses the leaves and trees "
        "kept among them; empty: params.num_leaves",
    )
    size_tolerance_se: float = Field(
        1.0,
        ge=0,
        allow_inf_nan=False,
        description="forest kept: among every candidate's first 1 .. early-stopped trees, the cheapest to score "
        "(trees x ceil(log2 leaves)) whose validation quantile loss exceeds the best's by at most this many "
        "standard errors of the paired per-row loss difference; 0: the lowest loss, the earlier behaviour "
        "(measured in docs/model-quality.md)",
    )

    @field_validator("num_leaves_candidates")
    @classmethod
    def _at_least_two_leaves(cls, value: list[int]) -> list[int]:
        if any(v < 2 for v in value):
            raise ValueError("every candidate needs at least 2 leaves")
        return value


class Grade(Strict):
    name: str
    min_score: float
    limit_multiplier: float = Field(1.0, ge=0)
    table_limit: float = Field(0.0, ge=0, description="limit used when there is no limit model")


class ScorecardConfig(Strict):
    base_score: float = 600.0
    base_odds: float = Field(50.0, gt=0, description="good:bad odds at the base score")
    pdo: float = Field(20.0, gt=0, description="points to double the odds")
    score_pd_bound: float = Field(
        1e-6, gt=0, lt=0.01, description="PD kept within [b, 1 - b] only to turn it into points; the PD is unchanged"
    )
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
    severe_status_months: int = Field(
        3, ge=1, le=9, description="a repayment status at or above this many months past due counts as 90+ days late"
    )
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
    min_fairness_group: int = Field(
        30, ge=1, description="smaller protected groups are shown but not screened (too few to judge)"
    )
    cutoff_table: list[float] = Field(
        default_factory=lambda: [0.02, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50],
        description="PD cutoffs at which the report shows approval and bad rates",
    )


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
    compiled: bool = Field(
        True,
        description="compile both forests to native code at registration (shipped in the artifact); "
        "off: score with the numba forests",
    )
    exact_reasons: Literal["adverse", "all", "none"] = Field(
        "adverse",
        description="rows whose reason codes are exact TreeSHAP: adverse (declines and counter-offers), all, or none; "
        "the others get path attribution (docs/reason-codes.md)",
    )
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    workers: int | None = Field(
        None,
        ge=0,
        description="processes that validate and score the batch job's chunks: none or 0, one per core this "
        "process may use (its CPU affinity); 1: the job's own process only",
    )


class ComputeConfig(Strict):
    """Where ingest, validate, features and training run: this process, or a Dask cluster (docs/operations.md)."""

    engine: Literal["local", "dask"] = Field(
        "local", description="local: one process (the default); dask: partitions on a Dask cluster, lightgbm.dask"
    )
    address: str | None = Field(
        None, description="scheduler address (tcp://host:8786); none with engine dask: a LocalCluster for the run"
    )
    n_workers: int | None = Field(None, ge=1, description="LocalCluster worker processes (none: Dask's default)")
    threads_per_worker: int | None = Field(None, ge=1, description="LocalCluster threads per worker")
    partition_rows: int = Field(100_000, ge=100, description="rows per partition when a file is split")
    sample_rows: int = Field(
        200_000,
        ge=1000,
        description="training rows collected to the client for the monotone evidence check and the reference "
        "distributions (all of them when fewer)",
    )

    @model_validator(mode="after")
    def _address_needs_dask(self) -> ComputeConfig:
        if self.engine == "local" and (self.address or self.n_workers or self.threads_per_worker):
            raise ValueError("address, n_workers and threads_per_worker apply only with engine: dask")
        if self.address and (self.n_workers or self.threads_per_worker):
            raise ValueError(
                "n_workers and threads_per_worker size a LocalCluster; with an address the cluster is yours"
            )
        return self


class Config(Strict):
    name: str = "default"
    kind: Literal["applicants", "accounts"] = Field(
        "applicants", description="applicants at origination, or accounts on book (monthly snapshots)"
    )
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
    products: ProductsConfig = ProductsConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    registry: RegistryConfig = RegistryConfig()
    scoring: ScoringConfig = ScoringConfig()
    accounts: AccountSettings = AccountSettings()
    compute: ComputeConfig = ComputeConfig()
    seed: int = 42

    @model_validator(mode="before")
    @classmethod
    def _one_affordability_cap(cls, data: Any) -> Any:
        """The payment-to-income cap is set once, in the policy; offers use the same number.

        A dumped config carries the copy; it is accepted when it equals the policy's value.
        """
        if not isinstance(data, dict):
            return data
        products = dict(data.get("products") or {})
        search = dict(products.get("search") or {})
        policy = data.get("policy") or {}
        cap = policy.get("max_payment_to_income") if isinstance(policy, dict) else policy.max_payment_to_income
        cap = PolicyConfig.model_fields["max_payment_to_income"].default if cap is None else cap
        if "max_payment_to_income" in search and search["max_payment_to_income"] != cap:
            raise ValueError("products.search.max_payment_to_income: set it once, as policy.max_payment_to_income")
        search["max_payment_to_income"] = cap
        return {**data, "products": {**products, "search": search}}

    @model_validator(mode="after")
    def _rates_per_grade(self) -> Config:
        try:
            self.products.check_grades(len(self.scorecard.grades))
        except ValueError as err:
            raise ValueError(f"products: {err}") from None
        return self

    @model_validator(mode="after")
    def _dask_for_applicants(self) -> Config:
        if self.compute.engine == "dask" and self.kind == "accounts":
            raise ValueError("compute.engine: dask runs applicant configs only (kind: accounts runs in one process)")
        return self

    @model_validator(mode="before")
    @classmethod
    def _mapping_reasons(cls, data: Any) -> Any:
        """A `reason` written on a column mapping becomes the reason text of the feature of that name."""
        if not isinstance(data, dict) or not isinstance(data.get("source"), dict):
            return data
        columns = data["source"].get("columns") or {}
        mapped = {k: v["reason"] for k, v in columns.items() if isinstance(v, dict) and v.get("reason")}
        if not mapped:
            return data
        contract = dict(data.get("contract") or {})
        contract["reasons"] = {**mapped, **(contract.get("reasons") or {})}
        return {**data, "contract": contract}

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
