"""The report's look in one place: colours, resolution and matplotlib settings.

None of these is a risk setting (those live in `pipeline.config`). `RC` is applied per figure
through `matplotlib.rc_context`, never to the global `rcParams`, so importing the report code
never restyles a notebook user's own plots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

GOOD = "#2b7bb9"  # non-defaults, the model's curve
BAD = "#d1495b"  # defaults, failed screens
ACCENT = "#edae49"  # "watch" readings
GREY = "#8c8c8c"  # references and groups too small to judge
STABLE = "#3a9d5d"
STATUS_COLOURS = {"stable": STABLE, "watch": ACCENT, "shifted": BAD, "n/a": GREY}
BOX_FILL = "#cfe3f3"
LABEL = "#555555"

DPI = 110

RC: dict[RcKeyType, Any] = {
    "figure.figsize": (7.5, 4.6),
    "axes.titlesize": 13,
    "axes.titleweight": "bold",
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
