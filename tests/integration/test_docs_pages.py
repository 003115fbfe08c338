"""What a reader looks at, rendered by headless Chromium: the README's picture of the demo,
drawn by docs/demo_picture.py, and the pages of the documentation site."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_report_page import png_size_and_colours, render


def test_the_demo_picture_is_drawn_from_the_demo(tmp_path: Path) -> None:
    picture = tmp_path / "demo.png"
    result = subprocess.run([sys.executable, str(REPO / "docs" / "demo_picture.py"),
                             "--output", str(picture)], capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    width, height, colours = png_size_and_colours(picture)
    assert width == 1160
    assert 600 < height < 1000  # the whole output, no empty band below it
    assert colours > 50, "the picture is (nearly) blank"
    shipped_width, _, _ = png_size_and_colours(REPO / "docs" / "demo.png")
    assert shipped_width == width
    assert "(docs/demo.png)" in (REPO / "README.md").read_text()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The site, built and served over HTTP as it would be published (its search reads its
    index with a request, which a file:// page may not make)."""
    folder = tmp_path_factory.mktemp("site")
    result = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict",
                             "--site-dir", str(folder)], cwd=REPO, capture_output=True,
                            text=True, timeout=300, check=False,
                            env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("page", "text"), [
    ("", "watches the Kafka topic that feeds a deployed model"),
    ("getting-started/", "monthly_charges: after message 1200"),
    ("reference/metrics/", "streamdrift_kl_divergence"),
    ("operations/runbooks/", "StreamdriftFeatureDrift"),
])
def test_the_site_pages_render(site: str, tmp_path: Path, page: str, text: str) -> None:
    screenshot = tmp_path / "page.png"
    dom, console = render(site + page, screenshot, tmp_path / "profile", 1280, 900)
    assert console == []
    assert text in dom
    _, _, colours = png_size_and_colours(screenshot)
    assert colours > 50, "the page is (nearly) blank"
