"""Numbers for people, shared by the HTML page and the Markdown model card so both read alike."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MONEY_KEYS = ("limit_mae", "expected_loss", "total_exposure")


def fmt(value: Any, spec: str | None = None) -> str:
    """Ints with thousands separators, floats to 4 places unless told, booleans as yes/no, NaN and None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return format(int(value), spec or ",d")
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(value) else format(float(value), spec or ".4f")
    return str(value)


def auto(key: str, value: Any) -> str:
    """Rates as percentages and money without decimals, chosen by the metric's name."""
    if isinstance(value, float | np.floating) and "rate" in key:
        return fmt(value, ".2%")
    if isinstance(value, float | np.floating) and key in MONEY_KEYS:
        return fmt(value, ",.0f")
    return fmt(value)
