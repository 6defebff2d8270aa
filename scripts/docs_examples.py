"""The HTTP examples of the docs, run against a live server: their printed answers are written by this, not typed.

    python -m scripts.docs_examples [--check] [--url URL] README.md docs/*.md      (make docs-examples)

An example is a fenced `bash` block whose commands call the service with curl (`http://127.0.0.1:3000/...`)
followed by the lines it prints, each starting with `# `. This starts the development server (`bentoml serve`
on the served set of the work tree, a free port, an empty prediction log of its own: an example that sends
feedback gets "stored", not "duplicate"), runs each example's commands in bash against it, in the order the
files and blocks come, writes what they printed below them (one answer per line, a generated `request_id`
shown as "...", long answers wrapped after a comma), and stops the server. `--check` changes no file and exits
1 naming every example whose printed lines differ: the docs then show another model than the one the commit
serves. `--url` uses a running server instead (its log must not hold the examples' request ids yet).

Blocks without printed lines (no `# ` line at their end) are left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scripts.server_process import ServerProcess, free_port

DOCUMENTED_URL = "http://127.0.0.1:3000"
WIDTH = 116
FENCE = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
REQUEST_ID = re.compile(r'("request_id": ?)"[0-9a-f]{16,}"')  # generated ids; a client's own stays


@dataclass(frozen=True)
class Example:
    """One block: the commands to run and the lines they print, as the file has them."""

    path: Path
    start: int  # offset of the block's body in the file's text
    end: int
    commands: str
    printed: str


def examples(path: Path, text: str) -> list[Example]:
    """The file's examples: bash blocks that call the documented URL and show what it printed (`# ` lines)."""
    found = []
    for match in FENCE.finditer(text):
        body = match.group(1)
        if f"{DOCUMENTED_URL}/" not in body or "curl " not in body:
            continue
        lines = body.splitlines(keepends=True)
        cut = len(lines)
        while cut and lines[cut - 1].startswith("# "):
            cut -= 1
        if cut == len(lines):
            continue
        found.append(Example(path, match.start(1), match.end(1), "".join(lines[:cut]), "".join(lines[cut:])))
    return found


def wrapped(answer: str, width: int) -> list[str]:
    """`answer` cut after commas into pieces of at most `width` characters (a longer piece stays whole)."""
    pieces, line = [], ""
    for token in re.split(r"(?<=,)", answer):
        if line and len(line) + len(token) > width:
            pieces.append(line)
            line = ""
        line += token
    return [*pieces, line]


def shown(output: str) -> str:
    """What the docs print for a command's output: generated request ids elided, each answer in `# ` lines."""
    out = []
    for answer in output.strip().splitlines():
        first, *rest = wrapped(REQUEST_ID.sub(r'\1"..."', answer.strip()), WIDTH - 3)
        out += [f"# {first}", *(f"#  {piece}" for piece in rest)]
    return "".join(f"{line}\n" for line in out)


def run(example: Example, url: str) -> str:
    """The example's commands in bash against `url`; what they print, as the docs should show it."""
    script = "set -euo pipefail\n" + example.commands.replace(DOCUMENTED_URL, url.rstrip("/"))
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"docs_examples: {example.path}: an example exited {result.returncode}: "
                         f"{result.stderr.strip()}\n{example.commands}")
    for answer in result.stdout.strip().splitlines():
        json.loads(answer)  # every printed line is one JSON answer: curl needs `-w '\n'` when a block has two
    return shown(result.stdout)


@contextmanager
def development_server() -> Iterator[str]:
    """`bentoml serve` of the work tree's service on a free port with an empty log of its own; its URL."""
    bentoml = Path(sys.executable).parent / "bentoml"
    with tempfile.TemporaryDirectory(prefix="docs-examples-") as work:
        port = free_port()
        env = {**os.environ, "PREDICTION_LOG_DIR": str(Path(work) / "log")}
        env.pop("PREDICTION_LOG_URL", None)
        server = ServerProcess([str(bentoml), "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=Path.cwd(),
                               env=env, output=Path(work) / "server.log", ready_url=f"http://127.0.0.1:{port}/readyz")
        try:
            server.wait_ready(timeout=300)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server instead of one started for the examples")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if an example is stale")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.url:
        return update(args.files, args.url, args.check)
    with development_server() as url:
        return update(args.files, url, args.check)


def update(files: list[Path], url: str, check: bool) -> int:
    """Run every example of `files` against `url`; rewrite their printed lines, or (`check`) report stale ones."""
    stale = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        pieces, last = [], 0
        for example in examples(path, text):
            fresh = run(example, url)
            if fresh != example.printed:
                stale.append(f"{path}: the example\n{example.commands}prints\n{fresh}the file shows\n"
                             f"{example.printed}")
            pieces += [text[last:example.start], example.commands, fresh]
            last = example.end
        new = "".join(pieces) + text[last:]
        if not check and new != text:
            path.write_text(new, encoding="utf-8")
            print(f"docs_examples: {path} updated")
    if check and stale:
        print("\n".join(stale), file=sys.stderr)
        print(f"docs_examples: {len(stale)} example(s) differ from what the served set answers: "
              "`make docs-examples` writes them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
