"""Draws the README's picture of ``streamdrift demo``: the command's real output, in a
terminal's colours, rendered by headless Chromium (Debian's chromium package).

    python docs/demo_picture.py [--output docs/demo.png]
"""

from __future__ import annotations

import argparse
import html
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Without the background-networking flags Chromium tries Google's hosts at every start.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
WIDTH = 1160


def demo_output() -> str:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "streamdrift", "demo"], cwd=REPO,
                            capture_output=True, text=True, timeout=300, env=environment,
                            check=True)
    return result.stdout


def page(output: str) -> str:
    """The output as a terminal window: drifted cells and DRIFT in red."""
    lines = []
    for line in output.rstrip("\n").splitlines():
        escaped = html.escape(line)
        escaped = escaped.replace("DRIFT", '<b class="drift">DRIFT</b>')
        cells = escaped.split(" ")
        lines.append(" ".join(f'<b class="drift">{cell}</b>' if cell.endswith("*") else cell
                              for cell in cells))
    body = "\n".join(lines)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><style>
  html, body {{ margin: 0; background: #1e1f29; }}
  pre {{ margin: 0; padding: 18px 22px; color: #e6e6e6; font: 13px/1.35 "DejaVu Sans Mono",
        monospace; white-space: pre; }}
  .prompt {{ color: #8be9fd; }}
  .drift {{ color: #ff6e6e; font-weight: bold; }}
</style></head><body><pre><span class="prompt">$ streamdrift demo</span>
{body}</pre></body></html>
"""


def render(document: str, output: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed (Debian: apt-get install chromium)")
    # The <pre>'s lines at 13 px x 1.35, and its padding.
    lines = document.split("<pre>", 1)[1].count("\n") + 1
    height = 36 + math.ceil(13 * 1.35 * lines) + 2
    with tempfile.TemporaryDirectory(prefix="streamdrift-demo-picture-") as folder:
        source = Path(folder) / "demo.html"
        source.write_text(document, encoding="utf-8")
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={folder}/profile",
                        f"--window-size={WIDTH},{height}", f"--screenshot={output}",
                        source.as_uri()], capture_output=True, text=True, timeout=120,
                       check=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python docs/demo_picture.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "demo.png")
    args = parser.parse_args()
    render(page(demo_output()), args.output.resolve())
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
