"""The walk-forward's files: ``report.json`` and one self-contained ``report.html`` (the
plots embedded as PNG data URIs, no script, no outside resource), rendered with Jinja2
(autoescaped) from the report object alone; and the same report stored in Postgres
(``core.walkforward_reports``, with the plotted returns) for the dashboard."""

from __future__ import annotations

import base64
import io
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from alphafactory.settings import PostgresSettings

log = logging.getLogger("alphafactory.walkforward")
TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Walk-forward: {{ r.strategy }} {{ r["from"] }} to {{ r.to }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.25em 0.7em; text-align: right; border-bottom: 1px solid #ddd; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
.note { color: #555; max-width: 60em; }
</style></head><body>
<h1>Walk-forward of {{ r.strategy }}, {{ r["from"] }} to {{ r.to }}</h1>
<p class="note">Every number below comes from allocations the live pipeline wrote for
each decision, using only data released by its decision time; each is held until the
next one. Candidates per decision: {{ r.settings.candidates }}; generator retrained
every {{ r.settings.retrain_every_months }} months; alpha: <code>{{
r.settings.alpha_definition }}</code>; admission control: {{
r.settings.get("admission_control", "not recorded") }}. Excess returns are over {{
r.settings.benchmark }}. Trials: the candidates scored over the run; admitted: those
that met the definition and survived the control; OOS IC: the mean rank IC between the
combined signal traded at each decision and the returns of the
period it was held, with its Newey-West t. Net: the same figures after costs ({{
r.settings.get("costs", "not recorded") }}), the benchmark paying its own.</p>
{% if r.settings.get("data_caveats") %}<p>What the data cannot show:</p><ul id="caveats">
{% for caveat in r.settings.data_caveats %}<li>{{ caveat }}</li>{% endfor %}</ul>{% endif %}
<h2>Out of sample</h2>
<table id="variants"><tr><th>variant</th><th>rebalances</th><th>cumulative</th>
<th>CAGR</th><th>volatility</th><th>Sharpe</th><th>max drawdown</th><th>turnover</th>
<th>excess</th><th>IR</th><th>HAC t</th><th>in-sample Sharpe</th><th>mean pool</th>
<th>trials</th><th>admitted</th><th>OOS IC</th><th>OOS IC t</th><th>IR 90% interval</th>
<th>smallest IR detectable</th><th>net Sharpe</th><th>net excess</th><th>net IR</th>
<th>net HAC t</th></tr>
{% for name, v in r.variants.items() %}<tr><td>{{ name }}</td><td>{{ v.n_rebalances }}</td>
<td>{{ pct(v.cumulative_return) }}</td><td>{{ pct(v.cagr) }}</td><td>{{ pct(v.volatility) }}</td>
<td>{{ num(v.sharpe) }}</td><td>{{ pct(v.max_drawdown) }}</td><td>{{ pct(v.turnover) }}</td>
<td>{{ pct(v.excess_return) }}</td><td>{{ num(v.information_ratio) }}</td>
<td>{{ num(v.excess_hac_tstat) }}</td><td>{{ num(v.in_sample_sharpe) }}</td>
<td>{{ num(v.mean_pool_size, 1) }}</td>
<td>{{ v.get("trials") if v.get("trials") is not none else "" }}</td>
<td>{{ v.get("accepted") if v.get("accepted") is not none else "" }}</td>
<td>{{ num(v.get("oos_ic"), 3) }}</td><td>{{ num(v.get("oos_ic_t")) }}</td>
<td>{% if v.get("information_ratio_ci") %}{{ num(v.information_ratio_ci[0]) }} to {{
num(v.information_ratio_ci[1]) }}{% endif %}</td>
<td>{{ num(v.get("min_detectable_ir")) }}</td>
{% set n = v.get("net") or {} %}<td>{{ num(n.get("sharpe")) }}</td>
<td>{{ pct(n.get("excess_return")) }}</td><td>{{ num(n.get("information_ratio")) }}</td>
<td>{{ num(n.get("excess_hac_tstat")) }}</td></tr>{% endfor %}
</table>
<img id="growth" alt="growth of 1 per variant" src="{{ plots.growth }}">
<img id="drawdown" alt="drawdown per variant" src="{{ plots.drawdown }}">
<h2>More alphas, less overfit?</h2>
<table id="pools"><tr><th>variant</th><th>pool size</th><th>Sharpe out of sample</th>
<th>in sample</th><th>overfit (in - out)</th></tr>
{% for row in r.pool_sizes.rows %}<tr><td>{{ row.variant }}</td><td>{{ row.pool_size }}</td>
<td>{{ num(row.sharpe) }}</td><td>{{ num(row.in_sample_sharpe) }}</td>
<td>{{ num(row.overfit) }}</td></tr>{% endfor %}
</table>
{% if r.pool_sizes.sharpe_gain is defined and r.pool_sizes.sharpe_gain is not none %}
<p id="answer">The largest pool's
out-of-sample Sharpe is {{ num(r.pool_sizes.sharpe_gain) }} {{ "above" if
r.pool_sizes.sharpe_gain >= 0 else "below" }} the smallest's; it overfits {{
num(r.pool_sizes.overfit_reduction) }} Sharpe {{ "less" if r.pool_sizes.overfit_reduction
>= 0 else "more" }} (in-sample minus out-of-sample). Sharpe rises with pool size: {{
"yes" if r.pool_sizes.monotone else "no" }}.</p>{% endif %}
<h2>Generator versions</h2>
<table id="models"><tr><th>version</th><th>cutoff</th><th>first decision</th>
<th>requests</th><th>candidates</th><th>alphas</th><th>hit rate</th>
<th>IC in sample</th><th>IC month 1</th><th>IC month 12</th></tr>
{% for m in r.models %}<tr><td>{{ m.version }}</td><td>{{ m.cutoff[:10] }}</td>
<td>{{ (m.first_decision or "")[:10] }}</td><td>{{ m.requests }}</td>
<td>{{ m.candidates }}</td><td>{{ m.alphas }}</td><td>{{ pct(m.hit_rate) }}</td>
<td>{{ num(m.ic_decay.in_sample, 3) if m.ic_decay else "" }}</td>
<td>{{ num(m.ic_decay.months[0], 3) if m.ic_decay else "" }}</td>
<td>{{ num(m.ic_decay.months[-1], 3) if m.ic_decay else "" }}</td></tr>{% endfor %}
</table>
<img id="decay" alt="IC decay per generator version" src="{{ plots.decay }}">
<h2>Alpha survival</h2>
<table id="survival"><tr><th>variant</th><th>runs</th><th>mean rebalances</th>
<th>median</th><th>still in after 12</th></tr>
{% for name, v in r.variants.items() if v.alpha_survival %}<tr><td>{{ name }}</td>
<td>{{ v.alpha_survival.runs }}</td><td>{{ num(v.alpha_survival.mean, 1) }}</td>
<td>{{ num(v.alpha_survival.median, 1) }}</td><td>{{ pct(v.alpha_survival.share_12) }}</td>
</tr>{% endfor %}
</table>
{% if r.phases is defined %}<h2>Where the time went</h2>
<p class="note">This invocation's {{ num(r.phases.seconds, 0) }} s (a resumed run counts
what it did itself): CPU seconds of the stack's processes by phase, on cores they share.</p>
<table id="phases"><tr>{% for k in r.phases.cpu_seconds %}<th>{{ k.replace("_", " ")
}}</th>{% endfor %}</tr><tr>{% for v in r.phases.cpu_seconds.values() %}<td>{{ num(v, 0)
}}</td>{% endfor %}</tr></table>{% endif %}
</body></html>
"""


def write_report(
    out: Path,
    report: dict,
    series: dict[str, pd.Series],
    *,
    databases: Sequence[PostgresSettings] = (),
) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out`` and store the report in each
    of ``databases`` (:func:`store_report`); returns the files' paths."""
    out.mkdir(parents=True, exist_ok=True)
    clean = _finite(report)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(clean, indent=1, allow_nan=False))
    plots = {
        "growth": _plot_growth(series),
        "drawdown": _plot_drawdown(series),
        "decay": _plot_decay(report["models"]),
    }
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    page = environment.from_string(TEMPLATE).render(r=clean, plots=plots, pct=pct, num=num)
    html_path.write_text(page, encoding="utf-8")
    for database in {(d.host, d.port, d.database): d for d in databases}.values():
        store_report(database, clean, series)
    return json_path, html_path


