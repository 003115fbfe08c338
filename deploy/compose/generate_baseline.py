#!/usr/bin/env python3
"""Write deploy/compose/baseline.json: the baseline of 50,000 messages of the demo's
synthetic reference (seed 1), built with deploy/compose/config.yaml's binning.

    python deploy/compose/generate_baseline.py

tests/test_deploy.py holds the checked-in file's features equal to a fresh build.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from streamdrift.baseline import Baseline, build_baseline, save_baseline  # noqa: E402
from streamdrift.config import load_config  # noqa: E402
from streamdrift.features import extract_features  # noqa: E402
from streamdrift.synthetic import SyntheticStream  # noqa: E402

CONFIG = HERE / "config.yaml"
BASELINE = HERE / "baseline.json"


def build() -> Baseline:
    config = load_config(CONFIG, environ={})
    reference = SyntheticStream(config, seed=1).reference(50_000)
    columns = dict(zip([spec.name for spec in config.features],
                       extract_features(reference, config.features), strict=True))
    return build_baseline(config.features, columns,
                          {spec.name: config.bins_for(spec) for spec in config.features},
                          config.baseline.max_categories, config.baseline.smoothing,
                          source="synthetic reference (deploy/compose/generate_baseline.py)")


def main() -> int:
    save_baseline(build(), BASELINE)
    print(BASELINE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
