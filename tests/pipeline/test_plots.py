"""`dvc plots show` draws exactly the plots declared at the bottom of dvc.yaml, offline, each showing its data.

The page is DVC's HTML with the project's template (.dvc/plots/page.html: UTF-8, Vega, Vega-Lite and vega-embed
inline, charts drawn as SVG). A real Chromium opens it with no network at all; then every chart's axis titles,
axis labels and marks are read from the page and checked against the plot's definition in dvc.yaml and its data
file: a chart of "undefined" bars, a missing title or a point too few fails. The screenshot is kept in
.artifacts/dvc-plots.png.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from typing import Any

import pandas as pd
import pytest
import yaml

from scripts.vendor_vega import dvc_versions
from tests.support import PROJECT_ROOT
from tests.support.browser import chromium, open_page
from tests.support.dvc_repo import PipelineRepo

PLOTS = [next(iter(plot.items())) for plot in yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["plots"]]
DECLARED = [name for name, _ in PLOTS]
SCREENSHOT = PROJECT_ROOT / ".artifacts" / "dvc-plots.png"

# Each chart of the page as the browser drew it: titles, axes (orientation from their ARIA label, title, tick
# labels) and mark groups (kind, and each mark's ARIA label: "<field or title>: <value>; ..." of the datum it
# draws); then the library versions the page runs.
READ_CHARTS = r"""({
  charts: Array.from(document.querySelectorAll('.vega-embed svg')).map(svg => {
    const texts = (root, selector) => Array.from(root.querySelectorAll(selector)).map(t => t.textContent);
    return {
      titles: texts(svg, '.role-title text'),
      axes: Array.from(svg.querySelectorAll('.role-axis[aria-label]')).map(axis => ({
        orient: axis.getAttribute('aria-label')[0].toLowerCase(),
        title: texts(axis, '.role-axis-title text').join(' '),
        labels: texts(axis, '.role-axis-label text')})),
      marks: Array.from(svg.querySelectorAll('.role-mark')).map(group => ({
        kind: group.getAttribute('aria-roledescription').split(' ')[0],
        items: Array.from(group.children).map(item => item.getAttribute('aria-label'))})),
      legend: texts(svg, '.role-legend-label text')};
  }),
  versions: {vega: vega.version, 'vega-lite': vegaLite.version, 'vega-embed': vegaEmbed.version}
})"""


def require_browser() -> None:
    if chromium():
        return
    message = "chromium missing: run scripts/install-test-browser.sh"
    if os.environ.get("REQUIRE_BROWSER_TESTS") == "1":
        pytest.fail(f"REQUIRE_BROWSER_TESTS=1 but {message}")
    pytest.skip(message)


def test_plots_show_draws_exactly_the_declared_plots(built_repo: PipelineRepo) -> None:
    shown = json.loads(built_repo.run("dvc", "plots", "show", "--json", check=True).stdout)
    assert list(shown["data"]) == DECLARED
    candidates = next(spec for name, spec in shown["data"].items() if name.startswith("housing candidates"))
    fields = json.dumps(candidates[0]["content"]["transform"])
    assert "datum.cv" in fields and "datum.test" in fields  # CV (which chooses) with test beside it


@pytest.fixture(scope="module")
def drawn(built_repo: PipelineRepo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The page `dvc plots show` writes, opened offline: what the browser drew, its errors, the page itself."""
    require_browser()
    out = tmp_path_factory.mktemp("plots") / "dvc_plots"
    built_repo.run("dvc", "plots", "show", "-o", str(out), check=True)
    html = (out / "index.html").read_text(encoding="utf-8")
    charts = "document.querySelectorAll('.vega-embed svg').length"
    report = open_page((out / "index.html").as_uri(), SCREENSHOT, offline=True, extract_js=READ_CHARTS,
                       ready_js=f"document.characterSet === 'UTF-8' && {charts} >= {len(DECLARED)}")
    assert report.ready, f"fewer than {len(DECLARED)} charts drawn offline, or the page is not read as UTF-8"
    return {"html": html, "errors": report.errors, **report.extracted}


