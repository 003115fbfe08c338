"""Writes the worked example's data: train.csv, what a churn model was trained on, and
recent.jsonl, messages from its topic in which prices rose and contracts got shorter from
message 1,000 on. Seeded: the files come out the same every time (a test holds them to it).

    python docs/examples/churn/generate_data.py
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TRAIN_ROWS = 5000
RECENT_MESSAGES = 3000
DRIFT_FROM = 1000

COUNTRIES = ["NL", "BE", "DE", "LU"]
COUNTRY_SHARES = [0.45, 0.3, 0.2, 0.05]
CONTRACTS = ["month-to-month", "one-year", "two-year"]
CONTRACT_SHARES = [0.5, 0.3, 0.2]
CONTRACT_SHARES_LATER = [0.75, 0.15, 0.1]


def customers(rng: np.random.Generator, count: int, drifted: bool) -> list[dict[str, object]]:
    """``count`` customers; ``drifted``: charges 15 % higher, more monthly contracts."""
    country = rng.choice(COUNTRIES, count, p=COUNTRY_SHARES)
    contract = rng.choice(CONTRACTS, count,
                          p=CONTRACT_SHARES_LATER if drifted else CONTRACT_SHARES)
    tenure = rng.integers(0, 73, count)
    charges = rng.normal(64.0, 18.0, count).clip(18.25, 118.75) * (1.15 if drifted else 1.0)
    calls = rng.poisson(1.2, count)
    return [{"country": str(country[i]), "contract": str(contract[i]),
             "tenure_months": int(tenure[i]), "monthly_charges": round(float(charges[i]), 2),
             "support_calls": int(calls[i])} for i in range(count)]


def write_train(path: Path) -> None:
    rows = customers(np.random.default_rng(2026), TRAIN_ROWS, drifted=False)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_recent(path: Path) -> None:
    rng = np.random.default_rng(2027)
    rows = (customers(rng, DRIFT_FROM, drifted=False)
            + customers(rng, RECENT_MESSAGES - DRIFT_FROM, drifted=True))
    start_ms = 1_788_220_800_000  # 2026-09-01T00:00:00Z, a message every 2 s
    with path.open("w", encoding="utf-8") as stream:
        for index, row in enumerate(rows):
            message = {"customer": {"id": f"c{10_000 + index}", "country": row["country"]},
                       "contract": row["contract"], "tenure_months": row["tenure_months"],
                       "monthly_charges": row["monthly_charges"],
                       "support_calls": row["support_calls"],
                       "ts": start_ms + 2000 * index}
            stream.write(json.dumps(message) + "\n")


def main() -> None:
    write_train(HERE / "train.csv")
    write_recent(HERE / "recent.jsonl")
    print(f"wrote {HERE / 'train.csv'} and {HERE / 'recent.jsonl'}")


if __name__ == "__main__":
    main()
