"""Change detectors from river over each feature's divergence series, behind one factory.

The series is the feature's KL at the close of each pane, so a change point marks the pane
where the divergence itself shifted: a drift beginning, ending or growing, even while the
KL stays under the threshold.
"""

from __future__ import annotations

from typing import Any, Protocol

from streamdrift.config import DetectorConfig


class ChangeDetector(Protocol):
    """What streamdrift needs of a river drift detector."""

    def update(self, x: float) -> None: ...

    @property
    def drift_detected(self) -> bool: ...


def make_detector(config: DetectorConfig) -> ChangeDetector | None:
    """A fresh river detector as configured, or None for ``method: none`` and for
    ``mixture_cusum`` (the monitor's sequential test on values, not on the KL series).

    >>> from streamdrift.config import DetectorConfig
    >>> type(make_detector(DetectorConfig("adwin", {"delta": 0.01}))).__name__
    'ADWIN'
    >>> make_detector(DetectorConfig("none")) is None
    True
    """
    if config.method in ("none", "mixture_cusum"):
        return None
    # river (and the scipy it pulls in) costs a second at start-up: load it only for a detector.
    from river import drift

    params: dict[str, Any] = dict(config.params)
    if config.method == "adwin":
        # One value per pane is a slow series: test for a change at every value, not every 32.
        params.setdefault("clock", 1)
        detector: ChangeDetector = drift.ADWIN(**params)
    elif config.method == "page_hinkley":
        detector = drift.PageHinkley(**params)
    else:
        detector = drift.KSWIN(**params)
    return detector
