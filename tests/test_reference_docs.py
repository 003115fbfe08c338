"""The reference pages list what the code has: every configuration key with its default and
its environment variable (docs/reference/configuration.md), every command and option with
its default (docs/reference/cli.md). A key or an option added to the code fails here until
its page shows it. The schema comes from the code as it runs, not from a list kept by hand."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from streamdrift import config as config_module
from streamdrift.cli import _parser
from streamdrift.config import (
    _DETECTOR_PARAMS,
    ENVIRONMENT_OVERRIDES,
    SASL_PASSWORD_ENV,
    SCHEMA_REGISTRY_PASSWORD_ENV,
    SCHEMA_REGISTRY_URL_ENV,
    BaselineConfig,
    DetectorConfig,
    DivergenceConfig,
    FeatureSpec,
    InputConfig,
    KafkaConfig,
    MetricsConfig,
    ScanConfig,
    ServiceConfig,
    WindowConfig,
    load_config,
)
from streamdrift.detectors import make_detector
from tests.conftest import EXAMPLE_CONFIG, REPO

CONFIGURATION = REPO / "docs" / "reference" / "configuration.md"
CLI = REPO / "docs" / "reference" / "cli.md"

# The dataclass that holds each section's keys, by the section's path as the parser names it.
SECTION_CLASSES: dict[str, type] = {
    "kafka": KafkaConfig,
    "features[]": FeatureSpec,
    "window": WindowConfig,
    "baseline": BaselineConfig,
    "divergence": DivergenceConfig,
    "detector": DetectorConfig,
    "scan": ScanConfig,
    "input": InputConfig,
    "metrics": MetricsConfig,
    "service": ServiceConfig,
}


def _sections(text: str, level: int) -> dict[str, str]:
    """The text under each heading of ``level`` (up to the next one), by the heading's title."""
    parts = re.split(rf"^{'#' * level} (.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def _before_subsections(body: str) -> str:
    return re.split(r"^### ", body, maxsplit=1, flags=re.M)[0]


def _rows(body: str) -> dict[str, list[str]]:
    """The table rows in ``body`` as their cells, by the first word of the first cell (code
    marks removed): `--config FILE` is the row of --config."""
    rows: dict[str, list[str]] = {}
    for line in body.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        words = cells[0].replace("`", "").split()
        if words:
            rows[words[0]] = cells
    return rows


def _plain(text: str) -> object:
    """A value as a page spells it: true/false, an integer, a number, else the text."""
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _shown(cell: str) -> object:
    """The default a table cell shows: None for "unset", the value in a cell that is one
    code span, else the cell's words ("required", "the name")."""
    if cell == "unset":
        return None
    match = re.fullmatch(r"`([^`]*)`", cell)
    return cell if match is None else _plain(match.group(1))


def _same(shown: object, expected: object) -> bool:
    """Equal and of the same type: 5 is not how the code spells 5.0."""
    return type(shown) is type(expected) and shown == expected


def _keys_read_by_the_parser(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    """Every (section, key) the parser reads, gathered as each section checks for unknown
    keys; ``features[0]`` is recorded as ``features[]``."""
    read: set[tuple[str, str]] = set()
    original = config_module._Section.reject_unknown

    def recording(section: Any) -> None:
        read.update((re.sub(r"\[\d+\]", "[]", section.path), key) for key in section.seen)
        original(section)

    monkeypatch.setattr(config_module._Section, "reject_unknown", recording)
    load_config(EXAMPLE_CONFIG, environ={})
    return read


def test_every_config_key_is_in_its_section_s_table_with_its_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    read = _keys_read_by_the_parser(monkeypatch)
    assert ("kafka", "auto_offset_reset") in read  # the gathering works
    assert ("features[]", "missing_values") in read
    sections = _sections(CONFIGURATION.read_text(encoding="utf-8"), 2)
    problems: list[str] = []
    for section, key in sorted(read):
        if section == "detector.params":  # per method: the next test
            continue
        if not section:  # a top-level key: a section of the page
            if key not in sections:
                problems.append(f"no section '## {key}'")
            continue
        title = section.removesuffix("[]")
        if title not in sections:
            continue  # reported as its top-level key
        row = _rows(_before_subsections(sections[title])).get(key)
        if row is None or len(row) != 4:
            problems.append(f"{section}.{key}: no row | key | default | environment | what |")
            continue
        fields = {item.name: item for item in dataclasses.fields(SECTION_CLASSES[section])}
        if key not in fields or fields[key].default is dataclasses.MISSING:
            continue  # required, computed, or a default that is not a plain value
        expected = fields[key].default
        if isinstance(expected, Path):
            expected = str(expected)
        if expected is not None and not isinstance(expected, str | int | float | bool):
            continue
        shown = _shown(row[1])
        if not _same(shown, expected):
            problems.append(f"{section}.{key}: the page shows {row[1]!r}, the code has "
                            f"{expected!r}")
    assert not problems, "docs/reference/configuration.md:\n  " + "\n  ".join(problems)


def test_every_detector_parameter_is_in_its_method_s_table_with_its_default() -> None:
    detector = _sections(CONFIGURATION.read_text(encoding="utf-8"), 2)["detector"]
    assert _rows(_before_subsections(detector)).keys() >= {"method", "params"}
    methods = _sections(detector, 3)
    problems: list[str] = []
    for method, params in _DETECTOR_PARAMS.items():
        if not params:  # method: none
            continue
        if method not in methods:
            problems.append(f"no section '### {method}' under detector")
            continue
        rows = _rows(methods[method])
        # The detector streamdrift makes when no parameter is set: river's defaults, and
        # what streamdrift sets in their place (adwin's clock).
        made = make_detector(DetectorConfig(method))  # type: ignore[arg-type]
        for name in params:
            if name not in rows:
                problems.append(f"detector.params of {method}: no row for {name}")
            elif not _same(_shown(rows[name][1]), getattr(made, name)):
                problems.append(f"detector.params of {method}: {name} shows {rows[name][1]!r},"
                                f" the detector has {getattr(made, name)!r}")
    assert not problems, "docs/reference/configuration.md:\n  " + "\n  ".join(problems)


def test_every_environment_variable_is_on_the_page_in_its_key_s_row() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    variables = [*ENVIRONMENT_OVERRIDES, SASL_PASSWORD_ENV, SCHEMA_REGISTRY_URL_ENV,
                 SCHEMA_REGISTRY_PASSWORD_ENV]
    assert not [name for name in variables if name not in text]
    sections = _sections(text, 2)
    misplaced = []
    for variable, (section, key) in ENVIRONMENT_OVERRIDES.items():
        row = _rows(_before_subsections(sections.get(section, ""))).get(key)
        if row is None or len(row) != 4 or variable not in row[2]:
            misplaced.append(f"{variable} is not in the environment column of {section}.{key}")
    assert not misplaced
    # And the page names no variable the code does not read.
    assert set(re.findall(r"STREAMDRIFT_[A-Z_]+", text)) <= set(variables)


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
              ) -> dict[str, argparse.ArgumentParser]:
    """Every command that runs, by its words ("baseline build"), with its parser."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, (*prefix, name)))
    if not found and prefix:
        found[" ".join(prefix)] = parser
    return found


def _arguments(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """Every option string and positional argument of a command, but --help."""
    return [(name, action) for action in parser._actions
            if not isinstance(action, argparse._HelpAction)
            for name in (action.option_strings or [action.dest])]


def test_every_command_and_option_is_in_the_command_s_section() -> None:
    sections = _sections(CLI.read_text(encoding="utf-8"), 2)
    commands = _commands(_parser())
    assert {"baseline build", "baseline diff", "produce", "run"} <= commands.keys()
    problems: list[str] = []
    for command, parser in commands.items():
        if command not in sections:
            problems.append(f"no section '## {command}'")
            continue
        rows = _rows(sections[command])
        problems += [f"{command}: no row for {name}" for name, _ in _arguments(parser)
                     if name not in rows]
    assert not problems, "docs/reference/cli.md:\n  " + "\n  ".join(problems)


def test_the_defaults_shown_for_options_are_argparse_s() -> None:
    sections = _sections(CLI.read_text(encoding="utf-8"), 2)
    problems: list[str] = []
    checked = 0
    for command, parser in _commands(_parser()).items():
        rows = _rows(sections.get(command, ""))
        for name, action in _arguments(parser):
            default = action.default
            if (name not in rows or isinstance(default, bool)
                    or not isinstance(default, str | int | float)):
                continue  # a missing row fails above; flags and unset options show words
            checked += 1
            if not _same(_shown(rows[name][1]), default):
                problems.append(f"{command} {name}: the page shows {rows[name][1]!r}, "
                                f"argparse has {default!r}")
    assert checked > 20  # the rows were found
    assert not problems, "docs/reference/cli.md:\n  " + "\n  ".join(problems)
