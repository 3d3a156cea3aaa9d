"""The portfolio-review page: watch list, limit actions and plan offers as one self-contained HTML file.

Why a page: the review's Parquet output has every account; the people acting on it (collections, credit
risk) need the riskiest accounts, what happens to limits and which plans were offered, at a glance.
The template lives here as a string (no package-data to install) and is rendered with autoescaping:
account ids and reasons come from data and must never become markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

WATCH_COLUMNS = ["early_warning_rank", "account_id", "pd", "expected_loss", "limit_action", "credit_limit",
                 "new_limit", "treatment", "reasons"]  # fmt: skip
OFFER_COLUMNS = ["early_warning_rank", "account_id", "pd", "plan_outcome", "plan_term_months", "plan_payment",
                 "affordable_payment", "treatment"]  # fmt: skip
FORMATS = {"pd": "{:.1%}", "expected_loss": "{:,.0f}", "credit_limit": "{:,.0f}", "new_limit": "{:,.0f}",
           "plan_term_months": "{:.0f}", "plan_payment": "{:,.2f}", "affordable_payment": "{:,.2f}"}  # fmt: skip

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Portfolio review: {{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #eef3f8; } td.num { text-align: right; } .note { color: #555; }
</style></head><body>
<h1>Portfolio review: {{ title }}</h1>
<p class="note">Model {{ summary.model_name }} v{{ summary.model_version }} ({{ summary.model_uri }});
input {{ summary.input }}.</p>
<h2>Accounting</h2>
<table>{% for k, v in accounting %}<tr><th>{{ k }}</th><td class="num">{{ v }}</td></tr>{% endfor %}</table>
<h2>Limit actions and treatments</h2>
<table><tr><th>limit action</th><th>accounts</th></tr>
{% for k, v in actions %}<tr><td>{{ k }}</td><td class="num">{{ v }}</td></tr>{% endfor %}</table>
<p>Decreases the guard rails softened or blocked: {{ softened }} of {{ wanted }} wanted
({% for k, v in softened_by %}{{ k }}: {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}).</p>
<table><tr><th>treatment</th><th>accounts</th></tr>
{% for k, v in treatments %}<tr><td>{{ k }}</td><td class="num">{{ v }}</td></tr>{% endfor %}</table>
<p>At-risk accounts (in arrears, or flagged and near it): {{ at_risk }}; with an affordable plan: {{ with_plan }}
({{ plan_share }}); with known income: {{ known_income }}.</p>
<h2>Watch list (riskiest {{ watch|length }})</h2>
{{ table(watch) }}
<h2>Plan offers and hardship reviews (riskiest {{ offers|length }})</h2>
{% if offers|length %}{{ table(offers) }}{% else %}<p class="note">No account is at risk.</p>{% endif %}
</body></html>
"""

TABLE = """<table><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>"""


def _env() -> jinja2.Environment:
    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


def _cell(value: Any, fmt: str | None) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return fmt.format(value) if fmt else str(value)


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    cols = [c for c in columns if c in frame]
    return [[_cell(v, FORMATS.get(c)) for c, v in zip(cols, rec, strict=True)] for rec in frame[cols].itertuples(False)]


def render_review(summary: Mapping[str, Any], watch: pd.DataFrame, offers: pd.DataFrame) -> str:
    """The page for one review run: its summary (as written to `<stem>.summary.json`) and the two bounded lists."""
    env = _env()
    table_t = env.from_string(TABLE)

    def table(frame: pd.DataFrame) -> Any:
        columns = WATCH_COLUMNS if frame is watch else OFFER_COLUMNS
        return Markup(table_t.render(columns=[c for c in columns if c in frame], rows=_rows(frame, columns)))

    p = summary.get("portfolio", {})
    share = p.get("affordable_plan_share")
    return env.from_string(TEMPLATE).render(
        title=summary.get("output", ""),
        summary=summary,
        accounting=[(k, f"{summary[k]:,}") for k in ("rows_in", "rows_scored", "rows_rejected")],
        actions=sorted(p.get("counts", {}).get("limit_action", {}).items()),
        treatments=sorted(p.get("counts", {}).get("treatment", {}).items()),
        softened=p.get("softened_decreases", 0),
        wanted=p.get("decreases_wanted", 0),
        softened_by=sorted(p.get("softened_by", {}).items()),
        at_risk=p.get("at_risk", 0),
        with_plan=p.get("at_risk_with_affordable_plan", 0),
        known_income=p.get("at_risk_with_known_income", 0),
        plan_share="n/a" if share is None else f"{share:.1%}",
        watch=watch,
        offers=offers,
        table=table,
    )
