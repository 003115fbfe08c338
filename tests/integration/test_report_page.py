"""The HTML report as a person sees it: rendered by headless Chromium (Debian's chromium,
installed by tests/run), with no console error, and a screenshot that is not blank."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from streamdrift.cli import main as cli_main
from streamdrift.config import load_config
from streamdrift.synthetic import SyntheticStream
from tests.conftest import REPO

CONFIG = REPO / "deploy" / "compose" / "config.yaml"
# As the session's own probe found: without the background-networking flags Chromium tries
# Google's hosts at every start, and this machine's closed network refuses them.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--enable-logging=stderr", "--v=0"]


def render(page: Path | str, screenshot: Path, profile: Path, width: int = 1280,
           height: int = 1400) -> tuple[str, list[str]]:
    """Load ``page`` (a file, or a URL) in headless Chromium: (the DOM after load, the
    console messages)."""
    address = page if isinstance(page, str) else page.as_uri()
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: tests/run installs Debian's chromium",
                    pytrace=False)
    common = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
              f"--window-size={width},{height}"]
    shot = subprocess.run([*common, f"--screenshot={screenshot}", address],
                          capture_output=True, text=True, timeout=120, check=False)
    assert shot.returncode == 0, shot.stderr[-3000:]
    dom = subprocess.run([*common, "--dump-dom", address], capture_output=True,
                         text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-3000:]
    console = [line for line in (shot.stderr + dom.stderr).splitlines()
               if ":CONSOLE" in line]
    return dom.stdout, console


def png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the image data): a blank page has few."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    chunks, position = [], 8
    while position < len(data):
        length = struct.unpack(">I", data[position:position + 4])[0]
        kind = data[position + 4:position + 8]
        if kind == b"IDAT":
            chunks.append(data[position + 8:position + 8 + length])
        position += 12 + length
    pixels = zlib.decompress(b"".join(chunks))
    return width, height, len(set(pixels))


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of a stream where age and device drift halfway (the demo's laws)."""
    folder = tmp_path_factory.mktemp("report")
    config = load_config(CONFIG, environ={})
    stream = SyntheticStream(config, seed=3)
    messages = stream.messages(12_000, ("age", "device"), 6000)
    (folder / "stream.jsonl").write_text("".join(json.dumps(m) + "\n" for m in messages))
    page = folder / "report.html"
    assert cli_main(["report", "--config", str(CONFIG), "--input",
                     str(folder / "stream.jsonl"), "--output", str(page)]) == 0
    return page


def test_the_report_renders_in_chromium_without_a_console_error(report_page: Path,
                                                                 tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    dom, console = render(report_page, screenshot, tmp_path / "profile")
    assert console == []
    width, height, colours = png_size_and_colours(screenshot)
    assert (width, height) == (1280, 1400)
    assert colours > 50, "the screenshot is (nearly) blank"
    # The summary comes first, then each feature's section, drifted ones first.
    assert "2 of 7" in dom
    assert dom.index("features drifted") < dom.index('id="feature-device"') \
        < dom.index('id="feature-age"') < dom.index('id="feature-plan"')
    assert dom.count("<svg") == 7 + 7  # bins of every feature, and KL over time


def test_the_console_check_sees_errors(tmp_path: Path) -> None:
    """The check above can fail: a page that logs an error is caught."""
    page = tmp_path / "broken.html"
    page.write_text('<!doctype html><html><body><p>x</p><script>console.error("broken page")'
                    "</script></body></html>")
    _, console = render(page, tmp_path / "broken.png", tmp_path / "profile", 400, 300)
    assert any("broken page" in line for line in console)


def test_the_compare_page_renders_in_chromium_without_a_console_error(tmp_path: Path) -> None:
    """``compare --html``: one window, no timeline, rendered as the report is."""
    config = load_config(CONFIG, environ={})
    stream = SyntheticStream(config, seed=4)
    names = [spec.name for spec in config.features]

    def write_csv(path: Path, messages: list[dict]) -> None:
        rows = [[_cell(message, spec.path) for spec in config.features] for message in messages]
        path.write_text(",".join(names) + "\n"
                        + "".join(",".join(row) + "\n" for row in rows))

    write_csv(tmp_path / "reference.csv", stream.reference(8000))
    write_csv(tmp_path / "current.csv", stream.messages(3000, ("session_length",), 0))
    page = tmp_path / "compare.html"
    assert cli_main(["compare", "--config", str(CONFIG), str(tmp_path / "reference.csv"),
                     str(tmp_path / "current.csv"), "--html", str(page)]) == 0
    screenshot = tmp_path / "compare.png"
    dom, console = render(page, screenshot, tmp_path / "profile")
    assert console == []
    width, height, colours = png_size_and_colours(screenshot)
    assert (width, height) == (1280, 1400)
    assert colours > 50, "the screenshot is (nearly) blank"
    assert "1 of 7" in dom
    assert "as one window" in dom
    assert dom.index("features drifted") < dom.index('id="feature-session_length"')
    assert dom.count("<svg") == 7  # the bins of every feature; one window has no timeline
    assert "KL over time" not in dom


def _cell(message: dict, path: tuple[str, ...]) -> str:
    value: object = message
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return "" if value is None else str(value)
