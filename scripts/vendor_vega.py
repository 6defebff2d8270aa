"""Put Vega, Vega-Lite and vega-embed inline in `dvc plots show`'s page template (.dvc/plots/page.html).

DVC's page loads the three libraries from a CDN, so it draws a blank page offline. Referencing local copies
with a relative `src` is not enough: DVC writes the page relative to the working directory (or `-o`), so a
relative path breaks from a subdirectory or another output directory, and an absolute one is one machine's.
Inline, the page works wherever it is written or copied. The versions are the ones the installed dvc-render
loads from its CDN (what DVC's plot specs are written for), taken from the npm registry with their licenses
(BSD-3-Clause), between the template's `vega: begin` and `vega: end` comments; the rest of the template is
left as it is. For maintainers, after an upgrade of DVC (tests/unit/test_plot_page.py then fails); needs npm.

    .venv/bin/python scripts/vendor_vega.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / ".dvc" / "plots" / "page.html"
BLOCK = re.compile(r"( *)<!-- vega: begin.*?<!-- vega: end -->", re.DOTALL)
# What a script may not contain inline: the end of its element, or a placeholder DVC fills in the page
FORBIDDEN = ("</script", "{plot_divs}", "{refresh_tag}", "{scripts}")


def dvc_versions() -> dict[str, str]:
    """{package: version} of the scripts the installed dvc-render loads from its CDN."""
    from dvc_render.vega import VegaRenderer

    return dict(re.findall(r"cdn\.jsdelivr\.net/npm/([\w-]+)@([\w.-]+)", VegaRenderer.SCRIPTS))


def inline_versions(page: str) -> dict[str, str]:
    """{package: version} of the scripts inlined in a page template (its `<!-- package@version ...` comments)."""
    block = BLOCK.search(page)
    return dict(re.findall(r"<!-- ([\w-]+)@([\w.-]+),", block.group(0))) if block else {}


def script(package: str, node_modules: Path) -> str:
    """The package's minified browser build, without its source map reference (nothing to fetch)."""
    text = (node_modules / package / "build" / f"{package}.min.js").read_text(encoding="utf-8")
    text = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", text).strip()
    bad = [s for s in FORBIDDEN if s in text]
    if bad:
        raise SystemExit(f"{package}: its script contains {bad}, which cannot go inline in the page")
    return text


def notices(packages: list[str], node_modules: Path) -> str:
    """The packages' LICENSE files: their copyright lines, then the license text once when they share it."""
    texts = [(node_modules / p / "LICENSE").read_text(encoding="utf-8").strip().replace("--", "- -") for p in packages]
    heads, bodies = zip(*(text.split("\n", 1) for text in texts), strict=True)
    if len(set(bodies)) > 1:
        return "\n\n".join(f"{package}: {text}" for package, text in zip(packages, texts, strict=True))
    return "\n".join(f"{package}: {head}" for package, head in zip(packages, heads, strict=True)) + "\n" + bodies[0]


def block(versions: dict[str, str], node_modules: Path, indent: str) -> str:
    from importlib.metadata import version as installed

    lines = [f"{indent}<!-- vega: begin (scripts/vendor_vega.py: the versions dvc-render {installed('dvc-render')} "
             "loads from a CDN, inline so that the page needs no network) -->",
             f"{indent}<!-- {notices(list(versions), node_modules)}\n-->"]
    for package, version in versions.items():
        manifest = json.loads((node_modules / package / "package.json").read_text(encoding="utf-8"))
        if manifest["version"] != version:
            raise SystemExit(f"npm installed {package} {manifest['version']}, not {version}")
        lines.append(f"{indent}<!-- {package}@{version}, {manifest['license']}, https://www.npmjs.com/package/{package}"
                     " -->")
        lines.append(f"{indent}<script>{script(package, node_modules)}</script>")
    lines.append(f"{indent}<!-- vega: end -->")
    return "\n".join(lines)


def main() -> None:
    versions = dvc_versions()
    page = PAGE.read_text(encoding="utf-8")
    match = BLOCK.search(page)
    if match is None:
        sys.exit(f"{PAGE} has no `<!-- vega: begin ... -->` ... `<!-- vega: end -->` block to fill")
    with tempfile.TemporaryDirectory(prefix="vega-") as tmp:
        subprocess.run(["npm", "install", "--prefix", tmp, "--no-save", "--no-audit", "--no-fund", "--loglevel=error",
                        "--legacy-peer-deps", *(f"{package}@{version}" for package, version in versions.items())],
                       check=True)
        new = block(versions, Path(tmp) / "node_modules", match.group(1))
    PAGE.write_text(page[:match.start()] + new + page[match.end():], encoding="utf-8")
    print(f"{PAGE.relative_to(ROOT)}: " + ", ".join(f"{p} {v}" for p, v in versions.items()) + " inline")


if __name__ == "__main__":
    main()