def store_report(database: PostgresSettings, report: dict, series: dict[str, pd.Series]) -> bool:
    """Add the report and its returns to ``database`` (as the app role); False, with a
    warning, where that database cannot take it: the files are the run's result, and a
    stack that is down must not lose hours of walk-forward."""
    import psycopg

    from storage.db import connect
    from storage.errors import StorageError
    from storage.walkforward_reports import store_report as insert

    returns = {
        name: {
            "dates": [f"{pd.Timestamp(when):%Y-%m-%d}" for when in values.index],
            "returns": _finite(values.to_numpy(np.float64).tolist()),
        }
        for name, values in series.items()
    }
    try:
        with connect(database.dsn("app"), autocommit=True) as conn:
            report_id = insert(conn, report=_finite(report), series=returns)
    except (StorageError, psycopg.Error) as error:
        log.warning(
            "walk-forward report not stored in %s:%s/%s (the dashboard will not show it): %s",
            database.host, database.port, database.database, error,
        )  # fmt: skip
        return False
    log.info("walk-forward report %d stored in %s", report_id, database.database)
    return True


def _finite(value):
    """NaN and infinities as null: report.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def pct(value) -> str:
    """A fraction as a percentage ("" for a missing value): the report pages' format."""
    return "" if value is None else f"{value:.1%}"


def num(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt, *plt.subplots(figsize=(9, 4))


def _png(plt, figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plot_growth(series: dict[str, pd.Series]) -> str:
    plt, figure, axis = _figure()
    for name, values in series.items():
        if len(values):
            axis.plot(values.index, np.cumprod(1.0 + values.to_numpy()), label=name)
    axis.set_yscale("log")
    axis.set_ylabel("growth of 1 (log scale)")
    axis.set_title("Out of sample, each allocation held until the next")
    axis.legend(fontsize=8, ncol=2)
    return _png(plt, figure)


def _plot_drawdown(series: dict[str, pd.Series]) -> str:
    plt, figure, axis = _figure()
    for name, values in series.items():
        if len(values):
            wealth = np.cumprod(1.0 + values.to_numpy())
            axis.plot(values.index, wealth / np.maximum.accumulate(wealth) - 1.0, label=name)
    axis.set_ylabel("drawdown")
    axis.legend(fontsize=8, ncol=2)
    return _png(plt, figure)


def _plot_decay(models: list[dict]) -> str:
    plt, figure, axis = _figure()
    for model in models:
        decay = model.get("ic_decay")
        if decay:
            months = np.arange(0, len(decay["months"]) + 1)
            axis.plot(months, [decay["in_sample"], *decay["months"]], label=f"v{model['version']}")
    axis.axhline(0.0, color="grey", linewidth=0.8)
    axis.set_xlabel("months after the decision (0: the training window)")
    axis.set_ylabel("signed rank IC")
    axis.set_title("IC decay of the alphas each generator version wrote")
    if models:
        axis.legend(fontsize=7, ncol=4)
    return _png(plt, figure)
