"""The command line's commands, one module per family, imported only when their command
runs (``streamdrift.cli`` dispatches by name): ``streamdrift --help`` and ``check`` must not
wait for numpy, scipy or a Kafka client to load.

What the commands share lives here: writing their output files.
"""

from __future__ import annotations

import json
from pathlib import Path

from streamdrift.errors import StreamdriftError


def write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise StreamdriftError(f"cannot write {path}: {error.strerror}") from None


def write_json(path: Path, document: object) -> None:
    write_text(path, json.dumps(document, indent=2) + "\n")
