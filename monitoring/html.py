"""The monitoring report as one self-contained HTML file.

Our part is static HTML (verdict, per-feature table, traffic/latency/errors over time as tables
with inline SVG bars): no JavaScript library, nothing fetched. Evidently's page (per-feature
reference-vs-current distributions) is embedded as an iframe `srcdoc`: it keeps its own styles
and scripts apart from ours, and its library and font are inlined by Evidently, so the whole
report opens offline, from a file or as an e-mail attachment.
"""

from __future__ import annotations

import html
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 4px; } .muted { color: #666; }
.verdict { padding: 12px 16px; border-radius: 6px; font-size: 1.15em; margin: 16px 0; }
.drift { background: #fde2e1; border: 1px solid #d9534f; } .ok { background: #e3f4e1; border: 1px solid #4cae4c; }
.quality { background: #fcf3dc; border: 1px solid #f0ad4e; }
table { border-collapse: collapse; margin: 8px 0 16px; } td, th { padding: 4px 10px; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.drifted td { background: #fde2e1; font-weight: 600; }
.charts { display: flex; gap: 32px; flex-wrap: wrap; } .chart p { margin: 0 0 4px; }
iframe { width: 100%; border: 0; min-height: 600px; }
"""

# Fit the Evidently iframe to its content, which React renders (and resizes) after load.
RESIZE = """
(() => {
  const frame = document.getElementById("evidently");
  frame.addEventListener("load", () => {
    const body = frame.contentDocument.body;
    const fit = () => { frame.style.height = (body.scrollHeight + 24) + "px"; };
    new ResizeObserver(fit).observe(body);
    fit();
  });
})();
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def bars(values: list[float | None], labels: list[str], color: str, width: int = 360, height: int = 60) -> str:
    """A tiny bar chart as inline SVG (one bar per time bucket, tooltip = bucket and value)."""
    present = [v for v in values if v is not None]
    top = max(present) if present and max(present) > 0 else 1.0
    step = width / max(len(values), 1)
    rects = []
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        h = 0 if value is None else max(1.0, height * value / top)
        rects.append(f'<rect x="{i * step:.1f}" y="{height - h:.1f}" width="{max(step - 1, 1):.1f}" height="{h:.1f}" '
                     f'fill="{color}"><title>{_e(label)}: {_e(_number(value))}</title></rect>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'{"".join(rects)}</svg>')


def _drift_table(summary: dict[str, Any]) -> str:
    rows = []
    for name, column in [*summary["features"].items(), ("prediction", summary["prediction"])]:
        label = "<b>prediction</b>" if name == "prediction" else _e(name)
        rows.append(f'<tr class="{"drifted" if column["drifted"] else ""}"><td>{label}</td><td>{_e(column["method"])}'
                    f'</td><td class="num">{column["score"]:.4f}</td><td class="num">{column["threshold"]:g}</td>'
                    f'<td>{"drift" if column["drifted"] else "ok"}</td></tr>')
    rows += [f'<tr><td>{_e(name)}</td><td colspan="4" class="muted">{_e(reason)}</td></tr>'
             for name, reason in summary["not_judged"].items()]
    return ("<table><tr><th>column</th><th>test</th><th>score</th><th>threshold</th><th>verdict</th></tr>"
            + "".join(rows) + "</table>")


def _missing_table(quality: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr class="{"drifted" if finding["flagged"] else ""}"><td>{_e(name)}</td>'
        f'<td class="num">{finding["current_share"]:.1%}</td><td class="num">{finding["reference_share"]:.1%}</td>'
        f'<td>{_e(finding["message"]) if finding["flagged"] else "ok"}</td></tr>'
        for name, finding in quality["missing"].items())
    return (f'<p class="muted">A finding when a feature is missing more often than in the reference by '
            f'{quality["threshold"]:.0%} or more; drift above is judged on the values that were sent.</p>'
            "<table><tr><th>feature</th><th>missing</th><th>in the reference</th><th>finding</th></tr>"
            + rows + "</table>")


def _operations(ops: dict[str, Any]) -> str:
    latency = ", ".join(f"{k} {_number(v)} ms" for k, v in ops["latency_ms"].items())
    errors = ", ".join(f"{status}: {count}" for status, count in ops["errors"].items()) or "none"
    models = ", ".join(f"{_e(tag)} ({count})" for tag, count in ops["models"].items())
    buckets = ops["over_time"]
    labels = [b["start"] for b in buckets]
    charts = "".join(
        f'<div class="chart"><p>{title}</p>{bars(values, labels, color)}</div>'
        for title, values, color in (
            ("requests", [b["requests"] for b in buckets], "#337ab7"),
            ("error rate", [b["error_rate"] for b in buckets], "#d9534f"),
            ("latency p95 (ms)", [b["latency_ms"]["p95"] for b in buckets], "#f0ad4e"),
        ))
    rows = "".join(
        f'<tr><td>{_e(b["start"])}</td><td class="num">{b["requests"]}</td><td class="num">{b["errors"]}</td>'
        f'<td class="num">{b["error_rate"]:.2%}</td>'
        + "".join(f'<td class="num">{_number(b["latency_ms"][p])}</td>' for p in ("p50", "p95", "p99"))
        + "</tr>" for b in buckets)
    return f"""
<p>{ops["requests"]} requests, {ops["predictions"]} predictions, error rate {ops["error_rate"]:.2%}
(errors by status: {errors}). Latency (received to prediction ready): {latency}.</p>
<p class="muted">Models in this window: {models}. Logged from {_e(ops["first"])} to {_e(ops["last"])}.</p>
<div class="charts">{charts}</div>
<table><tr><th>{_e(ops["bucket"])} bucket (UTC)</th><th>requests</th><th>errors</th><th>error rate</th>
<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th></tr>{rows}</table>"""


def _sample(sample: dict[str, Any]) -> str:
    """How much of the window the drift and missing-value verdicts saw, and how it was drawn."""
    if sample["whole_window"]:
        judged = f"all {sample['window_rows']:,} of them"
    else:
        judged = (f"a uniform sample of {sample['rows']:,} (seed {sample['seed']}), {_e(sample['method'])}; a share "
                  f"measured on it is within {100 * sample['share_margin_95']:.1f} percentage points of the "
                  "window's (95 %)")
    return (f'<p class="muted">Window: {sample["window_rows"]:,} predictions; counts, error rates and latency '
            f"percentiles are exact over all of them. Drift and missing values are judged on {judged}.</p>")


def render(summary: dict[str, Any], evidently_html: str) -> str:
    """The full report page for one task and window."""
    drifted = summary["drifted_features"]
    n_features = len(summary["features"])
    if summary["verdict"] == "drift":
        headline = (f"Drift detected: {', '.join(drifted) or 'no feature'} "
                    f"({len(drifted)} of {n_features} features, share {summary['drift_share']:.2f}, "
                    f"alert at {summary['settings']['drift_share']:.2f})"
                    + ("; the predictions drifted" if summary["prediction"]["drifted"] else ""))
    else:
        headline = f"No drift: 0 of {n_features} features and the predictions within their thresholds"
    quality = summary["data_quality"]
    if quality["missing_features"]:
        headline += "; missing values: " + ", ".join(
            f"{name} {quality['missing'][name]['message']}" for name in quality["missing_features"])
    tone = {"drift": "drift", "missing values": "quality"}.get(summary["verdict"], "ok")
    reference = summary["reference"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(summary["task"])} monitoring report</title>
<style>{STYLE}</style></head>
<body>
<h1>Monitoring report: {_e(summary["task"])}</h1>
<p class="muted">Predictions {_e(summary["window"])}; generated {_e(summary["generated_at"])}.
Reference: {_e(reference["source"])} ({reference["sample_rows"]} of {reference["training_rows"]} training rows).</p>
{_sample(summary["sample"])}
<div class="verdict {tone}">{_e(headline)}
<span class="muted">(exit code {summary["exit_code"]})</span></div>
<h2>Drift by column</h2>
{_drift_table(summary)}
<h2>Data quality: missing values</h2>
{_missing_table(quality)}
<h2>Traffic, latency and errors</h2>
{_operations(summary["operations"])}
<h2>Distributions: reference vs current (Evidently)</h2>
<iframe id="evidently" title="Evidently data drift report" srcdoc="{html.escape(evidently_html, quote=True)}"></iframe>
<script>{RESIZE}</script>
</body></html>
"""
