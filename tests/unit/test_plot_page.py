"""The page template `dvc plots show` fills (.dvc/plots/page.html) draws with no network.

Vega, Vega-Lite and vega-embed are inline, in the versions the installed DVC writes its plot specs for (after a
DVC upgrade that pairs others, run scripts/vendor_vega.py); nothing is loaded from elsewhere. The browser test
(tests/pipeline/test_plots.py) opens the filled page offline.
"""

from __future__ import annotations

import re

from scripts.vendor_vega import PAGE, dvc_versions, inline_versions

TEMPLATE = PAGE.read_text(encoding="utf-8")


def test_the_inline_scripts_are_the_versions_dvc_loads() -> None:
    assert inline_versions(TEMPLATE) == dvc_versions()
    for package, version in dvc_versions().items():  # each script says its own version as built
        script = TEMPLATE.split(f"<!-- {package}@{version},", 1)[1].split("<script>", 1)[1].split("</script>", 1)[0]
        assert f'"{version}"' in script[:2000], package


def test_the_page_loads_nothing_from_elsewhere() -> None:
    assert "{plot_divs}" in TEMPLATE and '<meta charset="utf-8">' in TEMPLATE
    assert "{scripts}" not in TEMPLATE, "DVC would put its CDN script tags there"
    markup = re.sub(r"<script>.*?</script>|<!--.*?-->", "", TEMPLATE, flags=re.DOTALL)  # the page's own tags
    assert markup.count("<script") == 0 and re.search(r"<body>\s*\{plot_divs\}\s*</body>", markup)
    assert not re.search(r"<(script|link|img)[^>]*\s(src|href)=", markup)
