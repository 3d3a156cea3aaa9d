"""Affordability features: pure vectorised functions (`functions`) and their dictionary (`dictionary`).

Every feature has one dictionary entry (formula, unit, inputs, risk direction, reason text,
whether it is derived from the current limit); training, scoring and the generated
docs/features.md all read the same entries, so a feature is defined once.
"""

from pipeline.features.dictionary import (
    CATEGORIES,
    CORE_FEATURES,
    FeatureSelection,
    categories,
    choose_features,
    dictionary_markdown,
    feature_dictionary,
    select_features,
)
from pipeline.features.functions import (
    FeatureSpec,
    compute_features,
    feature_columns,
    feature_schema,
    living_cost,
)
from pipeline.features.inputs import monthly_instalment, payment_ratios, safe_ratio, slope

__all__ = [
    "CATEGORIES",
    "CORE_FEATURES",
    "FeatureSelection",
    "FeatureSpec",
    "categories",
    "choose_features",
    "compute_features",
    "dictionary_markdown",
    "feature_columns",
    "feature_dictionary",
    "feature_schema",
    "living_cost",
    "monthly_instalment",
    "payment_ratios",
    "safe_ratio",
    "select_features",
    "slope",
]
