"""`dvc plots show` draws exactly the plots declared at the bottom of dvc.yaml, and they render in a browser.

The page is DVC's HTML with the project's template (.dvc/plots/page.html: UTF-8, so Vega's minus signs are
not mojibake). Offline, the CDN scripts the template's `{scripts}` would load are replaced by the same
Vega versions from the npm registry (tests/fixtures/vega, installed by scripts/install-test-browser.sh).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.support import PROJECT_ROOT
from tests.support.browser import chromium, open_page
from tests.support.dvc_repo import PipelineRepo

VEGA = PROJECT_ROOT / "tests" / "fixtures" / "vega" / "node_modules"
SCRIPTS = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")
DECLARED = [next(iter(plot)) for plot in yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["plots"]]


def require_browser() -> None:
    missing = [] if chromium() else ["chromium"]
    missing += [] if all((VEGA / script).is_file() for script in SCRIPTS) else ["the Vega scripts"]
    if missing:
        message = f"{' and '.join(missing)} missing: run scripts/install-test-browser.sh"
        if os.environ.get("REQUIRE_BROWSER_TESTS") == "1":
            pytest.fail(f"REQUIRE_BROWSER_TESTS=1 but {message}")
        pytest.skip(message)


def test_plots_show_draws_exactly_the_declared_plots(built_repo: PipelineRepo) -> None:
    shown = json.loads(built_repo.run("dvc", "plots", "show", "--json", check=True).stdout)
    assert list(shown["data"]) == DECLARED
    candidates = next(spec for name, spec in shown["data"].items() if name.startswith("housing candidates"))
    fields = json.dumps(candidates[0]["content"]["transform"])
    assert "datum.cv" in fields and "datum.test" in fields  # CV (which chooses) with test beside it


def test_the_plots_page_renders_every_chart_in_a_browser(built_repo: PipelineRepo, tmp_path: Path) -> None:
    require_browser()
    page = (PROJECT_ROOT / ".dvc" / "plots" / "page.html").read_text()
    assert '<meta charset="utf-8">' in page and "{scripts}" in page
    local = "\n".join(f'<script src="{(VEGA / script).as_uri()}"></script>' for script in SCRIPTS)
    offline = tmp_path / "page.html"
    offline.write_text(page.replace("{scripts}", local))
    built_repo.run("dvc", "plots", "show", "--html-template", str(offline), "-o", str(tmp_path / "plots"), check=True)
    html = tmp_path / "plots" / "index.html"
    assert "cdn.jsdelivr" not in html.read_text()

    charts = "document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length"
    report = open_page(html.as_uri(), PROJECT_ROOT / ".artifacts" / "dvc-plots.png",
                       ready_js=f"document.characterSet === 'UTF-8' && {charts} >= {len(DECLARED)}")
    assert report.ready, f"fewer than {len(DECLARED)} charts rendered, or the page is not read as UTF-8"
    assert report.errors == []