def test_the_page_needs_no_network_and_runs_the_versions_dvc_pairs(drawn: dict[str, Any]) -> None:
    assert not re.search(r"<script[^>]*\ssrc=", drawn["html"]), "the page loads a script from elsewhere"
    assert drawn["errors"] == []
    assert drawn["versions"] == dvc_versions()


def chart(drawn: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in drawn["charts"] if name in c["titles"]]
    return found


def axis(found: dict[str, Any], orient: str) -> dict[str, Any]:
    (only,) = [a for a in found["axes"] if a["orient"] == orient]
    return only


def marks(found: dict[str, Any], kind: str) -> list[dict[str, str]]:
    """The data of every mark of that kind, from the first group that has any (a layer repeats its data), as
    {field or axis title: value}."""
    group = next(group["items"] for group in found["marks"] if group["kind"] == kind and group["items"])
    return [dict(pair.split(": ", 1) for pair in label.split("; ")) for label in group]


def number(text: str) -> float:
    return float(text.replace("\u2212", "-").replace(",", ""))  # Vega writes a minus sign, and may group digits


def data(built_repo: PipelineRepo, definition: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    ((path, y),) = definition["y"].items()
    return pd.read_csv(built_repo.path / path), y


def check_scatter(found: dict[str, Any], frame: pd.DataFrame, definition: dict[str, Any], y: str) -> None:
    x = definition["x"]
    assert axis(found, "x")["title"] == definition["x_label"] and axis(found, "y")["title"] == definition["y_label"]
    points = sorted((number(mark[x]), number(mark[y])) for mark in marks(found, "symbol"))
    assert points == sorted(zip(frame[x], frame[y], strict=True))  # one point per row, where the row says


def check_bars(found: dict[str, Any], frame: pd.DataFrame, definition: dict[str, Any], y: str) -> None:
    x_label, y_label = definition["x_label"], definition["y_label"]
    assert axis(found, "x")["title"] == x_label and axis(found, "y")["title"] == y_label
    value = dict(zip(frame[y], frame[definition["x"]], strict=True))
    bars = {mark[y_label]: number(mark[x_label]) for mark in marks(found, "rect")}
    assert bars == pytest.approx(value, rel=1e-9)  # one bar per row, as long as the row says
    labels = axis(found, "y")["labels"]
    assert sorted(labels) == sorted(value) and [value[label] for label in labels] == sorted(value.values())[::-1]


def check_confusion(found: dict[str, Any], frame: pd.DataFrame, definition: dict[str, Any], y: str) -> None:
    x = definition["x"]
    classes = sorted(set(frame[x]) | set(frame[y]))
    assert (axis(found, "x")["title"], axis(found, "y")["title"]) == (x, y)
    assert axis(found, "x")["labels"] == classes and axis(found, "y")["labels"] == classes
    counts = Counter(zip(frame[y], frame[x], strict=True))
    cells = {(mark[y], mark[x]): int(number(mark["xy_count"])) for mark in marks(found, "rect")}
    assert cells == {(a, p): counts.get((a, p), 0) for a in classes for p in classes}  # every cell, zeros too


def check_candidates(found: dict[str, Any], frame: pd.DataFrame, definition: dict[str, Any], y: str) -> None:
    assert (axis(found, "x")["title"], axis(found, "y")["title"]) == ("score", "candidate")
    assert axis(found, "y")["labels"] == sorted(frame[y])
    bars = sorted((mark["candidate"], number(mark["score"])) for mark in marks(found, "rect"))
    assert bars == sorted([*zip(frame[y], frame["cv"], strict=True), *zip(frame[y], frame["test"], strict=True)])
    assert found["legend"] == ["CV (chooses)", "test (reported)"]


CHECKS = {"scatter": check_scatter, "bar_horizontal_sorted": check_bars, "confusion": check_confusion,
          "candidates": check_candidates}


@pytest.mark.parametrize(("name", "definition"), PLOTS, ids=DECLARED)
def test_each_chart_shows_its_data_with_its_labels(drawn: dict[str, Any], built_repo: PipelineRepo, name: str,
                                                   definition: dict[str, Any]) -> None:
    found = chart(drawn, name)
    assert all("undefined" not in a["labels"] and a["title"] != "undefined" for a in found["axes"])
    frame, y = data(built_repo, definition)
    CHECKS[definition["template"]](found, frame, definition, y)
