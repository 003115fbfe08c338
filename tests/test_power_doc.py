"""docs/power.md is what benchmarks/power.py writes with the code as it is, checked cheaply.

The script gives every cell a generator of its own, so that ``measure(d)`` draws the first d
of the draws behind the published table (the seed is in the page). Everything but the rates
must then be the same text: the prose, the header, the rows and their order, which cells
are "-" (under min_samples) and the KL expected without drift. A rate of the page is a
count X of its D draws (known from the rounded percentage up to a draw or two); the count k
of the first d draws is then hypergeometric (d of the D draws, X of them flagged): k must
be one that has a probability of at least TAIL on its side of the law for some X the
percentage allows. A cell at 0 % or 100 % of D allows no other k than 0 or d. The false
flags of the first d draws are some of those behind the page: never more.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scipy.stats import hypergeom

from benchmarks import power

PAGE = Path(__file__).resolve().parent.parent / "docs" / "power.md"
DRAWS = 25
# Per cell and side: a page that is current fails one of its ~30 cells with a probability
# under 30 * 2 * TAIL = 0.6 % when a change of the code draws again.
TAIL = 1e-4
WRITTEN = re.compile(r"\(seed (\d+); (\d+) draws per cell, (\d+) s\)")
CELL = re.compile(r"(\d+%) \((\d+\.\d%)\)")


def _counts(text: str, total: int, digits: int) -> list[int]:
    """The counts of ``total`` that the script prints as ``text`` (a percentage)."""
    return [count for count in range(total + 1) if f"{count / total:.{digits}%}" == text]


def _plausible(prefix: int, draws: int, page_counts: list[int], page_draws: int) -> bool:
    for flagged in page_counts:
        law = hypergeom(page_draws, flagged, draws)
        if law.cdf(prefix) >= TAIL and law.sf(prefix - 1) >= TAIL:
            return True
    return False


@pytest.mark.slow
def test_the_power_page_is_what_the_script_writes():
    page = PAGE.read_text(encoding="utf-8")
    written = WRITTEN.search(page)
    assert written, "docs/power.md does not say its seed, draws and time"
    seed, page_draws, seconds = (int(group) for group in written.groups())
    rows = power.measure(DRAWS, seed)
    expected = power.render(rows, page_draws, seconds, seed).splitlines()
    lines = page.splitlines()
    assert len(lines) == len(expected)
    table_rows = {f"| {label} |": cells for label, cells in rows}
    checked = 0
    for line, mine in zip(lines, expected, strict=True):
        label = next((start for start in table_rows if line.startswith(start)), None)
        if label is None:
            assert line == mine  # prose, header, KL without drift: the same text
            continue
        assert mine.startswith(label)
        texts = line[len(label):].strip(" |").split(" | ")
        assert len(texts) == len(power.SIZES), line
        for size, text, (found, false, evaluated, min_samples) in zip(
                power.SIZES, texts, table_rows[label], strict=True):
            assert (text == "-") == (size < min_samples), (label, size, text)
            if text == "-":
                continue
            cell = CELL.fullmatch(text)
            assert cell, (label, size, text)
            page_found = _counts(cell.group(1), page_draws, 0)
            assert _plausible(found, DRAWS, page_found, page_draws), (
                label, size, text, f"{found} of the first {DRAWS} draws")
            # The steady features evaluated in a draw are the same in every draw.
            assert evaluated % DRAWS == 0, (label, size, evaluated)
            page_evaluated = evaluated // DRAWS * page_draws
            page_false = _counts(cell.group(2), page_evaluated, 1) if page_evaluated else [0]
            assert page_false, (label, size, text)
            assert false <= max(page_false), (label, size, text, f"{false} false flags")
            checked += 1
    assert checked == sum(size >= cell[3] for _, cells in rows
                          for size, cell in zip(power.SIZES, cells, strict=True))
    assert checked >= 30
